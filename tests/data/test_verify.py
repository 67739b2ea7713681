"""verify_dataset / check_dataset: every shard present, readable, with its rows and hash; the repair command."""

import shutil

import pytest

from sciml.data.manifest import load_manifest
from sciml.data.verify import NotADatasetError, check_dataset, read_manifest, repair_command, verify_dataset


@pytest.fixture
def copy(small_datasets, tmp_path):
    target = tmp_path / "down"
    shutil.copytree(small_datasets["down"], target)
    return target


def test_an_intact_dataset_verifies(copy):
    assert verify_dataset(copy) == [] and check_dataset(copy)["name"] == "SYS-1(5,10)"


def test_each_kind_of_damage_is_named(copy):
    (copy / "train/part-00000.parquet").write_bytes(b"")
    (copy / "val/part-00000.parquet").unlink()
    test = copy / "test/part-00000.parquet"
    data = bytearray(test.read_bytes())
    data[100] ^= 1
    test.write_bytes(bytes(data))
    bad = {b.file: b.reason for b in verify_dataset(copy)}
    assert set(bad) == {"train/part-00000.parquet", "val/part-00000.parquet", "test/part-00000.parquet"}
    assert bad["train/part-00000.parquet"].startswith("not a readable Parquet file")
    assert bad["val/part-00000.parquet"] == "missing"
    assert "content hash" in bad["test/part-00000.parquet"]
    with pytest.raises(ValueError, match=r"^data: .* is damaged, 3 shard\(s\) fail verification: train/part-00000"):
        check_dataset(copy)


def test_the_repair_command_regenerates_the_same_dataset(copy):
    from data_gen.__main__ import parse_args

    manifest = load_manifest(copy)
    command = repair_command(copy, manifest).split()
    assert command[:3] == ["python", "-m", "data_gen"]
    _, request = parse_args(command[3:])
    assert request.content_hash == manifest["content_hash"] and request.shard_size == manifest["shard_size"]


def test_a_manifest_that_does_not_describe_its_shards_is_not_a_dataset(copy, tmp_path):
    text = (copy / "manifest.json").read_text().replace('"stop": 64', '"stop": 63', 1)
    (copy / "manifest.json").write_text(text)
    with pytest.raises(NotADatasetError):
        read_manifest(copy)
    with pytest.raises(NotADatasetError, match="holds no manifest.json"):
        verify_dataset(tmp_path)
    with pytest.raises(ValueError, match="^data: .*run python -m data_gen first"):
        check_dataset(tmp_path / "nothing")
