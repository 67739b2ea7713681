"""The direct shard writer against pyarrow's ParquetWriter: same file structure, same data back."""

import hashlib
import io
import struct

import xxhash

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_gen import parquet_writer
from data_gen.parquet_writer import PYARROW_WRITE_OPTIONS, ShardFileWriter
from data_gen.shards import ShardPlan, produce_shard, write_shard
from sciml.core.layout import COLUMNS
from sciml.core.statistics import example_statistics
from sciml.data.manifest import SHARD_HASH, file_hash
from sciml.data.schema import arrow_schema, table_to_numpy, to_table
from sciml.physics import SystemSpec, generate_examples


def write_parquet(path, schema, row_groups, metadata=None, algorithm=SHARD_HASH):
    """Write ``row_groups`` (mappings of numpy columns) to ``path`` directly; return the file's hash."""
    with open(path, "wb") as handle:
        writer = ShardFileWriter(handle, schema, algorithm)
        for columns in row_groups:
            writer.write_row_group(columns)
        return writer.close(metadata)


# ---------------------------------------------------------------- a small Thrift compact decoder

def _varint(data, i):
    out = shift = 0
    while True:
        byte = data[i]
        i += 1
        out |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return out, i


def _value(data, i, kind):
    if kind in (1, 2):
        return kind == 1, i
    if kind in (4, 5, 6):
        raw, i = _varint(data, i)
        return (raw >> 1) ^ -(raw & 1), i
    if kind == 8:
        size, i = _varint(data, i)
        return bytes(data[i:i + size]), i + size
    if kind == 9:
        header = data[i]
        i += 1
        size, element = header >> 4, header & 0x0F
        if size == 15:
            size, i = _varint(data, i)
        items = []
        for _ in range(size):
            item, i = _value(data, i, element)
            items.append(item)
        return items, i
    if kind == 12:
        return _struct(data, i)
    raise ValueError(f"thrift type {kind} not expected in these files")


def _struct(data, i=0):
    out, last = {}, 0
    while True:
        header = data[i]
        i += 1
        if header == 0:
            return out, i
        kind, delta = header & 0x0F, header >> 4
        if delta:
            field = last + delta
        else:
            raw, i = _varint(data, i)
            field = (raw >> 1) ^ -(raw & 1)
        out[field], i = _value(data, i, kind)
        last = field


def footer(path):
    data = path.read_bytes()
    assert data[:4] == data[-4:] == b"PAR1"
    size = struct.unpack_from("<I", data, len(data) - 8)[0]
    return _struct(data[len(data) - 8 - size:len(data) - 8])[0], data


def structure(meta):
    """The footer without what depends on byte positions, page splits or the writer's name."""
    meta = dict(meta)
    meta.pop(6)  # created_by
    for group in meta[4]:
        for key in (2, 5, 6):  # total_byte_size, file_offset, total_compressed_size
            group.pop(key)
        for chunk in group[1]:
            for key in (6, 7, 9):  # sizes, data_page_offset
                chunk[3].pop(key)
            chunk[3][13] = [{k: v for k, v in stats.items() if k != 3} for stats in chunk[3][13]]  # page counts
    return meta


# ---------------------------------------------------------------- helpers

def batches(system, n, rows, groups):
    spec = SystemSpec.parse(system)
    out = []
    for group in range(groups):
        columns = generate_examples(spec, 1, "train", np.arange(group * rows, (group + 1) * rows), n)
        columns.pop("rejected")
        out.append(columns)
    return out


def assert_same_rows(a, b):
    a, b = table_to_numpy(a), table_to_numpy(b)
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])  # NaN == NaN here (psi), unlike Table.equals
        assert a[name].dtype == b[name].dtype


def write_with_pyarrow(path, n, groups, metadata):
    with pq.ParquetWriter(path, arrow_schema(n), **PYARROW_WRITE_OPTIONS) as writer:
        for columns in groups:
            writer.write_table(to_table(columns), row_group_size=len(columns["index"]))
        writer.add_key_value_metadata(metadata)


@pytest.mark.parametrize("system, n, rows, groups", [("SYS-2(0.2,1)", 8, 3, 1), ("SYS-3(1,10)", 16, 37, 3),
                                                     ("SYS-1(1,5)", 128, 20, 2)])
def test_same_file_structure_and_data_as_pyarrow(tmp_path, system, n, rows, groups):
    data = batches(system, n, rows, groups)
    metadata = {"sciml.split": "train", "sciml.start": "0"}
    ours, theirs = tmp_path / "ours.parquet", tmp_path / "pyarrow.parquet"
    digest = write_parquet(ours, arrow_schema(n), data, metadata)
    write_with_pyarrow(theirs, n, data, metadata)

    assert digest == xxhash.xxh3_128(ours.read_bytes()).hexdigest() == file_hash(ours)
    assert write_parquet(tmp_path / "sha.parquet", arrow_schema(n), data, metadata, "sha256") \
        == hashlib.sha256(ours.read_bytes()).hexdigest()  # same bytes
    table = pq.read_table(ours)
    assert table.schema == pq.read_table(theirs).schema == arrow_schema(n)
    assert table.schema.field("source").type.extension_name == "arrow.fixed_shape_tensor"
    assert_same_rows(table, pq.read_table(theirs))
    got = table_to_numpy(table)
    for name in COLUMNS:
        np.testing.assert_array_equal(got[name], np.concatenate([columns[name] for columns in data]))
    assert got["source"].dtype == np.float32 and got["source"].shape == (rows * groups, n, n)

    file = pq.ParquetFile(ours)
    assert file.num_row_groups == groups and file.metadata.num_rows == rows * groups
    assert_same_rows(file.read_row_groups([groups - 1]), pq.ParquetFile(theirs).read_row_groups([groups - 1]))
    assert {k: v for k, v in file.metadata.metadata.items() if k.startswith(b"sciml.")} == \
        {k.encode(): v.encode() for k, v in metadata.items()}
    assert structure(footer(ours)[0]) == structure(footer(theirs)[0])


def test_column_chunks_split_into_pages_on_row_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet_writer, "PAGE_BYTES", 3 * 16 * 16 * 4)  # 3 rows of a 16 x 16 field per page
    data = batches("SYS-1(1,5)", 16, 10, 1)
    path = tmp_path / "pages.parquet"
    write_parquet(path, arrow_schema(16), data)
    meta, raw = footer(path)
    source = meta[4][0][1][1][3]
    assert source[3] == [b"source", b"list", b"element"] and source[13][0][3] == 4  # pages of 3, 3, 3, 1 rows
    offset, values = source[9], []
    for _ in range(4):
        header, offset = _struct(raw, offset)
        values.append(header[5][1])
        offset += header[3]
    assert values == [3 * 256, 3 * 256, 3 * 256, 256]
    np.testing.assert_array_equal(table_to_numpy(pq.read_table(path))["source"], data[0]["source"])


def test_output_is_a_pure_function_of_the_rows(tmp_path):
    data = batches("SYS-2(0.2,1)", 16, 9, 2)
    first = write_parquet(tmp_path / "a.parquet", arrow_schema(16), data, {"k": "v"})
    second = write_parquet(tmp_path / "b.parquet", arrow_schema(16), data, {"k": "v"})
    assert first == second and (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_empty_batches_are_skipped_and_an_empty_file_reads_back(tmp_path):
    empty = {name: value[:0] for name, value in batches("SYS-1(1,5)", 8, 2, 1)[0].items()}
    path = tmp_path / "empty.parquet"
    write_parquet(path, arrow_schema(8), [empty])
    table = pq.read_table(path)
    assert table.num_rows == 0 and table.schema == arrow_schema(8)


def test_bad_input_is_refused(tmp_path):
    data = batches("SYS-1(1,5)", 8, 2, 1)[0]
    with pytest.raises(KeyError, match="psi"):
        write_parquet(tmp_path / "a.parquet", arrow_schema(8), [{k: v for k, v in data.items() if k != "psi"}])
    with pytest.raises(ValueError, match="source"):
        write_parquet(tmp_path / "b.parquet", arrow_schema(8), [{**data, "source": data["source"][:, :4]}])
    with pytest.raises(TypeError, match="not supported"):
        write_parquet(tmp_path / "c.parquet", pa.schema([pa.field("name", pa.string())]), [])


def test_shard_statistics_equal_those_of_the_written_file(tmp_path):
    spec = SystemSpec.parse("SYS-3(1,10)")
    result = produce_shard(tmp_path, ShardPlan("train", 0, 0, 21), spec, 4, 16, "hash")
    rms, abs_coeffs = example_statistics(table_to_numpy(pq.read_table(tmp_path / "train/part-00000.parquet")))
    np.testing.assert_array_equal(result.rms, rms)
    np.testing.assert_array_equal(result.abs_coeffs, abs_coeffs)
    assert result.digest == xxhash.xxh3_128((tmp_path / "train/part-00000.parquet").read_bytes()).hexdigest()


@pytest.mark.slow
def test_ray_data_reads_the_shards(ray_address, tmp_path):
    import ray.data

    data = batches("SYS-2(0.2,1)", 16, 12, 1)[0]
    write_parquet(tmp_path / "part.parquet", arrow_schema(16), [data])
    rows = ray.data.read_parquet([str(tmp_path / "part.parquet")]).take_batch(12, batch_format="numpy")
    np.testing.assert_array_equal(rows["source"], data["source"])
    np.testing.assert_array_equal(rows["psi"], data["psi"])


def test_reserved_space_changes_no_byte(tmp_path):
    data = batches("SYS-1(1,5)", 16, 37, 3)
    plain = write_shard(tmp_path / "plain.parquet", data, 16, {"a": "b"})
    for rows in (37, 3, 1000):  # per row group: the right count, too few, far too many: cut at the end
        digest = write_shard(tmp_path / f"reserved{rows}.parquet", data, 16, {"a": "b"}, rows=rows * 3)
        assert digest == plain
        assert (tmp_path / f"reserved{rows}.parquet").read_bytes() == (tmp_path / "plain.parquet").read_bytes()
    assert not parquet_writer.reserve(io.BytesIO(), 1 << 20)  # no file descriptor: nothing reserved
