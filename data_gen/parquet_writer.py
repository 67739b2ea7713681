"""A direct Parquet writer for the shard schema, hashing the bytes as it writes them.

The hash is the manifest's shard content hash (``sciml.data.manifest.SHARD_HASH``, XXH3-128)
unless another of ``SHARD_HASHES`` is asked for.

Why not ``pyarrow.parquet.ParquetWriter``: the fields are Arrow ``fixed_shape_tensor``
columns, stored as ``fixed_size_list<float>``, which Parquet can only encode as a LIST with
a repetition and a definition level for every value. pyarrow derives and RLE-encodes those
levels value by value (about 3 ns per value: 95 us per 128 x 128 example, the Parquet write
was 4 times the cost of the same bytes as a binary column). For a list that always has n*n
present values the levels are a constant pattern, so this writer emits them precomputed and
writes the float32 values straight from the numpy arrays (no copy, no per-value work).

The file is what pyarrow writes for the same table with the options the shards always used
(``compression="none"``, no dictionary, no statistics, data page v1, ``store_schema``):

  - the same Parquet schema (LIST / repeated ``list`` / optional ``element`` for fields),
    the same ``ARROW:schema`` key (taken from pyarrow itself), so readers get the
    ``arrow.fixed_shape_tensor`` columns back as before;
  - PLAIN values, RLE/bit-packed hybrid levels, uncompressed v1 data pages of at most
    1 MiB of values that start on row boundaries;
  - column chunk metadata with encodings, encoding statistics and level histograms
    (``size_statistics``), TYPE_ORDER column orders, no value statistics or page index.

Only the column types of the shard schema are supported (int64, float64, and
fixed_shape_tensor of float32 with non-null tensors); anything else is a TypeError. Rows
come from numpy arrays, which have no nulls. The output is a pure function of the rows
and the footer metadata, so a shard has the same bytes whenever it is written.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import BinaryIO, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sciml.data.manifest import SHARD_HASH, new_digest

MAGIC = b"PAR1"
CREATED_BY = b"sciml data_gen shard writer version 1"
PAGE_BYTES = 1 << 20  # values per data page, at most (pyarrow's default data_page_size)
_PIECE = 1 << 18  # bytes hashed then written at a time
# The pyarrow.parquet.ParquetWriter options that write the same file structure (the shards'
# writer before this module; tests and the benchmark use it as the reference).
PYARROW_WRITE_OPTIONS = {"compression": "none", "use_dictionary": False, "write_statistics": False,
                         "version": "2.6", "data_page_version": "1.0", "store_schema": True}

# Thrift compact protocol type ids.
_I32, _I64, _BINARY, _LIST, _STRUCT = 5, 6, 8, 9, 12
# Parquet enums.
_BOOLEAN, _INT32, _INT64, _INT96, _FLOAT, _DOUBLE = 0, 1, 2, 3, 4, 5
_REQUIRED, _OPTIONAL, _REPEATED = 0, 1, 2
_PLAIN, _RLE = 0, 3
_DATA_PAGE = 0
_UNCOMPRESSED = 0
_CONVERTED_LIST = 3
_FILE_VERSION = 2  # what parquet-cpp writes for format version 2.x


# ---------------------------------------------------------------- Thrift compact encoding

def _uvarint(value: int, out: bytearray) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _value(ttype: int, value, out: bytearray) -> None:
    if ttype in (_I32, _I64):
        _uvarint((value << 1) ^ (value >> 63), out)  # zigzag
    elif ttype == _BINARY:
        _uvarint(len(value), out)
        out += value
    elif ttype == _STRUCT:
        if isinstance(value, (bytes, bytearray)):  # already encoded (with its stop byte)
            out += value
        else:
            _struct(value, out)
    elif ttype == _LIST:
        etype, items = value
        if len(items) < 15:
            out.append(len(items) << 4 | etype)
        else:
            out.append(0xF0 | etype)
            _uvarint(len(items), out)
        for item in items:
            _value(etype, item, out)
    else:  # pragma: no cover - only the types above are used
        raise ValueError(f"unsupported thrift type {ttype}")


def _struct(fields: list, out: bytearray) -> None:
    """fields: (field id, type, value) in increasing id order; None values are left out."""
    last = 0
    for fid, ttype, value in fields:
        if value is None:
            continue
        delta = fid - last
        if 0 < delta <= 15:
            out.append(delta << 4 | ttype)
        else:
            out.append(ttype)
            _uvarint((fid << 1) ^ (fid >> 63), out)
        _value(ttype, value, out)
        last = fid
    out.append(0)


def thrift_struct(fields: list) -> bytes:
    out = bytearray()
    _struct(fields, out)
    return bytes(out)


# ---------------------------------------------------------------- RLE / bit-packed hybrid levels

def _rle_run(count: int, value: int, bit_width: int, out: bytearray) -> None:
    """One RLE run: ``count`` copies of ``value`` (count >= 1)."""
    _uvarint(count << 1, out)
    out += value.to_bytes((bit_width + 7) // 8, "little")


def _bit_width(max_level: int) -> int:
    return max(max_level, 0).bit_length()


@lru_cache(maxsize=64)
def _levels(rows: int, length: int, max_rep: int, max_def: int) -> bytes:
    """v1 page levels for ``rows`` rows of ``length`` present values each (length 1: a scalar).

    Repetition levels: 0 at the first value of each row, max_rep after it; definition
    levels: max_def everywhere. Each level stream is prefixed by its byte length (v1).
    """
    out = bytearray()
    if max_rep:
        runs = bytearray()
        row = bytearray()
        _rle_run(1, 0, _bit_width(max_rep), row)
        if length > 1:
            _rle_run(length - 1, max_rep, _bit_width(max_rep), row)
        runs += bytes(row) * rows
        out += struct.pack("<i", len(runs)) + runs
    if max_def:
        runs = bytearray()
        _rle_run(rows * length, max_def, _bit_width(max_def), runs)
        out += struct.pack("<i", len(runs)) + runs
    return bytes(out)


# ---------------------------------------------------------------- schema

@dataclass(frozen=True)
class _Leaf:
    name: str
    path: tuple[bytes, ...]
    physical: int
    dtype: np.dtype  # little-endian numpy dtype of the PLAIN values
    length: int  # values per row (n*n for a tensor, 1 for a scalar)
    shape: tuple[int, ...]  # per-row shape the column must have
    max_rep: int
    max_def: int

    @property
    def row_bytes(self) -> int:
        return self.length * self.dtype.itemsize


def _schema_plan(schema: pa.Schema) -> tuple[list[_Leaf], list[list]]:
    """Leaves to write and the Parquet schema elements, for the supported column types."""
    elements: list[list] = [[(3, _I32, _REQUIRED), (4, _BINARY, b"schema"), (5, _I32, len(schema))]]
    leaves = []
    for field in schema:
        repetition = _OPTIONAL if field.nullable else _REQUIRED
        name = field.name.encode()
        kind = field.type
        if isinstance(kind, pa.FixedShapeTensorType):
            storage = kind.storage_type
            if kind.value_type != pa.float32() or kind.permutation not in (None, list(range(len(kind.shape)))):
                raise TypeError(f"{field.name}: only row-major float32 tensors are supported, got {kind}")
            element = _OPTIONAL if storage.value_field.nullable else _REQUIRED
            elements += [
                [(3, _I32, repetition), (4, _BINARY, name), (5, _I32, 1), (6, _I32, _CONVERTED_LIST),
                 (10, _STRUCT, [(3, _STRUCT, [])])],
                [(3, _I32, _REPEATED), (4, _BINARY, b"list"), (5, _I32, 1)],
                [(1, _I32, _FLOAT), (3, _I32, element), (4, _BINARY, b"element")],
            ]
            leaves.append(_Leaf(field.name, (name, b"list", b"element"), _FLOAT, np.dtype("<f4"),
                                storage.list_size, tuple(kind.shape), 1,
                                int(field.nullable) + 1 + int(element == _OPTIONAL)))
        elif kind in (pa.int64(), pa.float64()):
            physical, dtype = (_INT64, "<i8") if kind == pa.int64() else (_DOUBLE, "<f8")
            elements.append([(1, _I32, physical), (3, _I32, repetition), (4, _BINARY, name)])
            leaves.append(_Leaf(field.name, (name,), physical, np.dtype(dtype), 1, (), 0, int(field.nullable)))
        else:
            raise TypeError(f"{field.name}: column type {kind} is not supported by the shard writer")
    return leaves, elements


def _arrow_schema_key(schema: pa.Schema) -> bytes:
    """The ``ARROW:schema`` footer value pyarrow stores for ``schema`` (from pyarrow itself)."""
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, schema, store_schema=True):
        pass
    return pq.read_metadata(pa.BufferReader(sink.getvalue())).metadata[b"ARROW:schema"]


@lru_cache(maxsize=16)
def _plan(schema: pa.Schema) -> tuple[list[_Leaf], list[bytes], bytes]:
    leaves, elements = _schema_plan(schema)
    return leaves, [thrift_struct(element) for element in elements], _arrow_schema_key(schema)


# ---------------------------------------------------------------- pages

@lru_cache(maxsize=256)
def _page_prefix(rows: int, leaf: _Leaf) -> tuple[bytes, int]:
    """Page header + levels of a data page of ``rows`` rows, and the page's total size."""
    levels = _levels(rows, leaf.length, leaf.max_rep, leaf.max_def)
    size = len(levels) + rows * leaf.row_bytes
    header = thrift_struct([
        (1, _I32, _DATA_PAGE), (2, _I32, size), (3, _I32, size),
        (5, _STRUCT, [(1, _I32, rows * leaf.length), (2, _I32, _PLAIN), (3, _I32, _RLE), (4, _I32, _RLE),
                      (5, _STRUCT, [])]),
    ])
    return header + levels, len(header) + size


class ShardFileWriter:
    """Writes row groups of numpy columns to an open binary file; :meth:`close` returns its hash.

    The digest (``algorithm``, by default the manifest's shard hash) covers every byte
    written, in order, so it equals that hash of the file.
    """

    def __init__(self, handle: BinaryIO, schema: pa.Schema, algorithm: str = SHARD_HASH):
        self._handle = handle
        self._leaves, self._schema, self._arrow_schema = _plan(schema)
        self._digest = new_digest(algorithm)
        self._offset = 0
        self._row_groups: list[bytes] = []
        self._rows = 0
        self._write(MAGIC)

    def _write(self, data) -> None:
        view = memoryview(data).cast("B")
        # In pieces that stay in the L2 cache between hashing and writing: one read from memory, not two.
        for start in range(0, len(view), _PIECE):
            piece = view[start:start + _PIECE]
            self._digest.update(piece)
            self._handle.write(piece)
        self._offset += len(view)

    def _values(self, leaf: _Leaf, column, rows: int) -> np.ndarray:
        values = np.ascontiguousarray(column, dtype=leaf.dtype)
        if values.shape != (rows, *leaf.shape):
            raise ValueError(f"{leaf.name}: expected shape {(rows, *leaf.shape)}, got {values.shape}")
        return values.reshape(rows, leaf.length)

    def write_row_group(self, columns: Mapping[str, np.ndarray]) -> None:
        missing = [leaf.name for leaf in self._leaves if leaf.name not in columns]
        if missing:
            raise KeyError(f"missing columns {missing}")
        rows = len(columns[self._leaves[0].name])
        if rows == 0:
            return
        arrays = [self._values(leaf, columns[leaf.name], rows) for leaf in self._leaves]
        chunks = []
        start = self._offset
        for leaf, values in zip(self._leaves, arrays):
            first = self._offset
            step = max(1, PAGE_BYTES // leaf.row_bytes)
            pages = 0
            for row in range(0, rows, step):
                stop = min(row + step, rows)
                prefix, _ = _page_prefix(stop - row, leaf)
                self._write(prefix)
                self._write(values[row:stop])
                pages += 1
            size = self._offset - first
            histograms = None
            if leaf.max_rep or leaf.max_def:
                rep = [rows, rows * (leaf.length - 1)] if leaf.max_rep else []
                histograms = [(2, _LIST, (_I64, rep)),
                              (3, _LIST, (_I64, [0] * leaf.max_def + [rows * leaf.length]))]
            meta = [(1, _I32, leaf.physical), (2, _LIST, (_I32, [_RLE, _PLAIN])),
                    (3, _LIST, (_BINARY, list(leaf.path))), (4, _I32, _UNCOMPRESSED),
                    (5, _I64, rows * leaf.length), (6, _I64, size), (7, _I64, size), (9, _I64, first),
                    (13, _LIST, (_STRUCT, [[(1, _I32, _DATA_PAGE), (2, _I32, _PLAIN), (3, _I32, pages)]])),
                    (16, _STRUCT, histograms)]
            chunks.append([(2, _I64, 0), (3, _STRUCT, meta)])
        total = self._offset - start
        self._row_groups.append(thrift_struct([(1, _LIST, (_STRUCT, chunks)), (2, _I64, total), (3, _I64, rows),
                                               (5, _I64, start), (6, _I64, total)]))
        self._rows += rows

    def close(self, metadata: Mapping[str, str] | None = None) -> str:
        """Write the footer (``metadata`` first, then ``ARROW:schema``); return the file's hash (hex)."""
        pairs = [[(1, _BINARY, str(k).encode()), (2, _BINARY, str(v).encode())] for k, v in (metadata or {}).items()]
        pairs.append([(1, _BINARY, b"ARROW:schema"), (2, _BINARY, self._arrow_schema)])
        footer = thrift_struct([
            (1, _I32, _FILE_VERSION), (2, _LIST, (_STRUCT, self._schema)), (3, _I64, self._rows),
            (4, _LIST, (_STRUCT, self._row_groups)), (5, _LIST, (_STRUCT, pairs)), (6, _BINARY, CREATED_BY),
            (7, _LIST, (_STRUCT, [[(1, _STRUCT, [])]] * len(self._leaves))),  # TYPE_ORDER per leaf
        ])
        self._write(footer + struct.pack("<I", len(footer)) + MAGIC)
        return self._digest.hexdigest()


def expected_size(schema: pa.Schema, rows: int) -> int:
    """An upper estimate of the bytes a file of ``rows`` rows takes (values, levels, headers, footer)."""
    leaves, _, _ = _plan(schema)
    return rows * sum(leaf.row_bytes + 8 for leaf in leaves) + (64 << 10)


@lru_cache(maxsize=1)
def _fallocate():
    """Linux fallocate(2) through libc, or None: no emulation by writing zeros (posix_fallocate's fallback)."""
    name = ctypes.util.find_library("c")
    try:
        function = ctypes.CDLL(name, use_errno=True).fallocate if name else None
    except (OSError, AttributeError):
        return None
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
        function.restype = ctypes.c_int
    return function


def reserve(handle: BinaryIO, size: int) -> bool:
    """Allocate ``size`` bytes of disk for a new file being written, where the file system can.

    The file's blocks are then allocated once instead of page by page as writes arrive
    (about a third of the CPU cost of writing the shard bytes, on ext4). The file is
    extended to ``size`` with zeros: truncate it at its real end after writing. False (and
    nothing done) where fallocate(2) is not available.
    """
    function = _fallocate()
    try:
        return function is not None and function(handle.fileno(), 0, 0, size) == 0
    except (OSError, ValueError, AttributeError):  # no file descriptor (an in-memory stream)
        return False
