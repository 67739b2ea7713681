"""Ray Data selections: a small one read by the driver holds exactly the rows of a Ray Data read.

The rows are compared with `read_split` (no Ray Data): each Ray Data read costs seconds.
"""

import numpy as np
import pytest

from sciml.data import ray_datasets
from sciml.data.manifest import read_split
from sciml.data.ray_datasets import DataSource, materialized_selection, split_counts


def _rows(dataset) -> dict[str, np.ndarray]:
    """Every column, sorted by (origin, index) as the training loop sorts them."""
    batches = list(dataset.iter_batches(batch_size=4096, batch_format="numpy"))
    columns = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    order = np.lexsort((columns["index"], columns.get("origin", np.zeros(len(columns["index"]), np.int64))))
    return {k: v[order] for k, v in columns.items()}


def _assert_same(one, two) -> None:
    assert set(one) == set(two)
    for name in one:
        np.testing.assert_array_equal(one[name], two[name], err_msg=name)
        assert one[name].dtype == two[name].dtype, name


@pytest.mark.parametrize("split, total, mixture", [("val", None, False), ("train", 40, False),
                                                    ("train", 256, False), ("train", 50, True), ("test", None, True)])
def test_a_driver_read_holds_the_rows_of_a_ray_data_read(split, total, mixture, small_datasets):
    from ray.data.dataset import MaterializedDataset

    sources = [DataSource(small_datasets["pre"])] + ([DataSource(small_datasets["adv"])] if mixture else [])
    ours = materialized_selection(sources, split, total)
    assert isinstance(ours, MaterializedDataset)
    # Several blocks (one per shard read) where the selection spans shards: DDP workers split them.
    assert ours.num_blocks() >= (2 if split == "train" and (total or 0) > 64 else 1)
    rows = _rows(ours)
    origin = rows.pop("origin", np.zeros(len(rows["index"]), np.int64))
    counts = split_counts(sources, split, total)
    assert len(counts) == len(sources) and all(counts)
    for number, (source, count) in enumerate(zip(sources, counts)):
        _assert_same({k: v[origin == number] for k, v in rows.items()}, read_split(source.path, split, count))
    if total is not None:
        assert len(rows["index"]) == total


def test_a_selection_above_the_limit_is_read_through_ray_data_with_the_same_rows(small_datasets, monkeypatch):
    reads = []
    original = ray_datasets.read_selection
    monkeypatch.setattr(ray_datasets, "read_selection", lambda *args: reads.append(args) or original(*args))
    sources = [DataSource(small_datasets["down"])]
    small = _rows(materialized_selection(sources, "train", 20))
    assert not reads
    monkeypatch.setattr(ray_datasets, "DRIVER_READ_LIMIT_BYTES", 0)
    _assert_same(_rows(materialized_selection(sources, "train", 20)), small)
    assert len(reads) == 1


def test_an_empty_selection_is_refused(small_datasets):
    with pytest.raises(ValueError, match="holds no examples"):
        materialized_selection([DataSource(small_datasets["down"])], "train", 0)
