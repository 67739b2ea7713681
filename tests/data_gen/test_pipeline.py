"""generate_dataset on a shared local Ray: invariance to workers and shard size, reuse, resume."""

import shutil

import numpy as np
import pytest

from data_gen import DatasetConflictError, GenerationRequest, generate_dataset
from data_gen import pipeline
from sciml.data.manifest import is_complete, load_manifest, read_split, verify_shard
from sciml.core.layout import COLUMNS, SPLITS
from sciml.physics import SystemSpec

pytestmark = pytest.mark.slow  # a local Ray cluster

SPEC = SystemSpec.parse("SYS-3(1,10)")  # with rejections, the trickiest to keep deterministic


def request(shard_size, **changes):
    fields = {"spec": SPEC, "n_train": 40, "n_val": 9, "n_test": 5, "resolution": 16, "seed": 11,
              "shard_size": shard_size}
    return GenerationRequest(**{**fields, **changes})


@pytest.fixture(scope="module")
def one_worker(ray_address, tmp_path_factory):
    directory = tmp_path_factory.mktemp("one")
    return directory, generate_dataset(request(16), directory, num_workers=1, progress=False)


def test_same_dataset_from_any_worker_count_and_shard_size(one_worker, tmp_path):
    directory, manifest = one_worker
    other = generate_dataset(request(7), tmp_path, num_workers=2, progress=False)
    assert other["content_hash"] == manifest["content_hash"]
    assert [len(other["shards"][s]) for s in SPLITS] == [6, 2, 1]
    assert other["normalization"] == manifest["normalization"] and other["rejections"] == manifest["rejections"]
    assert sum(manifest["rejections"].values()) > 0
    for split in SPLITS:
        a, b = read_split(directory, split), read_split(tmp_path, split)
        assert a["index"].tolist() == list(range(manifest["counts"][split]))
        for name in COLUMNS:
            np.testing.assert_array_equal(a[name], b[name])


def test_finished_dataset_is_returned_without_work(one_worker, monkeypatch):
    directory, manifest = one_worker
    stamps = {p: p.stat().st_mtime_ns for p in directory.rglob("*")}
    monkeypatch.setattr(pipeline, "_run_shards", lambda *a, **k: pytest.fail("regenerated a finished dataset"))
    assert generate_dataset(request(999), directory, progress=False) == manifest  # any shard size: same data
    assert {p: p.stat().st_mtime_ns for p in directory.rglob("*")} == stamps


def test_a_different_dataset_in_the_directory_is_refused(one_worker):
    directory, manifest = one_worker
    with pytest.raises(DatasetConflictError, match="^out_dir: .*different dataset"):
        generate_dataset(request(16, seed=12), directory, progress=False)
    assert load_manifest(directory) == manifest


def test_resume_keeps_good_shards_and_rewrites_the_rest(one_worker, tmp_path):
    directory, manifest = one_worker
    work = tmp_path / "work"
    shutil.copytree(directory, work)
    (work / "manifest.json").unlink()  # as if killed before the manifest
    (work / "train/part-00001.parquet").unlink()
    (work / "train/part-00002.parquet").write_bytes(b"torn")  # cannot be a finished shard: must be redone
    (work / "val/.part-00000.parquet.0123.tmp").write_bytes(b"partial")
    (work / "train/part-00009.parquet").write_bytes(b"beyond the plan")
    kept = (work / "train/part-00000.parquet").stat().st_mtime_ns
    resumed = generate_dataset(request(16), work, progress=False)
    assert resumed["shards"] == manifest["shards"]  # same files, same bytes (content hashes)
    assert all(verify_shard(work, entry) for entries in resumed["shards"].values() for entry in entries)
    assert (work / "train/part-00000.parquet").stat().st_mtime_ns == kept
    assert sorted(p.name for p in (work / "val").iterdir()) == ["part-00000.parquet"]
    assert not (work / "train/part-00009.parquet").exists() and is_complete(work)


def test_the_sweep_door_repairs_a_damaged_cached_dataset_shard_by_shard(one_worker, tmp_path):
    from data_gen import ensure_dataset

    directory, manifest = one_worker
    work = tmp_path / "cached"
    shutil.copytree(directory, work)
    manifest_bytes = (work / "manifest.json").read_bytes()
    damaged = work / "train/part-00001.parquet"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x10  # a flipped bit in the data pages: the footer still names the right rows
    damaged.write_bytes(bytes(data))
    stamps = {p: p.stat().st_mtime_ns for p in work.rglob("*.parquet") if p != damaged}
    said = []
    repaired = ensure_dataset(SPEC, work, n_train=40, n_val=9, n_test=5, resolution=16, seed=11, shard_size=16,
                              progress=False, log=said.append)
    assert repaired == manifest and (work / "manifest.json").read_bytes() == manifest_bytes
    assert all(verify_shard(work, entry) for entries in manifest["shards"].values() for entry in entries)
    assert {p: p.stat().st_mtime_ns for p in work.rglob("*.parquet") if p != damaged} == stamps  # only that one
    assert "regenerating 1 damaged or missing shard(s): train/part-00001.parquet: xxh3_128 content hash" in said[0]


def test_overwrite_replaces_a_different_dataset(ray_address, tmp_path):
    generate_dataset(request(16, n_train=4), tmp_path, progress=False)
    manifest = generate_dataset(request(16, n_train=3, seed=5), tmp_path, overwrite=True, progress=False)
    assert manifest["counts"]["train"] == 3 and load_manifest(tmp_path)["seed"] == 5
    assert read_split(tmp_path, "train")["index"].tolist() == [0, 1, 2]
