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
    if "--scheduler" in argv or any(a.startswith("--scheduler=") for a in argv):
        call = _rico.parse_convert(argv)
        if call is not None and call["scheduler"]:
            sys.exit(_convert_on_scheduler(call))
    sys.exit(_rico.main(argv))


def _convert_on_scheduler(call: dict) -> int:
    from distributed import Client

    import rico

    try:
        with Client(call["scheduler"]) as client:
            summary = rico.convert(
                call["dataset"],
                call["target_dir"],
                threads=call["threads"],
                resume=call["resume"],
                skip_invalid=call["skip_invalid"],
                shards=call["shards"],
                client=client,
                progress=False if call["quiet"] else None,
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
