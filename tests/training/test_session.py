"""The one private Ray API the training loop depends on, checked against the Ray release pinned for it."""

import importlib
import importlib.metadata
import inspect
import sys

import pytest
import ray
from packaging.requirements import Requirement

from sciml.training.session import PRIVATE_TRAIN_FN_UTILS, train_fn_utils

MODULE, _, SYMBOL = PRIVATE_TRAIN_FN_UTILS.rpartition(".")
# What TrainSession calls on the utilities object, with the keyword arguments it passes.
CALLED = {"get_context": (), "get_checkpoint": (), "is_distributed": (), "report": ("metrics", "checkpoint")}


def test_the_private_train_fn_utils_are_where_the_session_imports_them():
    try:
        module = importlib.import_module(MODULE)
    except ImportError as err:
        pytest.fail(f"{PRIVATE_TRAIN_FN_UTILS}: module gone in ray {ray.__version__} ({err}); "
                    "sciml/training/session.py must follow it or move to public API")
    assert callable(getattr(module, SYMBOL, None)), \
        f"{PRIVATE_TRAIN_FN_UTILS}: no such function in ray {ray.__version__}; sciml/training/session.py must follow it"
    base = getattr(module, "TrainFnUtils", None)
    assert base is not None, f"{MODULE}.TrainFnUtils: gone in ray {ray.__version__}"
    for method, keywords in CALLED.items():
        assert callable(getattr(base, method, None)), f"{MODULE}.TrainFnUtils.{method}: gone in ray {ray.__version__}"
        parameters = inspect.signature(getattr(base, method)).parameters
        missing = [k for k in keywords if k not in parameters]
        assert not missing, f"{MODULE}.TrainFnUtils.{method}: no parameter {missing} in ray {ray.__version__}"


def test_a_moved_symbol_fails_with_a_message_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, MODULE, None)  # what an upgrade that moved the module looks like
    with pytest.raises(ImportError, match=PRIVATE_TRAIN_FN_UTILS.replace(".", r"\.")):
        train_fn_utils()


def test_the_installed_ray_is_inside_the_pinned_range():
    pins = [Requirement(r) for r in importlib.metadata.requires("sciml-foundation") or []]
    ray_pin = next(r for r in pins if r.name == "ray")
    assert ray_pin.specifier.contains(ray.__version__), f"ray {ray.__version__} is outside the pin {ray_pin}"
    # An upper bound: the private API is only known to work in the release it was tested with.
    assert any(s.operator == "<" for s in ray_pin.specifier), f"the ray pin {ray_pin} has no upper bound"
