"""The science's vocabulary: the split keys feed every random draw, so they are pinned to the generator version."""

import numpy as np

from sciml.core import layout
from sciml.physics import GENERATOR_VERSION, SystemSpec, generate_examples


def test_split_keys_are_pinned_to_the_generator_version():
    # Changing a split's key changes every dataset: it must come with a GENERATOR_VERSION bump,
    # and then this test is updated with both numbers at once.
    assert (layout.SPLIT_KEYS, GENERATOR_VERSION) == ({"train": 0, "val": 1, "test": 2}, 1)
    assert tuple(layout.SPLIT_KEYS) == layout.SPLITS == ("train", "val", "test")


def test_split_keys_not_the_tuple_order_decide_the_draws(monkeypatch):
    spec = SystemSpec.parse("SYS-1(1,5)")
    before = generate_examples(spec, 3, "val", np.arange(2), 16)
    # Reordering the storage tuple leaves the examples alone ...
    monkeypatch.setattr("sciml.physics.generate.SPLITS", ("test", "val", "train"))
    np.testing.assert_array_equal(generate_examples(spec, 3, "val", np.arange(2), 16)["source"], before["source"])
    # ... while the key is what the random numbers follow.
    monkeypatch.setitem(layout.SPLIT_KEYS, "val", 0)
    moved = generate_examples(spec, 3, "val", np.arange(2), 16)
    np.testing.assert_array_equal(moved["source"], generate_examples(spec, 3, "train", np.arange(2), 16)["source"])
    assert not np.array_equal(moved["source"], before["source"])


def test_channels_are_the_source_then_the_coefficients():
    assert layout.CHANNELS == ("f", "k11", "k22", "k12", "v1", "v2", "omega")  # SPEC section 4
    assert layout.IN_CHANNELS == len(layout.CHANNELS) == 1 + layout.N_COEFFS
    assert layout.COLUMNS[:3] == ("index", "source", "solution")
    assert set(layout.COEFF_COLUMNS) < set(layout.COLUMNS) and len(set(layout.COLUMNS)) == len(layout.COLUMNS)
