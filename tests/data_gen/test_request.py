import pytest

from data_gen import GenerationRequest
from sciml.physics import SystemSpec

SPEC = SystemSpec.parse("SYS-1(1,5)")


def request(**changes):
    fields = {"spec": SPEC, "n_train": 8, "n_val": 2, "n_test": 2, "resolution": 32, "seed": 0, "shard_size": 4}
    return GenerationRequest(**{**fields, **changes})


@pytest.mark.parametrize("changes, field", [
    ({"n_train": -1}, "n_train"), ({"n_val": 1.5}, "n_val"), ({"n_test": True}, "n_test"),
    ({"n_train": 0, "n_val": 0, "n_test": 0}, "n_train"), ({"resolution": 6}, "resolution"),
    ({"resolution": 33}, "resolution"), ({"seed": -1}, "seed"), ({"seed": 2**64}, "seed"),
    ({"shard_size": 0}, "shard_size"), ({"spec": "SYS-1(1,5)"}, "spec"),
])
def test_invalid_requests_name_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        request(**changes)


def test_content_hash_identifies_the_examples_not_the_layout():
    base = request()
    assert base.content_hash == request(shard_size=1000).content_hash
    others = [request(seed=1), request(n_train=9), request(resolution=64), request(spec=SystemSpec("poisson", 1, 6))]
    assert len({base.content_hash, *(r.content_hash for r in others)}) == 5
    assert base.counts == {"train": 8, "val": 2, "test": 2}
    assert base.spec_record()["system"] == "poisson" and base.spec_record()["sigma"] == 1 / 32
