"""Every loader's epoch order, pinned: the seeded shuffle per epoch, the rank split, the epoch
rule of successive iterations and ``len``. The numbers were taken from the loaders before they
shared one order helper, so that a change to the helper that moves any sample shows here.

No database is read: the orders depend on the number of rows only, and ``iter()`` chooses the
epoch before the first batch is made."""

from __future__ import annotations

import pytest
from rico.bigearthnet import BigEarthNetLoader
from rico.loader import Loader

ROWS = 23

# (seed, epoch, rank, world_size, shuffle) -> the positions that rank visits in that epoch.
ORDERS = {
    (7, 0, 0, 1, True): [15, 4, 18, 3, 14, 12, 10, 0, 19, 17, 8, 7, 1, 21, 13, 6, 16, 5, 22, 20, 2, 9, 11],
    (7, 3, 1, 3, True): [19, 22, 13, 12, 0, 15, 16],
    (0, 1, 2, 4, True): [18, 22, 11, 9, 6],
    (7, 2, 1, 3, False): [1, 4, 7, 10, 13, 16, 19],
}  # fmt: skip

# (world_size, batch_size, drop_last) -> len(loader) over ROWS rows.
LENGTHS = {
    (1, 4, False): 6,
    (1, 4, True): 5,
    (3, 4, False): 2,
    (3, 4, True): 1,
    (4, 6, False): 1,
    (4, 6, True): 0,
}


class _Rows:
    """Stands in for a BigEarthNet split of ROWS rows (the loader only counts them here)."""

    def __len__(self) -> int:
        return ROWS


def make(kind, seed=0, rank=0, world_size=1, shuffle=True, batch_size=4, drop_last=False):
    if kind == "Loader":
        return Loader(
            None, keys=[f"k{i}" for i in range(ROWS)], bands=["B02"], batch_size=batch_size,
            shuffle=shuffle, seed=seed, rank=rank, world_size=world_size, drop_last=drop_last,
        )  # fmt: skip
    return BigEarthNetLoader(
        _Rows(), batch_size, shuffle, seed, rank, world_size, drop_last, None, 2
    )


KINDS = ["Loader", "BigEarthNetLoader"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(ORDERS))
def test_order_of_seed_epoch_and_rank(kind, case):
    seed, epoch, rank, world_size, shuffle = case
    loader = make(kind, seed=seed, rank=rank, world_size=world_size, shuffle=shuffle)
    loader.set_epoch(epoch)
    assert loader.indices().tolist() == ORDERS[case]


@pytest.mark.parametrize("kind", KINDS)
def test_ranks_are_disjoint_and_equal(kind):
    parts = [make(kind, seed=3, rank=r, world_size=4).indices().tolist() for r in range(4)]
    assert all(len(p) == ROWS // 4 for p in parts)
    assert len({i for p in parts for i in p}) == 4 * (ROWS // 4)


@pytest.mark.parametrize("kind", KINDS)
def test_iterations_advance_the_epoch_unless_set(kind):
    loader = make(kind, seed=7, rank=1, world_size=3)
    seen = []
    iter(loader)
    seen.append(loader.epoch)
    iter(loader)
    seen.append(loader.epoch)
    loader.set_epoch(5)
    iter(loader)
    seen.append(loader.epoch)
    iter(loader)
    seen.append(loader.epoch)
    assert seen == [0, 1, 5, 6]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(LENGTHS))
def test_len(kind, case):
    world_size, batch_size, drop_last = case
    if LENGTHS[case] == 0:
        # A loader that would yield nothing is refused when made, saying why.
        with pytest.raises(ValueError, match="would yield nothing: drop_last=True"):
            make(kind, world_size=world_size, batch_size=batch_size, drop_last=drop_last)
        return
    loader = make(kind, world_size=world_size, batch_size=batch_size, drop_last=drop_last)
    assert len(loader) == LENGTHS[case]
