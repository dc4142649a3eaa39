"""Training runs as users run them, on a small generated BigEarthNet v2 database:

- mid-epoch resume of every loader (``state_dict``/``load_state_dict``): exactly the batches not
  yet yielded, in order, without reading the records before them; other world sizes;
- a real gloo process group of 2 processes: disjoint equal parts, equal step counts with
  ``drop_last=False`` under ``DistributedDataParallel``, the same reshuffle on every rank,
  resume from each rank's state and from rank 0's;
- ``examples/train_bigearthnet.py`` on CPU: one process (resumed from a checkpoint, bit for
  bit) and ``torchrun`` with 2 processes;
- ``rico.lightning.BigEarthNetDataModule``: a 2-step ``Trainer`` fit whose checkpoint resumes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rico
import rico.torch
import torch
from support.bigearthnet import convert
from support.ddp import BATCH, worker
from support.trees import make_bigearthnet

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "train_bigearthnet.py"
SMALL = dict(split=None, bands=["B01"], size=20)  # 20x20 native: reading costs nothing


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    """(database, metadata.parquet) of 64 patches (about 47 rows without snow and cloud)."""
    root = tmp_path_factory.mktemp("train")
    metadata = make_bigearthnet(root / "src", 64)
    db = root / "ben.lmdb"
    convert(root / "src", db, progress=False)
    return db, metadata


def ben(data, **options):
    db, metadata = data
    return rico.BigEarthNet(db, metadata=metadata, **{**SMALL, **options})


# -- resuming a loader --------------------------------------------------------------------------
def make(kind: str, data, **options):
    """A loader of ``kind`` and a function giving a batch's identity (keys, or its images)."""
    db, _ = data
    if kind == "ben.loader":
        return ben(data).loader(threads=1, **options), lambda b: b["key"]
    if kind == "torch.BigEarthNetLoader":
        return rico.torch.BigEarthNetLoader(ben(data), threads=1, **options), lambda b: b["key"]
    if kind == "Loader":
        return rico.Loader(rico.Dataset(db), bands=["B01"], threads=1, **options), np.copy
    return rico.torch.Loader(db, bands=["B01"], threads=1, **options), lambda b: b.numpy().copy()


KINDS = ["Loader", "torch.Loader", "ben.loader", "torch.BigEarthNetLoader"]


def same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("kind", KINDS)
def test_state_after_k_batches_resumes_exactly_the_rest(kind, data):
    options = dict(batch_size=5, seed=3)
    reference, ident = make(kind, data, **options)
    epochs = [[ident(b) for b in reference] for _ in range(2)]
    n = len(epochs[0])
    assert n == len(reference) >= 4
    for k in (0, 1, 3, n - 1, n):
        first, _ = make(kind, data, **options)
        batches = iter(first)
        taken = [ident(next(batches)) for _ in range(k)]
        state = json.loads(json.dumps(first.state_dict()))  # plain numbers: JSON round trip
        assert state["epoch"] == 0 and state["batches"] == k and state["world_size"] == 1
        assert state["position"] == min(5 * k, state["epoch_length"]) and state["seed"] == 3
        restored, _ = make(kind, data, batch_size=5, seed=99)  # the state's seed is taken
        restored.load_state_dict(state)
        assert restored.state_dict() == state  # nothing moves before the next iteration
        if k < n:
            rest = [ident(b) for b in restored]
            assert same(taken + rest, epochs[0]) and len(rest) == n - k
        # then the epochs go on as in the run that was never stopped (a state taken after the
        # last batch of an epoch resumes at the next epoch)
        assert same([ident(b) for b in restored], epochs[1])
        assert restored.epoch == 1


def test_resume_reads_none_of_the_skipped_records(data):
    db, _ = data
    ds = rico.Dataset(db)
    keys = ds.keys(bands=["B01"])
    first = rico.Loader(ds, keys=keys, bands=["B01"], batch_size=4, seed=1, threads=1)
    batches = iter(first)
    for _ in range(3):
        next(batches)
    rest = [b.copy() for b in batches]
    # The same rows, but the records of the 12 positions already yielded are not in the
    # database: reading any of them would fail.
    skipped = set(first.indices()[:12].tolist())
    holes = [f"missing-{i}" if i in skipped else k for i, k in enumerate(keys)]
    with pytest.raises(rico.UsageError, match="missing-"):
        list(rico.Loader(ds, keys=holes, bands=["B01"], batch_size=4, seed=1, threads=1))
    restored = rico.Loader(ds, keys=holes, bands=["B01"], batch_size=4, threads=1)
    state = first.state_dict()
    state["position"], state["batches"] = 12, 3
    restored.load_state_dict(state)
    assert same([b.copy() for b in restored], rest)


def test_set_epoch_after_restore_keeps_the_epoch_or_starts_another(data):
    loader = ben(data).loader(batch_size=4, seed=2, threads=1)
    epoch0 = [b["key"] for b in loader]
    batches = iter(ben(data).loader(batch_size=4, seed=2, threads=1))
    stopped = ben(data).loader(batch_size=4, seed=2, threads=1)
    batches = iter(stopped)
    next(batches), next(batches)
    state = stopped.state_dict()

    again = ben(data).loader(batch_size=4, seed=2, threads=1)
    again.load_state_dict(state)
    again.set_epoch(0)  # the restored epoch: its rest
    assert [b["key"] for b in again] == epoch0[2:]

    other = ben(data).loader(batch_size=4, seed=2, threads=1)
    other.load_state_dict(state)
    other.set_epoch(4)  # another epoch: from its start
    expected = ben(data).loader(batch_size=4, seed=2, threads=1)
    expected.set_epoch(4)
    assert [b["key"] for b in other] == [b["key"] for b in expected]


def test_states_before_and_at_the_end_of_an_epoch(data):
    reference = ben(data).loader(batch_size=4, seed=2, threads=1)
    epochs = [[b["key"] for b in reference] for _ in range(3)]

    fresh = ben(data).loader(batch_size=4, seed=2, threads=1)
    fresh.set_epoch(1)
    state = fresh.state_dict()
    assert not state["started"] and state["epoch"] == 1 and state["position"] == 0
    restored = ben(data).loader(batch_size=4, seed=2, threads=1)
    restored.load_state_dict(state)
    assert [b["key"] for b in restored] == epochs[1]

    done = ben(data).loader(batch_size=4, seed=2, threads=1)
    list(done)
    state = done.state_dict()
    assert state["position"] == state["epoch_length"]
    restored = ben(data).loader(batch_size=4, seed=2, threads=1)
    restored.load_state_dict(state)  # nothing left of epoch 0: the next iteration is epoch 1
    assert [b["key"] for b in restored] == epochs[1]
    restored = ben(data).loader(batch_size=4, seed=2, threads=1)
    restored.load_state_dict(state)
    restored.set_epoch(0)  # a loop that sets the restored epoch gets its (empty) rest
    assert [b["key"] for b in restored] == []
    assert [b["key"] for b in restored] == epochs[1]


def parts(data, world: int, state=None, batch_size: int = 2, **options) -> list[list[str]]:
    """Every rank's keys of the next iteration, from ``state`` when given."""
    out = []
    for rank in range(world):
        loader = ben(data).loader(
            batch_size=batch_size, seed=7, rank=rank, world_size=world, threads=1, **options
        )
        if state is not None:
            loader.load_state_dict(state)
        out.append([k for b in loader for k in b["key"]])
    return out


@pytest.mark.parametrize("was, now", [(4, 2), (4, 1), (2, 4), (1, 3)])
def test_another_world_size_sees_every_remaining_sample_once(data, was, now):
    rows = len(ben(data))
    stopped = ben(data).loader(batch_size=2, seed=7, rank=0, world_size=was, threads=1)
    batches = iter(stopped)
    next(batches), next(batches)
    state = stopped.state_dict()
    before = parts(data, was)
    seen = {k for p in before for k in p[:4]}  # 2 batches of 2 on every rank
    left = {k for p in before for k in p[4:]}
    assert state["position"] == 4 * was == len(seen)
    if (state["epoch_length"] - state["position"]) % now:
        with pytest.raises(ValueError, match="do not split evenly over"):
            parts(data, now, state)
        return
    after = parts(data, now, state)
    flat = [k for p in after for k in p]
    assert len({len(p) for p in after}) == 1  # equal parts: equal step counts
    assert len(flat) == len(set(flat)) and set(flat) == left and not set(flat) & seen
    assert len(seen) + len(left) == rows // was * was


def test_states_of_another_dataset_are_refused(data):
    state = ben(data).loader(batch_size=4, threads=1).state_dict()
    fewer = ben(data, split="train").loader(batch_size=4, threads=1)
    with pytest.raises(ValueError, match="rows"):
        fewer.load_state_dict(state)
    with pytest.raises(ValueError, match="not a loader state"):
        fewer.load_state_dict({"epoch": 1})


# -- a real process group -----------------------------------------------------------------------
def test_two_ranks_under_gloo_ddp(data, tmp_path):
    db, metadata = data
    world = 2
    init = (tmp_path / "rendezvous").as_uri()
    torch.multiprocessing.spawn(
        worker, args=(world, init, str(db), str(metadata), str(tmp_path)), nprocs=world
    )
    runs = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(world)]
    rows = runs[0]["rows"]
    assert rows % world and (rows // world) % BATCH, "the rows must leave a short last batch"
    keys = ben(data).keys
    for epoch in range(2):
        per_rank = [[k for b in run["epochs"][epoch] for k in b] for run in runs]
        # disjoint parts of equal length, the same number of steps (the DDP all-reduce of every
        # step would have hung otherwise), a short last batch since drop_last=False
        assert [len(p) for p in per_rank] == [rows // world] * world
        assert not set(per_rank[0]) & set(per_rank[1])
        assert [len(run["epochs"][epoch]) for run in runs] == [run["len"] for run in runs]
        assert len(runs[0]["epochs"][epoch][-1]) == (rows // world) % BATCH
        # one shuffle shared by the ranks: rank r holds every world-th key of the epoch's order
        order = np.random.default_rng([5, epoch]).permutation(rows)[: rows // world * world]
        merged = [per_rank[i % world][i // world] for i in range(len(order))]
        assert merged == [keys[i] for i in order]
    assert runs[0]["epochs"][0] != runs[0]["epochs"][1]  # set_epoch reshuffled
    assert runs[0]["weights"] == runs[1]["weights"]  # one model, kept in step
    for run in runs:
        assert run["state"]["world_size"] == world and run["state"]["position"] == 2 * BATCH * world
        assert run["resumed"]["own"] == run["rest"] == run["resumed"]["rank0"]
    assert {k: v for k, v in runs[0]["state"].items() if k != "rank"} == {
        k: v for k, v in runs[1]["state"].items() if k != "rank"
    }
    parts_ = [run["plain_part"] for run in runs]
    assert [len(p) for p in parts_] == [runs[0]["plain_rows"] // world] * world
    assert not set(parts_[0]) & set(parts_[1])
    assert [run["plain_steps"] for run in runs] == [run["plain_len"] for run in runs]
    assert runs[0]["plain_steps"] == runs[1]["plain_steps"]


# -- the example script -------------------------------------------------------------------------
def example(data, tmp_path: Path, *extra: str, launcher: tuple[str, ...] = ()) -> dict:
    db, metadata = data
    summary = tmp_path / f"summary-{len(list(tmp_path.glob('summary-*')))}.json"
    command = [
        sys.executable, *launcher, str(EXAMPLE), "--db", str(db), "--metadata", str(metadata),
        "--device", "cpu", "--arch", "small", "--batch-size", "2", "--threads", "1",
        "--log-every", "1", "--val-batches", "2", "--summary", str(summary), *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(summary.read_text())


def test_example_trains_on_cpu_and_resumes_bit_for_bit(data, tmp_path):
    whole = example(
        data, tmp_path, "--max-steps", "5", "--save-every", "3", "--checkpoint", "ck-{step}.pt"
    )
    assert whole["steps"] == 5 and whole["world_size"] == 1
    assert set(whole["validation"]) == {"ap_macro", "ap_micro", "loss"}
    assert 0.0 <= whole["validation"]["ap_micro"] <= 1.0
    checkpoint = torch.load(tmp_path / "ck-3.pt", weights_only=False)
    assert checkpoint["step"] == 3 and checkpoint["loader"]["batches"] == 3
    resumed = example(
        data, tmp_path, "--max-steps", "5", "--resume", "ck-3.pt", "--checkpoint", "re-{step}.pt"
    )
    assert resumed["losses"] == whole["losses"][3:]  # the same batches, the same steps
    a = torch.load(tmp_path / "ck-5.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "re-5.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["loader"] == whole["loader"]


def test_example_under_torchrun_with_two_gloo_processes(data, tmp_path):
    launcher = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
    run = example(data, tmp_path, "--max-steps", "3", "--checkpoint", "ck.pt", launcher=launcher)
    assert run["steps"] == 3 and run["world_size"] == 2
    assert run["loader"]["world_size"] == 2 and run["loader"]["position"] == 3 * 2 * 2
    assert len(torch.load(tmp_path / "ck.pt", weights_only=False)["loader"]) > 0


# -- Lightning ----------------------------------------------------------------------------------
def test_lightning_datamodule_fits_and_resumes_from_its_checkpoint(data, tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from rico.lightning import BigEarthNetDataModule

    db, metadata = data

    class Model(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 60 * 60, 19))
            self.seen: list[list[float]] = []

        def training_step(self, batch, index):
            x, y = batch
            self.seen.append(x.sum(dim=(1, 2, 3)).tolist())
            return torch.nn.functional.binary_cross_entropy_with_logits(self.net(x), y)

        def validation_step(self, batch, index):
            x, y = batch
            self.log(
                "val_loss", torch.nn.functional.binary_cross_entropy_with_logits(self.net(x), y)
            )

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def datamodule() -> BigEarthNetDataModule:
        # ConfigILM's arguments: 3 channels = RGB, at 60 x 60 (published statistics exist)
        return BigEarthNetDataModule(
            {"images_lmdb": db, "metadata_parquet": metadata}, batch_size=2,
            img_size=(3, 60, 60), num_workers_dataloader=0, threads=1,
        )  # fmt: skip

    def fit(steps: int, **options) -> tuple[Model, pl.Trainer]:
        torch.manual_seed(0)
        model = Model()
        trainer = pl.Trainer(
            accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
            limit_val_batches=1, default_root_dir=tmp_path,
        )  # fmt: skip
        trainer.fit(model, datamodule=datamodule(), **options)
        return model, trainer

    model, trainer = fit(2)
    assert len(model.seen) == 2
    trainer.save_checkpoint(tmp_path / "two.ckpt")
    state = torch.load(tmp_path / "two.ckpt", weights_only=False)["loops"]["fit_loop"]
    (loader_state,) = state["state_dict"]["combined_loader"]
    assert loader_state["epoch"] == 0 and loader_state["position"] == 4

    whole, _ = fit(5)
    resumed, _ = fit(5, ckpt_path=tmp_path / "two.ckpt")
    assert whole.seen[:2] == model.seen and resumed.seen == whole.seen[2:]

    dm = datamodule()
    dm.setup("test")
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (2, 3, 60, 60) and y.shape == (2, 19)


def test_lightning_datamodule_follows_configilm_bands_rows_and_options(data):
    pytest.importorskip("lightning.pytorch")
    from rico.lightning import CONFIGILM_BANDS, BigEarthNetDataModule

    db, metadata = data
    dirs = {"images_lmdb": db, "metadata_parquet": metadata, "metadata_snow_cloud_parquet": "-"}
    dm = BigEarthNetDataModule(
        dirs, batch_size=4, img_size=(12, 60, 60), max_len=6, threads=1, as_dict=True,
        patch_prefilter=lambda key: not key.endswith(("1_0", "5_0")),
    )  # fmt: skip
    dm.setup("validate")
    assert dm.train_ds is None and dm.test_ds is None
    val = dm.val_ds
    assert val.bands == CONFIGILM_BANDS[12] == ["VV", "VH", *CONFIGILM_BANDS[10]]
    assert val.classes == tuple(sorted(val.classes))  # ConfigILM's label order
    reference = rico.BigEarthNet(
        db, metadata=metadata, split="validation", bands=CONFIGILM_BANDS[12], size=60,
        normalize="bigearthnet-v2", label_order="lexicographic", masks=False,
    )  # fmt: skip
    kept = sorted(k for k in reference.keys if not k.endswith(("1_0", "5_0")))[:6]
    assert len(kept) == 6 and kept != sorted(reference.keys)[:6]
    assert val.keys == kept and len(dm.val_dataloader()) == 2
    batch = next(iter(dm.val_dataloader()))  # validation: not shuffled
    assert batch["key"] == kept[:4]
    expected = reference.batch([reference.keys.index(k) for k in kept[:4]])
    assert torch.equal(batch["image"], torch.from_numpy(expected["image"]))
    assert torch.equal(batch["label"], torch.from_numpy(expected["label"]))
    with pytest.raises(ValueError, match="channel configurations"):
        BigEarthNetDataModule(dirs, img_size=(5, 120, 120))
