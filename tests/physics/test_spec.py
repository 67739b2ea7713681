import math

import pytest

from sciml.physics import SystemSpec


@pytest.mark.parametrize("name, system, lo, hi", [
    ("SYS-1(1,5)", "poisson", 1.0, 5.0),
    ("SYS-2(0.2,1)", "advdiff", 0.2, 1.0),
    ("SYS-3(1,10)", "helmholtz", 1.0, 10.0),
    ("SYS-1(2.5,7.5)", "poisson", 2.5, 7.5),
])
def test_names_parse_and_round_trip(name, system, lo, hi):
    spec = SystemSpec.parse(name)
    assert (spec.system, spec.lo, spec.hi) == (system, lo, hi)
    assert spec.name == name
    assert SystemSpec.from_dict(spec.to_dict()) == spec
    assert SystemSpec.from_dict({**spec.to_dict(), "sigma": 1 / 32}) == spec  # a manifest's extra keys


@pytest.mark.parametrize("args, field", [
    (("heat", 1, 5), "system"),
    (("poisson", 5, 1), "lo"),
    (("poisson", 0, 5), "lo"),
    (("poisson", -1, 5), "lo"),
    (("poisson", 1, math.nan), "hi"),
    (("poisson", 1, math.inf), "hi"),
    (("advdiff", 0, 1), "lo"),
    (("helmholtz", 1.5, 4), "lo"),
    (("helmholtz", 0, 4), "lo"),
    (("helmholtz", 1, True), "hi"),
])
def test_invalid_specs_name_the_field(args, field):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        SystemSpec(*args)


@pytest.mark.parametrize("text", ["SYS-4(1,2)", "SYS-1(1)", "poisson(1,5)", "SYS-1(a,5)"])
def test_parse_rejects_malformed_names(text):
    with pytest.raises(ValueError):
        SystemSpec.parse(text)


def test_spec_is_frozen_and_hashable():
    spec = SystemSpec("helmholtz", 1, 10)
    assert isinstance(spec.lo, float) and {spec: 1}[SystemSpec.parse("SYS-3(1,10)")] == 1
    with pytest.raises(AttributeError):
        spec.lo = 2.0
