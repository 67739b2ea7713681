"""Manifest helpers on a small dataset written without Ray (the shard writer driven directly)."""

import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from data_gen import GenerationRequest
from data_gen.pipeline import build_manifest
from data_gen.shards import plan_shards, produce_shard
from sciml.core.files import write_json
from sciml.core.layout import COEFF_COLUMNS, COLUMNS
from sciml.data.manifest import (MANIFEST_KEYS, SHARD_HASH, file_hash, file_sha256, is_complete, load_manifest,
                                 read_split, shard_hash, split_files, verify_shard)
from sciml.data.schema import MANIFEST_NAME
from sciml.physics import SystemSpec, generate_examples

REQUEST = GenerationRequest(SystemSpec.parse("SYS-2(0.2,1)"), n_train=25, n_val=0, n_test=4, resolution=16, seed=3,
                            shard_size=10)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ds")
    results = [produce_shard(directory, plan, REQUEST.spec, REQUEST.seed, REQUEST.resolution, REQUEST.content_hash)
               for plan in plan_shards(REQUEST.counts, REQUEST.shard_size)]
    write_json(directory / MANIFEST_NAME, build_manifest(REQUEST, results))
    return directory


def test_manifest_has_exactly_the_documented_keys(dataset):
    manifest = load_manifest(dataset)
    assert tuple(manifest) == MANIFEST_KEYS
    assert manifest["counts"] == {"train": 25, "val": 0, "test": 4}
    assert [s["file"] for s in manifest["shards"]["train"]] == [f"train/part-0000{i}.parquet" for i in range(3)]
    assert [(s["start"], s["stop"], s["rows"]) for s in manifest["shards"]["train"]] == [(0, 10, 10), (10, 20, 10),
                                                                                         (20, 25, 5)]
    assert manifest["shards"]["val"] == [] and manifest["spec"]["system"] == "advdiff"
    assert manifest["spec"]["diffusion"] == 0.01 and manifest["spec"]["max_abs_u"] == 2.0


@pytest.mark.parametrize("limit, count", [(None, 3), (0, 0), (1, 1), (10, 1), (11, 2), (25, 3), (999, 3)])
def test_split_files_cover_only_what_is_asked(dataset, limit, count):
    files = split_files(dataset, "train", limit)
    assert len(files) == count
    assert all(f.startswith("/") and f.endswith(f"part-0000{i}.parquet") for i, f in enumerate(files))


def test_read_split_returns_the_generated_rows(dataset):
    got = read_split(dataset, "train", limit=13)
    expected = generate_examples(REQUEST.spec, REQUEST.seed, "train", np.arange(13), 16)
    assert list(got) == list(COLUMNS)
    assert got["source"].dtype == np.float32 and got["source"].shape == (13, 16, 16)
    for name in COLUMNS:
        np.testing.assert_array_equal(got[name], expected[name])
    assert len(read_split(dataset, "train")["index"]) == 25


def test_read_split_of_an_empty_split_keeps_the_columns(dataset):
    got = read_split(dataset, "val")
    assert got["source"].shape == (0, 16, 16) and got["index"].dtype == np.int64 and set(got) == set(COLUMNS)


def test_normalization_statistics_come_from_the_train_split(dataset):
    manifest = load_manifest(dataset)
    train = read_split(dataset, "train")
    rms = np.sqrt(np.mean(train["source"].astype(np.float64) ** 2, axis=(1, 2)))
    assert manifest["normalization"]["norm"] == "rms"
    np.testing.assert_allclose(manifest["normalization"]["f_ref"], np.median(rms), rtol=1e-12)
    c_ref = [float(np.median(np.abs(train[c]))) or 1.0 for c in COEFF_COLUMNS]
    np.testing.assert_allclose(manifest["normalization"]["c_ref"], c_ref, rtol=1e-12)
    assert manifest["normalization"]["c_ref"][-1] == 1.0  # omega is 0 for SYS-2


def test_is_complete_notices_missing_pieces(dataset, tmp_path):
    assert is_complete(dataset)
    manifest = load_manifest(dataset)
    broken = tmp_path / "broken"
    (broken / "train").mkdir(parents=True)
    (broken / "test").mkdir()
    for split in ("train", "test"):
        for shard in manifest["shards"][split][:-1] if split == "train" else manifest["shards"][split]:
            (broken / shard["file"]).write_bytes((dataset / shard["file"]).read_bytes())
    (broken / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert not is_complete(broken)  # last train shard missing
    assert not is_complete(tmp_path / "nothing-here")
    (broken / MANIFEST_NAME).write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ValueError, match="format_version"):
        load_manifest(broken)


def test_shard_entries_name_their_content_hash_algorithm(dataset, tmp_path):
    manifest = load_manifest(dataset)
    entries = manifest["shards"]["train"] + manifest["shards"]["test"]
    assert SHARD_HASH == "xxh3_128"
    for entry in entries:
        assert set(entry) == {"file", "start", "stop", "rows", "xxh3_128"}
        algorithm, value = shard_hash(entry)
        assert algorithm == "xxh3_128" and len(value) == 32 and int(value, 16) >= 0
        assert value == file_hash(dataset / entry["file"]) and verify_shard(dataset, entry)
    # Older manifests record sha256; they still verify.
    old = {k: v for k, v in entries[0].items() if k != "xxh3_128"}
    old["sha256"] = file_sha256(dataset / entries[0]["file"])
    assert shard_hash(old)[0] == "sha256" and verify_shard(dataset, old)
    # A changed or missing file does not.
    broken = tmp_path / entries[0]["file"]
    broken.parent.mkdir(parents=True)
    data = bytearray((dataset / entries[0]["file"]).read_bytes())
    data[len(data) // 2] ^= 1
    broken.write_bytes(bytes(data))
    assert not verify_shard(tmp_path, entries[0]) and not verify_shard(tmp_path, old)
    assert not verify_shard(tmp_path, entries[1])
    with pytest.raises(KeyError, match="content hash"):
        shard_hash({"file": "x.parquet"})


def test_shards_read_with_plain_pyarrow_without_ray(dataset):
    shard = split_files(dataset, "train")[0]
    code = f"""
import sys
import pyarrow.parquet as pq
from sciml.data.schema import table_to_numpy
from sciml.data.manifest import read_split
cols = table_to_numpy(pq.read_table({shard!r}))
print(cols["source"].shape, cols["source"].dtype, read_split({str(dataset)!r}, "test")["solution"].shape)
assert "ray" not in sys.modules, "ray was imported"
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=120)
    assert out.stdout.split("\n")[0] == "(10, 16, 16) float32 (4, 16, 16)"
    assert pq.read_schema(shard).field("source").type.extension_name == "arrow.fixed_shape_tensor"
