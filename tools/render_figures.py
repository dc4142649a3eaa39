#!/usr/bin/env python3
"""Writes the benchmark figures of README.md and docs/benchmarks.md from benches/results/*.json.

Each figure on those pages sits between ``<!-- figures:NAME -->`` and ``<!-- /figures:NAME -->``
and is generated here from the results files, never typed by hand; ``make bench-report``
measures and then runs this. With ``--check`` nothing is written: the exit status is 1 when a
page differs from what its results files give (``tests/test_figures.py`` runs that).

    python tools/render_figures.py            # rewrite the blocks
    python tools/render_figures.py --check    # fail if a page is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benches" / "results"
PAGES = [ROOT / "README.md", ROOT / "docs" / "benchmarks.md"]
BLOCK = re.compile(r"(<!-- figures:([\w-]+) -->\n)(.*?)(<!-- /figures:\2 -->)", re.S)


def load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def ratio(x: float, digits: int = 1) -> str:
    return f"{x:.{digits}f}x"


def rate(x: float) -> str:
    return f"{x:,.0f}"


def secs(x: float) -> str:
    return f"{x:.2f} s"


def mb(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def cells(*values: object) -> str:
    """A row of a markdown table."""
    return "| " + " | ".join(map(str, values)) + " |"


def grid(columns: str, align: str, rows: Iterable[str]) -> list[str]:
    """The lines of a markdown table: its header (``columns``, as ``"a | b"``), its rule
    (``align``: ``l`` or ``r`` a column) and ``rows``."""
    rule = "|" + "".join(" ---: |" if a == "r" else " --- |" for a in align)
    return [f"| {columns} |", rule, *rows]


def figure(*blocks: str | list[str]) -> str:
    """The text of a figure: its blocks (a paragraph, or the lines of a table) one after another,
    a blank line between two."""
    out: list[str] = []
    for block in blocks:
        out += ([""] if out else []) + ([block] if isinstance(block, str) else block)
    return "\n".join(out) + "\n"


def machine_line(st: dict) -> str:
    m = st["machine"]
    memory = f", {m['memory_gb']:.0f} GB memory" if m.get("memory_gb") else ""
    storage = f", storage: {m['storage']}" if m.get("storage") else ""
    return f"{m['cpu']}, {m['cores']} cores{memory}{storage}"


def stamp_line(st: dict) -> str:
    dirty = " plus uncommitted changes" if st.get("dirty") else ""
    return (
        f"commit `{st['commit'][:10]}`{dirty}, {st['date'][:10]}, {machine_line(st)}; "
        f"`{st['command']}`"
    )


def version(st: dict, package: str) -> str:
    v = st.get("versions", {}).get(package)
    return f"{package} {v}" if v else package


def groups() -> dict[str, dict]:
    return {g["id"]: g for g in load("peers")["groups"]}


def find(rows: list[dict], prefix: str) -> dict:
    return next(r for r in rows if r["name"].startswith(prefix))


def compare_rows() -> tuple[dict, list[dict], list[dict]]:
    c = load("compare")
    conv = [r for r in c["rows"] if r["section"].startswith("Conversion")]
    read = [r for r in c["rows"] if r["section"].startswith("Reading")]
    return c, conv, read


# -- README -----------------------------------------------------------------------------------


def headline() -> str:
    p = load("peers")
    g = groups()
    c, conv, read = compare_rows()
    st = p["stamp"]
    threads = max(r.get("threads", 0) for r in conv)
    ref = next(
        r for r in conv if r["name"].startswith("reference-style") and r["threads"] == threads
    )
    ours = next(r for r in conv if r["name"].startswith("rico binary") and r["threads"] == threads)
    lm = find(read, "py-lmdb get")
    get = find(read, "rico ds[key]")
    lc = g["litdata_convert"]
    cfg, ls, tg = g["configilm"], g["litdata_stream"], g["torchgeo"]
    lines = [
        "| what | rico | peer | rico ÷ peer |",
        "| --- | ---: | ---: | ---: |",
        f"| convert {lc['rows'][1]['records']:,} S2 patches, 2 cores | "
        f"{secs(find(lc['rows'], 'rico')['seconds'])} | "
        f"{secs(find(lc['rows'], 'LitData')['seconds'])} ({version(st, 'litdata')} `optimize`, "
        f"rasterio per patch, 2 workers) | {ratio(lc['ratios']['convert'])} |",
        f"| convert the whole tree ({ours['records']:,} records), {threads} cores | "
        f"{secs(ours['seconds'])} | {secs(ref['seconds'])} (reference-style converter: rasterio, "
        f"process pool, py-lmdb) | {ratio(ours['vs_baseline'])} |",
        f"| `ds[key]`, 1 thread, records/s | {rate(get['records_per_second'])} | "
        f"{rate(lm['records_per_second'])} (py-lmdb + `safetensors.numpy.load`) | "
        f"{ratio(get['vs_baseline'])} |",
        f"| BigEarthNet v2 train loader, 12 channels, samples/s | "
        f"{rate(find(cfg['rows'], 'rico.lightning')['samples_per_second'])} | "
        f"{rate(find(cfg['rows'], 'ConfigILM BENv2DataModule, defaults')['samples_per_second'])} "
        f"({version(st, 'configilm')} `BENv2DataModule`, defaults); "
        f"{rate(find(cfg['rows'], 'ConfigILM BENv2DataModule, best')['samples_per_second'])} "
        f"(persistent workers) | {ratio(cfg['ratios']['datamodule_defaults'])}; "
        f"{ratio(cfg['ratios']['datamodule_best'])} |",
        f"| shuffled batches, 12 S2 bands, samples/s | "
        f"{rate(find(ls['rows'], 'rico.torch.Loader, shuffle on')['samples_per_second'])} | "
        f"{rate(find(ls['rows'], 'LitData, shuffle on, defaults')['samples_per_second'])} "
        f"({version(st, 'litdata')} `StreamingDataLoader`, defaults); "
        f"{rate(find(ls['rows'], 'LitData, shuffle on, persistent')['samples_per_second'])} "
        f"(persistent workers) | {ratio(ls['ratios']['shuffle_on_defaults'])}; "
        f"{ratio(ls['ratios']['shuffle_on_best'])} |",
        f"| S2 + S1, reference map, labels, samples/s | "
        f"{rate(find(tg['rows'], 'rico')['samples_per_second'])} | "
        f"{rate(find(tg['rows'], 'TorchGeo BigEarthNetV2, defaults')['samples_per_second'])} "
        f"({version(st, 'torchgeo')} `BigEarthNetV2` in a `DataLoader`); "
        f"{rate(find(tg['rows'], 'TorchGeo BigEarthNetV2, persistent')['samples_per_second'])} "
        f"(persistent workers) | {ratio(tg['ratios']['defaults'])}; {ratio(tg['ratios']['best'])} |",
    ]
    sc = p["scope"]
    ref_runs = re.search(r"--baseline-repeat (\d+)", c["stamp"]["command"])
    scope = (
        f"Scope: one run of `make bench-report` on a generated BigEarthNet v2-shaped tree of "
        f"{sc['patches']:,} patches with real-size records (S2 bands at 120x120, 60x60 "
        f"and 20x20, S1 at 120x120), page cache warm, 2 worker processes or 2 rico threads "
        f"(`ds[key]`: 1 thread), batch {sc['batch']}; best of {sc['repeat']} runs (LitData's "
        f"`optimize`: {sc['slow_repeat']}; the reference-style converter: "
        f"{ref_runs.group(1) if ref_runs else 2}); loaders: best of {sc['epochs']} epochs "
        f"(TorchGeo: {min(sc['epochs'], sc['slow_repeat'])}, on "
        f"{find(tg['rows'], 'TorchGeo')['samples']} rows), each with its "
        f"worker start-up. The two conversion rows and `ds[key]` by `benches/compare.py`, the "
        f"others by `benches/peers.py`. Machine and code: {stamp_line(st)}. Other builds ran on "
        f"the same cores: see [the method](docs/benchmarks.md) before comparing with another "
        f"machine.\n"
    )
    return "\n".join(lines) + "\n\n" + scope + "\n"


def scale_sentence() -> str:
    s = load("scale")
    big = max(s["sizes"], key=lambda r: r["patches"])
    return (
        f"A conversion of BigEarthNet's shape at its full count, {big['patches']:,} patches "
        f"({big['records']:,} records), with **12x12 rasters** hard-linked from a 100-patch tree "
        f"(a test of planning and memory at scale, not of decoding speed), ran in "
        f"{big['seconds']:.1f} s with a peak RSS of {big['peak_rss_mb']:.1f} MB "
        f"({stamp_line(s['stamp'])}).\n"
    )


# -- docs/benchmarks.md -----------------------------------------------------------------------


def compare_table() -> str:
    c, conv, read = compare_rows()

    def vs(r: dict) -> str:
        return ratio(r["vs_baseline"], 2) if r.get("vs_baseline") else "-"

    def reading(r: dict) -> str:
        if r.get("records_per_second") is None:
            return cells(r["name"], "-", rate(r["mb_per_second"]), "-", "-")
        speed = rate(r["records_per_second"]), rate(r["mb_per_second"])
        return cells(r["name"], *speed, vs(r), mb(r["rss_mb"]))

    conversions = grid(
        "conversion | time | records/s | ÷ baseline | × copy floor | peak RSS MB | all processes MB",
        "lrrrrrr",
        (
            cells(r["name"], secs(r["seconds"]), rate(r["records_per_second"]), vs(r),
                  f"{r['vs_floor']:.2f}", mb(r["rss_mb"]), mb(r["tree_rss_mb"]))
            for r in conv
        ),
    )  # fmt: skip
    reads = grid(
        "reading (1 thread unless said) | records/s | MB/s | ÷ baseline | peak RSS MB",
        "lrrrr",
        map(reading, read),
    )
    return figure(measured(c["stamp"]), conversions, reads)


def peers_tables() -> str:
    p = load("peers")
    st = p["stamp"]
    versions = ", ".join(
        version(st, k)
        for k in ("configilm", "litdata", "torchgeo", "torch", "lightning", "rasterio")
    )
    out = [f"Measured at {stamp_line(st)}. Packages: {versions}.", ""]
    for g in p["groups"]:
        unit = g["unit"]
        out += [f"**{g['title']}**", ""]
        out += grid(
            f"contender | settings | {unit} | time | peak RSS MB | all processes MB",
            "llrrrr",
            (
                cells(f"**{r['name']}**" if r["peer"] == "rico" else r["name"], r["settings"],
                      rate(r[g["unit_key"]]), secs(r["seconds"]), mb(r.get("rss_mb")),
                      mb(r.get("tree_rss_mb")))
                for r in g["rows"]
            ),
        )  # fmt: skip
        ratios = "; ".join(f"{k.replace('_', ' ')} {ratio(v, 2)}" for k, v in g["ratios"].items())
        out += ["", f"rico ÷ peer: {ratios}.", ""]
    return "\n".join(out)


def provenance() -> str:
    def row(path: Path) -> str:
        st = json.loads(path.read_text())["stamp"]
        dirty = " (+ changes)" if st.get("dirty") else ""
        return cells(f"`{path.name}`", f"`{st['commit'][:10]}`{dirty}", st["date"][:10],
                     machine_line(st), f"`{st['command']}`")  # fmt: skip

    rows = map(row, sorted(RESULTS.glob("*.json")))
    return "\n".join(grid("results file | commit | date | machine | made by", "lllll", rows)) + "\n"


# -- figures of earlier runs (scripts make bench-report does not run) -------------------------


def measured(st: dict) -> str:
    return f"Measured at {stamp_line(st)}."


def archives_table() -> str:
    a = load("archives")
    rows = [
        ("zstd -dc to /dev/null", "`zstd -dc` of the three archives to `/dev/null`"),
        (
            "archive floor: zstd -dc to one file + sync",
            "archive floor: `zstd -dc` into one file, then `sync`",
        ),
        ("tar --zstd -x, then rico on the folders", "`tar --zstd -x`, then rico on the folders"),
        ("rico from the archives", "**rico from the archives**"),
        (
            "Python: zstandard + tarfile + rasterio + py-lmdb",
            "Python: `zstandard` + `tarfile` + `rasterio.MemoryFile` + py-lmdb",
        ),
    ]

    def row(key: str, label: str) -> str:
        warm, cold = a["rows"][f"{key} (warm)"], a["rows"].get(f"{key} (cold)")
        return cells(label, secs(warm), secs(cold) if cold else "-")

    r = load("remote")
    rr = r["rows"]
    return figure(
        measured(a["stamp"]),
        grid(f"row ({a['cpus']} cores) | warm | cold", "lrr", (row(*r) for r in rows)),
        f"rico from the archives: {ratio(a['ratio_to_floor_warm'], 2)} the archive floor warm, "
        f"{ratio(a['ratio_to_floor_cold'], 2)} cold; peak RSS {a['rico_peak_rss_mb']:.0f} MB.",
        f"From the same archives over HTTP on loopback (`benches/remote.py`, best of 3): "
        f"`curl | zstd -dc` to `/dev/null` {secs(rr['curl | zstd -dc to /dev/null'])}; the floor, "
        f"`curl | zstd -dc` into one file then `sync`, "
        f"{secs(rr['floor: curl | zstd -dc to one file + sync'])}; download, `tar --zstd -x`, rico "
        f"on the folders {secs(rr['download, tar --zstd -x, rico on the folders'])}; **rico from "
        f"the URLs {secs(rr['rico from the URLs'])}** ({ratio(r['ratio_to_floor'], 2)} the floor, "
        f"peak RSS {r['rico_peak_rss_mb']:.0f} MB). {measured(r['stamp'])}",
    )


def decode_table() -> str:
    d = load("decode")
    rows = (
        cells(r["name"], r["what"], f"{r['rasterio_ms']:.2f} ms", f"{r['rico_ms']:.2f} ms",
              ratio(r["rasterio_over_rico"], 2))
        for r in d["rows"]
    )  # fmt: skip
    intro = measured(d["stamp"]) + f" Medians of {d['repeat']} reads each."
    return figure(intro, grid("sample | layout | rasterio | rico | rasterio ÷ rico", "llrrr", rows))


def scale_table() -> str:
    s = load("scale")
    rows = (
        cells(f"{r['patches']:,} ({r['records']:,})", f"{r['peak_rss_mb']:.1f} MB",
              f"{r['first_record_s']:.2f} s", rate(r["records_per_s"]), f"{r['seconds']:.1f} s")
        for r in s["sizes"]
    )  # fmt: skip
    columns = "patches (records) | peak RSS | first record committed | records/s | time"
    return figure(
        measured(s["stamp"]) + " 12x12 rasters, hard-linked.", grid(columns, "lrrrr", rows)
    )


def scale_real_table() -> str:
    s = load("scale_real")
    names = list(dict.fromkeys(r["binary"] for r in s["sizes"]))
    sizes = sorted({r["patches"] for r in s["sizes"]})
    head = " | ".join(f"{n}, {k}" for k in ("real-size", "12x12") for n in names)
    peaks = {(x["patches"], x["binary"], x["record_size"]): x for x in reversed(s["sizes"])}

    def row(n: int) -> str:
        runs = [peaks.get((n, b, kind)) for kind in ("real", "tiny") for b in names]
        return cells(f"{n:,}", *("-" if r is None else f"{r['peak_rss_mb']:.1f} MB" for r in runs))

    out = grid(f"patches | {head}", "l" + "r" * (2 * len(names)), map(row, sizes))
    return figure(measured(s["stamp"]) + " Peak RSS by `wait4`.", out)


def read_scale_table() -> str:
    d = load("read_scale")
    rates = ("loader", "batch_out", "batch_new", "baseline")
    g = d["getitem_warm"]
    return figure(
        measured(d["stamp"]) + f" {d['records']:,} S2 records of {d['record_bytes'] / 1e3:.0f} KB.",
        grid(
            "batch | rico.Loader (ring) | ds.batch(out=) | ds.batch (new array) | numpy baseline",
            "rrrrr",
            (cells(r["batch"], *(rate(r[k]) for k in rates)) for r in d["warm"]),
        ),
        f"samples/s. Warm `ds[key]` in the same run: {rate(g['rico'])} records/s against "
        f"{rate(g['lmdb_safetensors'])}/s for py-lmdb + `safetensors.numpy.load` "
        f"({ratio(g['ratio'], 2)}).",
    )


def cold_disks() -> str:
    d = load("scale_cold")
    r, dask = d["cold_rico"], d["dask"]
    return (
        f"{measured(d['stamp'])}\n\n"
        f"- default settings (2 decoder threads, `--io-depth` 32): conversion "
        f"{secs(r['convert_default_s'])} against the {secs(r['parallel_read_32_s'])} floor, "
        f"**{ratio(r['ratio'], 2)}** (conversions of "
        f"{min(r['all_converts_s']):.2f}–{max(r['all_converts_s']):.2f} s, floors of "
        f"{min(r['all_reads_s']):.2f}–{max(r['all_reads_s']):.2f} s in this run).\n"
        f"- Dask, 2 workers (a real `LocalCluster` on loopback), 2,000 patches, best of 2: 64 "
        f"shards {secs(dask['64'])} against 4 shards {secs(dask['4'])}, "
        f"**{ratio(dask['ratio_64_vs_4'], 2)}**: the client plans once and each task reads only "
        f"its slice of the plan.\n"
    )


def cold_epochs_table() -> str:
    d = load("read_scale_cold")
    c = d["cold"]

    def cpu(r: dict) -> str:
        return f"{r['user_s']:.1f} | {r['sys_s']:.1f}" if "user_s" in r else "- | -"

    rows = (
        cells(i, rate(r["fio"]), rate(r["loader"]), f"{r['loader_vs_fio']:.2f}",
              rate(r["loader_steady"]), f"{r['steady_vs_fio']:.2f}", cpu(r))
        for i, r in enumerate(c["runs"], 1)
    )  # fmt: skip
    columns = (
        "run | fio, reads/s | Loader epoch, samples/s | ratio | steady state (after 5%) | ratio"
        " | user CPU s | system CPU s"
    )
    path = c["runs"][-1].get("cold_path")
    paths = (
        [
            f"Which path the records took (last run): {path['staged']:,} read whole by the cold "
            f"path (not in the page cache), {path['resident']:,} read in place; queue depth "
            f"{path['depth']} measured."
        ]
        if path
        else []
    )
    steady = c["steady_vs_warm"]
    return figure(
        measured(d["stamp"]),
        grid(columns, "lrrrrrrr", rows),
        *paths,
        f"The same epoch warm reached {rate(c['loader_warm'])} samples/s in that run: the cold "
        f"steady state is {min(steady):.2f}-{max(steady):.2f} of the loader's own ceiling. Single "
        f"cold reads at queue depth 1 (`ds[key]`, every byte touched): {rate(c['getitem'])}/s, "
        f"against {rate(c['getitem_baseline'])}/s for py-lmdb + `safetensors.numpy.load`.",
    )


def bigearthnet_text() -> str:
    b = load("bigearthnet")
    return measured(b["stamp"]) + "\n\n```text\n" + b["text"].rstrip() + "\n```\n"


RENDERERS: dict[str, Callable[[], str]] = {
    "headline": headline,
    "scale": scale_sentence,
    "compare": compare_table,
    "peers": peers_tables,
    "provenance": provenance,
    "archives": archives_table,
    "decode": decode_table,
    "scale-table": scale_table,
    "scale-real": scale_real_table,
    "read-scale": read_scale_table,
    "bigearthnet": bigearthnet_text,
    "cold-epochs": cold_epochs_table,
    "cold-disks": cold_disks,
}


def render(text: str) -> str:
    def replace(m: re.Match[str]) -> str:
        name = m.group(2)
        if name not in RENDERERS:
            raise SystemExit(f"unknown figures block {name!r}")
        return m.group(1) + RENDERERS[name]() + m.group(4)

    return BLOCK.sub(replace, text)


def stale_pages() -> list[Path]:
    return [p for p in PAGES if render(p.read_text()) != p.read_text()]


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="write nothing; fail if stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages()
        for p in stale:
            print(f"{p.relative_to(ROOT)}: figures differ from benches/results/", file=sys.stderr)
        return 1 if stale else 0
    for p in PAGES:
        text = p.read_text()
        new = render(text)
        if new != text:
            p.write_text(new)
            print(f"rewrote the figures of {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
