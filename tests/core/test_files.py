"""The one atomic writer and the two hashes: names never hold half a file; keys never drift."""

import json

import pytest

from sciml.core import files
from sciml.physics import SystemSpec


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    target = tmp_path / "sub" / "table.csv"
    with pytest.raises(RuntimeError):
        with files.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list((tmp_path / "sub").iterdir()) == []


def test_writes_land_whole_with_shared_permissions(tmp_path):
    target = files.write_json(tmp_path / "a.json", {"b": 1, "path": tmp_path})
    assert json.loads(target.read_text()) == {"b": 1, "path": str(tmp_path)}
    assert target.stat().st_mode & 0o777 == 0o644
    copy = files.copy_file(target, tmp_path / "deeper" / "a.json.complete")
    assert copy.read_bytes() == target.read_bytes() and sorted(p.name for p in copy.parent.iterdir()) == [copy.name]


def test_canonical_hash_ignores_key_order_and_refuses_nan():
    assert files.canonical_hash({"a": 1, "b": [1.5]}) == files.canonical_hash({"b": [1.5], "a": 1})
    assert files.canonical_json({"b": 1, "a": None}) == '{"a":null,"b":1}'
    with pytest.raises(ValueError):
        files.canonical_hash({"a": float("nan")})


def test_cache_keys_keep_the_bytes_existing_caches_were_named_by():
    # Values the sweep's former short_hash gave (json.dumps with default separators and default=str):
    # cache directories and every sweep dataset's seed depend on them.
    spec = SystemSpec.parse("SYS-1(1,5)")
    assert files.cache_key([spec.to_dict(), 8192, 128, 256, 32, 123]) == "679d47bd9937"
    assert files.cache_key(["q1", {"a": 1.5, "b": (1, 2), "c": None}], 8) == "51c3dceb"
    assert files.cache_key({"x": 1}) == files.cache_key({"x": 1}, 64)[:12]
