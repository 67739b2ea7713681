"""Paper-format HDF5 import/export: every value survives the round trip; bad input exits 2."""

import h5py
import numpy as np
import pytest

from data_gen import GenerationRequest
from data_gen.convert import BadInput, export_paper, import_paper, main
from data_gen.pipeline import build_manifest
from data_gen.shards import plan_shards, produce_shard
from sciml.core.files import write_json
from sciml.data.manifest import MANIFEST_KEYS, is_complete, load_manifest, read_split
from sciml.data.schema import MANIFEST_NAME
from sciml.physics import D, SystemSpec

WIDTH = {"poisson": 3, "advdiff": 5, "helmholtz": 2}


def paper_file(path, system, rows, n=16, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {"fields": rng.normal(size=(rows, 2, n, n)).astype(np.float32)}
    if system == "helmholtz":
        arrays["tensor"] = np.stack([np.full(rows, D), rng.integers(1, 11, rows)], 1).astype(np.float32)
    else:
        arrays["tensor"] = rng.normal(0.0, 0.01, (rows, WIDTH[system])).astype(np.float32)
        arrays["tensor"][:, :2] = np.abs(arrays["tensor"][:, :2]) + 0.01  # trace/D - 1 > 0: a valid e range
    if system == "advdiff":
        arrays["other"] = rng.uniform(0.2, 1.0, (rows, 1)).astype(np.float32)
    with h5py.File(path, "w") as handle:
        for name, values in arrays.items():
            handle.create_dataset(name, data=values, dtype="<f4")
    return arrays


@pytest.mark.parametrize("system", sorted(WIDTH))
def test_import_then_export_reproduces_every_value(system, tmp_path):
    sizes = {"train": 11, "val": 3, "test": 4}
    originals = {split: paper_file(tmp_path / f"{split}.h5", system, rows, seed=i)
                 for i, (split, rows) in enumerate(sizes.items())}
    argv = ["import", "--system", system, "--out", str(tmp_path / "ds"), "--shard-size", "5"]
    for split in sizes:
        argv += [f"--{split}", str(tmp_path / f"{split}.h5")]
    assert main(argv) == 0
    manifest = load_manifest(tmp_path / "ds")
    assert is_complete(tmp_path / "ds") and manifest["counts"] == sizes
    assert tuple(manifest) == MANIFEST_KEYS  # the generator's builder: the same keys in the same order
    assert manifest["spec"]["imported"]["files"]["val"]["sha256"] and manifest["seed"] is None
    assert np.isnan(read_split(tmp_path / "ds", "train")["sparsity"]).all()
    assert manifest["normalization"]["f_ref"] > 0 and len(manifest["normalization"]["c_ref"]) == 6

    assert main(["export", str(tmp_path / "ds"), "--out-prefix", str(tmp_path / "back")]) == 0
    for split, arrays in originals.items():
        with h5py.File(tmp_path / f"back_{split}.h5", "r") as handle:
            assert sorted(handle) == sorted(arrays)
            for name, values in arrays.items():
                assert handle[name].dtype == np.float32
                np.testing.assert_array_equal(handle[name][()], values)


def test_generated_dataset_exports_and_reimports(tmp_path):
    request = GenerationRequest(SystemSpec.parse("SYS-2(0.2,1)"), 6, 2, 2, 16, shard_size=4)
    directory = tmp_path / "gen"
    results = [produce_shard(directory, p, request.spec, 0, 16, request.content_hash)
               for p in plan_shards(request.counts, 4)]
    write_json(directory / MANIFEST_NAME, build_manifest(request, results))
    assert main(["export", str(directory), "--out-prefix", str(tmp_path / "paper")]) == 0
    assert main(["import", "--system", "advdiff", "--train", str(tmp_path / "paper_train.h5"), "--val",
                 str(tmp_path / "paper_val.h5"), "--test", str(tmp_path / "paper_test.h5"), "--out",
                 str(tmp_path / "again")]) == 0
    original, again = read_split(directory, "train"), read_split(tmp_path / "again", "train")
    for name in ("source", "solution"):
        np.testing.assert_array_equal(original[name], again[name])
    np.testing.assert_array_equal(original["psi"].astype(np.float32), again["psi"])
    np.testing.assert_array_equal(original["v1"].astype(np.float32), again["v1"])
    assert load_manifest(tmp_path / "again")["name"].startswith("SYS-2(")


def test_bad_conversion_input_exits_2_and_writes_nothing(tmp_path, capsys):
    paper_file(tmp_path / "p.h5", "poisson", 4)
    cases = [
        (["import", "--system", "heat", "--train", str(tmp_path / "p.h5")], "--system"),
        (["import", "--system", "advdiff", "--train", str(tmp_path / "p.h5")], "--train"),  # width 3, no 'other'
        (["import", "--system", "poisson", "--train", str(tmp_path / "missing.h5")], "--train"),
        (["import", "--system", "poisson", "--train", str(tmp_path / "p.h5"), "--range", "5", "1"], "--range"),
        (["import", "--system", "poisson"], "--train"),
    ]
    for argv, flag in cases:
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and len(err) == 1 and flag in err[0], (argv, err)
        assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(tmp_path / "nothing"), "--out-prefix", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and "DIR" in capsys.readouterr().err
    assert not list(tmp_path.glob("x_*"))


def test_library_errors_name_fields_not_flags(tmp_path):
    paper_file(tmp_path / "p.h5", "poisson", 4)
    paper_file(tmp_path / "q.h5", "poisson", 4, n=32)
    cases = [
        (lambda: import_paper("heat", {"train": str(tmp_path / "p.h5")}, tmp_path / "o"), "system"),
        (lambda: import_paper("poisson", {}, tmp_path / "o"), "files"),
        (lambda: import_paper("poisson", {"train": str(tmp_path / "p.h5")}, tmp_path / "o", shard_size=0),
         "shard_size"),
        (lambda: import_paper("poisson", {"val": str(tmp_path / "none.h5")}, tmp_path / "o"), "val"),
        (lambda: import_paper("poisson", {"train": str(tmp_path / "p.h5"), "test": str(tmp_path / "q.h5")},
                              tmp_path / "o"), "test"),
        (lambda: import_paper("poisson", {"train": str(tmp_path / "p.h5")}, tmp_path / "o", value_range=(0, 1)),
         "lo"),
        (lambda: export_paper(tmp_path / "o", str(tmp_path / "x")), "directory"),
    ]
    for call, field in cases:
        with pytest.raises(BadInput, match=rf"^{field}: "):
            call()
    assert not (tmp_path / "o").exists()
