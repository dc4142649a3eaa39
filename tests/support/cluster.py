"""A real Dask cluster on loopback, for the sharded conversions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def local_cluster(n_workers: int = 2) -> Iterator[tuple[Any, Any]]:
    """(cluster, client) of a ``LocalCluster`` of ``n_workers`` single-threaded worker
    processes on 127.0.0.1, without a dashboard; closed on exit."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield cluster, client
