"""Converting BigEarthNet from where it is published: its three ``.tar.zst`` archives behind a URL.

One run over loopback (the tests' HTTP server, with Range and ETag, on 127.0.0.1), same archives
(a generated real-size tree of ``--patches`` patches, ``tar | zstd -3``). Rows:

- ``curl URL | zstd -dc`` of the three archives to ``/dev/null``: download and decompression;
- the floor: ``curl URL | zstd -dc`` of the three archives one after another into one file, then
  ``sync``;
- download (``curl -o``), then ``tar --zstd -x``, then rico on the folders: what users do today;
- rico from the URLs (the binary, default settings), with its peak RSS.

The records from the URLs are checked equal to those of the folders. Writes
``benches/results/remote.json``.

    python benches/remote.py --patches 2000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import _tests_path  # noqa: F401  (first: tests/ on sys.path)
from commands import shell, timed
from packed import RESULTS, packed_tree, rico_convert, work_options
from support.bigearthnet import SOURCES
from support.lmdb_records import read_lmdb
from support.servers import http_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    work_options(parser)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each row; the best is kept")
    args = parser.parse_args()
    work, tree, served = packed_tree(args, "rico-remote-")
    one = work / "one-file"
    downloads = work / "downloads"
    unpacked = work / "unpacked"
    from_dirs = work / "from-dirs.lmdb"
    from_urls = work / "from-urls.lmdb"
    results: dict = {
        "patches": args.patches,
        "archive_bytes": sum(p.stat().st_size for p in served.iterdir()),
        "cpus": os.cpu_count(),
        "rows": {},
    }
    with http_server(served) as (base, _):
        urls = {o: f"{base}/{n}.tar.zst" for o, n in SOURCES.items()}
        listed = " ".join(urls.values())

        def curl_zstd(out: str) -> str:
            """The script that downloads and decompresses each archive in turn into ``out``."""
            return f"for u in {listed}; do curl -sf $u | zstd -q -dc {out}; done"

        def download_unpack_convert() -> float:
            downloads.mkdir()
            unpacked.mkdir()
            seconds = shell(
                " && ".join(
                    f"curl -sf -o {downloads}/{n}.tar.zst {base}/{n}.tar.zst"
                    for n in SOURCES.values()
                )
            )
            seconds += shell(
                " && ".join(
                    f"tar --zstd -xf {downloads}/{n}.tar.zst -C {unpacked}"
                    for n in SOURCES.values()
                )
            )
            dirs = {o: unpacked / n for o, n in SOURCES.items()}
            seconds += timed(rico_convert(from_dirs, dirs))[0]
            return seconds

        def rico_urls() -> float:
            seconds, rss = timed(rico_convert(from_urls, urls))
            results["rico_peak_rss_mb"] = max(results.get("rico_peak_rss_mb", 0), rss)
            return seconds

        rows = [
            ("curl | zstd -dc to /dev/null", lambda: shell(curl_zstd("> /dev/null"))),
            (
                "floor: curl | zstd -dc to one file + sync",
                lambda: shell(curl_zstd(f">> {one}") + "; sync"),
            ),
            ("download, tar --zstd -x, rico on the folders", download_unpack_convert),
            ("rico from the URLs", rico_urls),
        ]

        def prepared(fn):
            """Untimed first: no output of an earlier run left, nothing left to write back."""
            for path in (downloads, unpacked, from_dirs, from_urls):
                shutil.rmtree(path, ignore_errors=True)
            one.unlink(missing_ok=True)
            os.sync()
            return fn()

        for name, fn in rows:
            best = min(prepared(fn) for _ in range(args.repeat))
            results["rows"][name] = best
            print(f"{name:50s} {best:7.2f} s", file=sys.stderr)
        # Each row starts clean: the last row left rico's database; make the folders' again.
        download_unpack_convert()
    results["records_equal"] = read_lmdb(from_urls) == read_lmdb(from_dirs)
    rows = results["rows"]
    results["ratio_to_floor"] = (
        rows["rico from the URLs"] / rows["floor: curl | zstd -dc to one file + sync"]
    )
    results["speedup_over_download_unpack_convert"] = (
        rows["download, tar --zstd -x, rico on the folders"] / rows["rico from the URLs"]
    )
    print(json.dumps({k: v for k, v in results.items() if k != "rows"}, indent=1), file=sys.stderr)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "remote.json").write_text(json.dumps(results, indent=1) + "\n")
    one.unlink(missing_ok=True)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
