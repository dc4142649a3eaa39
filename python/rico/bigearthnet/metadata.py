"""BigEarthNet v2's ``metadata.parquet``: reading its columns (pyarrow) and its labels as
multi-hot rows."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._rico import UsageError
from .tables import CLASSES


def read_metadata(path: str, columns: list[str]) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(
            "rico.BigEarthNet reads metadata.parquet with pyarrow, which is not installed: "
            "pip install 'rico-eo[bigearthnet]' (or pip install pyarrow)"
        ) from None
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no metadata table at {path}: give metadata= the path of BigEarthNet v2's metadata.parquet"
        )
    schema = pq.read_schema(path)
    for column in columns:
        if column not in schema.names:
            raise UsageError(
                f"{path} has no column {column!r}; BigEarthNet v2's metadata.parquet has patch_id, "
                f"labels, split, country, s1_name, contains_seasonal_snow, contains_cloud_or_shadow "
                f"(this table has {', '.join(schema.names)})"
            )
    return pq.read_table(path, columns=columns)


def bool_column(table: Any, name: str) -> np.ndarray:
    return np.asarray(
        table.column(name).fill_null(False).to_numpy(zero_copy_only=False), dtype=bool
    )


def multi_hot(table: Any, classes: Sequence[str], path: str) -> np.ndarray:
    """The (rows, classes) float32 multi-hot of the ``labels`` list column, vectorised."""
    import pyarrow.compute as pc

    column = table.column("labels").combine_chunks()
    out = np.zeros((len(column), len(classes)), dtype=np.float32)
    names = pc.list_flatten(column)
    parents = pc.list_parent_indices(column).to_numpy()
    encoded = names.dictionary_encode()
    index = {c: i for i, c in enumerate(classes)}
    vocabulary = encoded.dictionary.to_pylist()
    for position, name in enumerate(vocabulary):
        if name not in index:
            row = int(parents[np.flatnonzero(encoded.indices.to_numpy() == position)[0]])
            raise UsageError(
                f"unknown label {name!r} (patch {table.column('patch_id')[row].as_py()}) in {path}; "
                f"the labels are BigEarthNet's 19 classes: {'; '.join(CLASSES)}"
            )
    codes = np.array([index[n] for n in vocabulary], dtype=np.int64)
    out[parents, codes[encoded.indices.to_numpy()]] = 1.0
    return out
