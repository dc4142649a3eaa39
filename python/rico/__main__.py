"""``python -m rico`` and the ``rico`` console script: the same command line as the binary."""

import signal
import sys

from . import _rico


def main() -> None:
    """Run the rico command line with ``sys.argv`` and exit with its code.

    A conversion with ``--scheduler ADDRESS`` runs its shards on that Dask cluster; everything
    else is the Rust command line, as in the binary.
    """
    argv = ["rico", *sys.argv[1:]]
    # The Rust engine runs with the GIL released: let Ctrl-C end the process at once, as it
    # ends the binary (an interrupted conversion is finished with --resume).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if argv[1:2] == ["stats"] and any(
        a == "--metadata" or a.startswith("--metadata=") for a in argv
    ):
        sys.exit(_stats_from_metadata(argv))
    if "--scheduler" in argv or any(a.startswith("--scheduler=") for a in argv):
        call = _rico.parse_convert(argv)
        if call is not None and call["scheduler"]:
            sys.exit(_convert_on_scheduler(call))
    sys.exit(_rico.main(argv))


def _stats_from_metadata(argv: list[str]) -> int:
    """`rico stats DB --metadata metadata.parquet --split S ...`: the split's records come from
    the Parquet table (Python, pyarrow); the statistics from the Rust command line on their keys."""
    import tempfile

    from .bigearthnet import BigEarthNet

    rest, metadata, split, snow_cloud, bands = [], None, "train", False, []
    args = iter(argv[1:])
    for a in args:
        if a == "--metadata" or a.startswith("--metadata="):
            metadata = a.split("=", 1)[1] if "=" in a else next(args, None)
        elif a == "--split" or a.startswith("--split="):
            split = a.split("=", 1)[1] if "=" in a else next(args, "train")
        elif a == "--include-snow-cloud":
            snow_cloud = True
        else:
            rest.append(a)
    # The bands given (after --bands, up to the next option), to know which keys they need.
    if "--bands" in rest:
        for a in rest[rest.index("--bands") + 1 :]:
            if a.startswith("-"):
                break
            bands += [b for b in a.split(",") if b]
    db = next((a for a in rest[1:] if not a.startswith("-")), None)
    try:
        ben = BigEarthNet(
            db or "", metadata=metadata or "", split=split, bands=bands or "ALL",
            include_snow_cloud=snow_cloud, masks=False,
        )  # fmt: skip
    except (ImportError, OSError, ValueError, _rico.RicoError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    keys = ben._band_records()
    with tempfile.NamedTemporaryFile("w", suffix=".keys", delete=False) as f:
        f.write("".join(k + "\n" for k in keys))
    try:
        return _rico.main(["rico", *rest, "--keys", f.name, "--split", ben.split or "all"])
    finally:
        import os

        os.unlink(f.name)


def _convert_on_scheduler(call: dict) -> int:
    from distributed import Client

    import rico

    try:
        with Client(call["scheduler"]) as client:
            summary = rico.convert(
                call["dataset"],
                call["target_dir"],
                client=client,
                **call["options"],
                **call["sources"],
                **call["params"],
            )
    except rico.RicoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1 if isinstance(e, rico.DataError) else 2 if isinstance(e, rico.UsageError) else 3
    except OSError as e:  # the scheduler cannot be reached
        print(f"error: cannot reach the Dask scheduler {call['scheduler']}: {e}", file=sys.stderr)
        return 2
    if not call["quiet"]:
        print(summary.line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    main()
