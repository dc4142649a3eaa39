"""BigEarthNet v2's ``metadata.parquet``: reading its columns (pyarrow) and its labels as
multi-hot rows."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._rico import UsageError
from .checks import InputTypeError, InputValueError
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


def check_unique(patch_ids: list[str], path: str) -> None:
    """Refuses a table where a ``patch_id`` appears in more than one row."""
    if len(set(patch_ids)) == len(patch_ids):
        return
    seen: dict[str, int] = {}
    for p in patch_ids:
        seen[p] = seen.get(p, 0) + 1
    repeated = [(p, n) for p, n in seen.items() if n > 1]
    first, times = repeated[0]
    raise InputValueError(
        f"patch_id {first!r} appears in {times} rows of {path} ({len(repeated)} patch_ids "
        "appear in more than one row); each patch needs exactly one row: remove the duplicates"
    )


def string_column(table: Any, name: str, path: str, rows: np.ndarray) -> list[str]:
    """The text column ``name`` as a list; an error naming the file, the column and the row
    (``rows``: the file's row number of each row of ``table``) for a column of another type
    or a null."""
    import pyarrow as pa

    column = table.column(name)
    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if not is_text(kind):
        raise InputTypeError(
            f"column {name!r} of {path} holds {column.type} values, not text; BigEarthNet "
            f"v2's metadata.parquet has {name} as strings such as {EXAMPLES[name]!r}"
        )
    values = column.to_pylist()
    if column.null_count:
        i = values.index(None)
        raise InputValueError(
            f"column {name!r} of {path} is null in row {int(rows[i])}"
            f"{of_patch(table, name, i)}; every row needs its {name}"
        )
    return values


def bool_column(table: Any, name: str, path: str) -> np.ndarray:
    """The boolean column ``name`` (nulls as False); an error naming the file and the column
    for a column of another type (e.g. the text "True")."""
    import pyarrow as pa

    column = table.column(name)
    if not (pa.types.is_boolean(column.type) or pa.types.is_null(column.type)):
        raise InputTypeError(
            f"column {name!r} of {path} holds {column.type} values, not booleans; BigEarthNet "
            f"v2's metadata.parquet has {name} as true/false: convert the column to booleans"
        )
    return np.asarray(column.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def multi_hot(table: Any, classes: Sequence[str], path: str, rows: np.ndarray) -> np.ndarray:
    """The (rows, classes) float32 multi-hot of the ``labels`` list column, vectorised; an error
    naming the file, the patch and its row for a column that is not lists of class names, a
    null list or a null name (``rows``: the file's row number of each row of ``table``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = table.column("labels").combine_chunks()
    listed = (
        pa.types.is_list(column.type)
        or pa.types.is_large_list(column.type)
        or pa.types.is_fixed_size_list(column.type)
    )
    if not listed or not is_text(column.type.value_type):
        raise InputTypeError(
            f"column 'labels' of {path} holds {column.type} values, not lists of class names; "
            "BigEarthNet v2's metadata.parquet has one list per patch, such as "
            "['Arable land', 'Pastures']"
        )
    if column.null_count:
        i = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputValueError(
            f"the labels of row {int(rows[i])}{of_patch(table, 'labels', i)} of {path} are null; "
            "give every row a list of its class names"
        )
    out = np.zeros((len(column), len(classes)), dtype=np.float32)
    names = pc.list_flatten(column)
    parents = pc.list_parent_indices(column).to_numpy()
    if names.null_count:
        i = int(parents[np.flatnonzero(names.is_null().to_numpy(zero_copy_only=False))[0]])
        raise InputValueError(
            f"the labels of row {int(rows[i])}{of_patch(table, 'labels', i)} of {path} hold a "
            "null; give every row a list of class names"
        )
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


#: An example value of each text column, for messages.
EXAMPLES = {
    "patch_id": "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57",
    "s1_name": "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_26_57",
    "split": "train",
}


def is_text(kind: Any) -> bool:
    """Whether the Arrow type ``kind`` is a string type."""
    import pyarrow as pa

    is_view = getattr(pa.types, "is_string_view", lambda _: False)  # pyarrow >= 16
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or is_view(kind))


def of_patch(table: Any, column: str, i: int) -> str:
    """ " (patch <patch_id>)" of row ``i`` for a message about another column, when it has one."""
    if column == "patch_id":
        return ""
    value = table.column("patch_id")[i].as_py()
    return f" (patch {value})" if isinstance(value, str) else ""
