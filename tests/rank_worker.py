"""One rank of a gloo process group reading through rico.torch.Loader (run by test_frameworks).

python rank_worker.py RANK WORLD INIT_METHOD DB OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import rico
import torch.distributed as dist


def main(rank: int, world: int, init: str, db: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        loader = rico.torch.Loader(db, bands=["B02"], batch_size=4, seed=9)
        seen = [int(i) for i in loader.loader.indices()]
        batches = sum(1 for _ in loader)
        Path(out, f"{rank}.json").write_text(
            json.dumps([loader.loader.rank, loader.loader.world_size, seen, batches])
        )
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
