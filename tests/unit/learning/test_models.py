"""Detector networks: shapes, input conventions, configs, checkpoint loading."""

import pytest
import torch

from robot_ssl.learning.checkpoint import Checkpoint
from robot_ssl.learning.models import (
    ModelConfig,
    ModelError,
    build_model,
    model_from_checkpoint,
    normalize_images,
)

torch.set_num_threads(1)


@pytest.mark.parametrize("arch", ["default", "paper"])
@pytest.mark.parametrize("size", [(80, 64), (96, 48)])
def test_output_is_one_logit_per_cell(arch, size):
    cfg = ModelConfig(arch=arch, input_width=size[0], input_height=size[1], num_distances=7)
    model = build_model(cfg).eval()
    x = torch.randint(0, 256, (3, size[1], size[0], 3), dtype=torch.uint8)
    with torch.no_grad():
        out_u8 = model(x)
        out_float = model(x.float())
    assert out_u8.shape == (3, 5, 7)
    assert torch.equal(out_u8, out_float)  # uint8 and float 0..255 inputs are the same thing


def test_paper_network_matches_the_original_layout():
    model = build_model(ModelConfig(arch="paper"))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    denses = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [c.out_channels for c in convs] == [10, 10, 8]
    assert [c.kernel_size for c in convs] == [(3, 3)] * 3
    assert denses[0].in_features == 8 * 8 * 10 and denses[0].out_features == 256
    assert denses[1].out_features == 5 * 31


def test_normalization_is_part_of_the_model():
    x = torch.tensor([[[[0, 128, 255]]]], dtype=torch.uint8)
    y = normalize_images(x)
    assert y.shape == (1, 3, 1, 1)
    assert torch.allclose(y.flatten(), torch.tensor([-0.5, 128 / 255 - 0.5, 0.5]))


def test_config_validation_and_round_trip():
    cfg = ModelConfig(arch="default", distances_m=[0.0, 0.1], num_distances=2, widths=[8, 8, 8])
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert ModelConfig(arch="paper").widths == (10, 10, 8)
    with pytest.raises(ModelError, match="unknown arch"):
        ModelConfig(arch="resnet")
    with pytest.raises(ModelError, match="too small"):
        ModelConfig(input_width=8)
    with pytest.raises(ModelError, match="distances_m"):
        ModelConfig(num_distances=3, distances_m=(0.0,))
    with pytest.raises(ModelError, match="unknown keys"):
        ModelConfig.from_dict({"arch": "paper", "depth": 3})


def test_checkpoint_loading_errors(tmp_path):
    with pytest.raises(ModelError, match="no such checkpoint"):
        Checkpoint.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable"):
        Checkpoint.load(tmp_path / "junk.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="not a robot-ssl checkpoint"):
        Checkpoint.load(tmp_path / "other.pt")
    cfg = ModelConfig(arch="paper")
    torch.save(
        {"model": build_model(cfg).state_dict(), "model_config": ModelConfig().to_dict()},
        tmp_path / "mismatch.pt",
    )
    with pytest.raises(ModelError, match="do not match"):
        model_from_checkpoint(tmp_path / "mismatch.pt")
