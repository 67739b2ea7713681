"""The one on-disk layout of a dataset: Parquet columns and types, shard and manifest names.

A dataset directory holds ``{train,val,test}/part-NNNNN.parquet`` and ``manifest.json``.
Fields are Arrow's canonical ``arrow.fixed_shape_tensor`` (not Ray's extension type),
so plain pyarrow (or any Arrow reader) turns them into ``(rows, n, n)`` arrays.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pyarrow as pa

# The columns are the examples' own (sciml.core.layout): storage only chooses their Arrow types.
from sciml.core.layout import COEFF_COLUMNS, COLUMNS, FIELD_COLUMNS

MANIFEST_NAME = "manifest.json"


def shard_name(shard: int) -> str:
    return f"part-{shard:05d}.parquet"


def tensor_type(n: int) -> pa.DataType:
    return pa.fixed_shape_tensor(pa.float32(), (n, n))


def arrow_schema(n: int) -> pa.Schema:
    fields = [pa.field("index", pa.int64(), nullable=False)]
    fields += [pa.field(name, tensor_type(n), nullable=False) for name in FIELD_COLUMNS]
    fields += [pa.field(name, pa.float64(), nullable=False) for name in COEFF_COLUMNS]
    fields += [pa.field("psi", pa.float64()), pa.field("sparsity", pa.float64(), nullable=False)]
    return pa.schema(fields)


def _tensor_array(values: np.ndarray) -> pa.ExtensionArray:
    values = np.ascontiguousarray(values, dtype=np.float32)
    return pa.FixedShapeTensorArray.from_numpy_ndarray(values)


def to_table(columns: Mapping[str, np.ndarray]) -> pa.Table:
    """Build a table with exactly :data:`COLUMNS` from numpy arrays (fields ``(rows, n, n)``)."""
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise KeyError(f"missing columns {missing}")
    n = int(np.shape(columns["source"])[-1])
    arrays = []
    for name in COLUMNS:
        if name in FIELD_COLUMNS:
            arrays.append(_tensor_array(columns[name]))
        elif name == "index":
            arrays.append(pa.array(np.asarray(columns[name], dtype=np.int64)))
        else:
            arrays.append(pa.array(np.asarray(columns[name], dtype=np.float64)))
    return pa.Table.from_arrays(arrays, schema=arrow_schema(n))


def field_to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A fixed-shape tensor column as a ``(rows, n, n)`` float32 array, no Ray needed."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if isinstance(column.type, pa.FixedShapeTensorType):
        return column.to_numpy_ndarray()
    # Fallback for readers that lost the extension metadata: list<float>[n*n] storage.
    flat = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    side = int(round(np.sqrt(flat.size // max(len(column), 1))))
    return flat.reshape(len(column), side, side)


def table_to_numpy(table: pa.Table) -> dict[str, np.ndarray]:
    """Every column of a shard table as numpy: fields ``(rows, n, n)``, scalars ``(rows,)``."""
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        if name in FIELD_COLUMNS:
            out[name] = field_to_numpy(table.column(name))
        else:
            out[name] = table.column(name).to_numpy()
    return out
