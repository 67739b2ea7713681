"""Model files: the normalization statistics travel with the weights; anything else is refused clearly."""

import pytest
import torch

from sciml.models import build_fno
from sciml.training.checkpoint import load_model, read_hparams, read_model_file, save_model


def test_the_normalization_statistics_are_recorded_in_the_model_file(tmp_path):
    model = build_fno(None, width=4, modes=2)
    c_ref = [0.02, 0.015, 0.005, 0.07, 0.09, 5.0]
    model.set_normalization(0.3, c_ref)
    save_model(str(tmp_path / "m.pt"), model)
    loaded, payload = load_model(str(tmp_path / "m.pt"))
    assert loaded.f_ref.item() == pytest.approx(0.3)
    assert loaded.c_ref.tolist() == pytest.approx(c_ref)
    assert payload["state_dict"]["c_ref"].tolist() == pytest.approx(c_ref)
    assert read_hparams(str(tmp_path / "m.pt")) == {"preset": None, "width": 4, "modes": 2, "layers": 4}


@pytest.mark.parametrize("content", [b"", b"\x80\x04garbage", b"a text file\n"])
def test_a_file_that_is_not_a_model_is_a_value_error_naming_it(content, tmp_path):
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"^checkpoint: .*x\.pt is not a sciml-fno/1 model file \(torch\.load: "):
        read_model_file(str(path))
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match=r"^checkpoint: .*x\.pt is not a sciml-fno/1 model file$"):
        read_hparams(str(path))
    with pytest.raises(FileNotFoundError, match="^checkpoint: no such model file"):
        load_model(str(tmp_path / "absent.pt"))
