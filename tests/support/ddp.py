"""One rank of a real gloo process group (started by ``torch.multiprocessing.spawn`` in
tests/test_training.py): rico's torch loaders under ``DistributedDataParallel``.

Each rank writes what it saw to ``OUT/<rank>.json``: the keys of every batch of two epochs
(trained on with a DDP model, so a rank with one step more than another would hang the
group's all-reduce until the timeout), the keys after a mid-epoch restore from its own state
and from rank 0's, and rico.torch.Loader's part and batch count.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np

#: Batch size of the BigEarthNet loaders: leaves a short last batch on the test's database.
BATCH = 5


def worker(rank: int, world: int, init: str, db: str, metadata: str, out: str) -> None:
    import rico
    import rico.torch
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=init, rank=rank, world_size=world, timeout=timedelta(seconds=60)
    )
    try:
        ben = rico.BigEarthNet(db, metadata=metadata, split=None, bands=["B01"], size=20)

        def loader() -> rico.torch.BigEarthNetLoader:
            # rank and world_size from the process group; drop_last=False: a short last batch
            return rico.torch.BigEarthNetLoader(ben, batch_size=BATCH, seed=5, threads=1)

        torch.manual_seed(0)
        model = DistributedDataParallel(torch.nn.Linear(20 * 20, 19))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        train = loader()
        epochs = []
        for epoch in range(2):
            train.set_epoch(epoch)
            keys = []
            for batch in train:
                keys.append(list(batch["key"]))
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    model(batch["image"].flatten(1)), batch["label"]
                )
                optimizer.zero_grad()
                loss.backward()  # an all-reduce: every rank must take this step
                optimizer.step()
            epochs.append(keys)

        # Mid-epoch state after 2 batches, the rest of the epoch, then restores of the state.
        first = loader()
        batches = iter(first)
        for _ in range(2):
            next(batches)
        state = first.state_dict()
        rest = [list(b["key"]) for b in batches]
        states: list = [None] * world
        dist.all_gather_object(states, state)
        resumed = {}
        for name, s in (("own", state), ("rank0", states[0])):
            again = loader()
            again.load_state_dict(s)
            resumed[name] = [list(b["key"]) for b in again]

        plain = rico.torch.Loader(db, bands=["B01"], batch_size=4, seed=9, threads=1)
        part = [int(i) for i in plain.loader.indices()]
        plain_steps = sum(1 for _ in plain)

        Path(out, f"{rank}.json").write_text(
            json.dumps(
                {
                    "rank": rank,
                    "world": world,
                    "rows": len(ben),
                    "len": len(train),
                    "epochs": epochs,
                    "state": state,
                    "rest": rest,
                    "resumed": resumed,
                    "plain_rows": len(plain.keys),
                    "plain_part": part,
                    "plain_steps": plain_steps,
                    "plain_len": len(plain),
                    "weights": float(np.float64(model.module.weight.detach().double().sum())),
                }
            )
        )
    finally:
        dist.destroy_process_group()
