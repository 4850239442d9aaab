"""``model_args.backbone_weights``: ``imagenet`` through torchvision's weights enum and the torch
hub cache, a local state dict, or none; rebuilding a trained model never reads them."""

from __future__ import annotations

import pytest
import torch
import torchvision

from gsdf.models import build_model
from gsdf.models.backbones import (
    ResNetBackbone,
    imagenet_cache_path,
    load_backbone_weights,
    without_pretrained,
)


def _random_resnet18_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None).state_dict()


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A torch hub folder of our own (``$TORCH_HOME/hub``), no network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def test_imagenet_cache_path_is_torchvisions_file_under_torch_home(hub_cache):
    # the file name of torchvision's ResNet18_Weights.IMAGENET1K_V1 URL
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    assert imagenet_cache_path("resnet18") == hub_cache / url.rsplit("/", 1)[1]


def test_imagenet_weights_load_from_the_hub_cache(hub_cache):
    state = _random_resnet18_state(3)
    path = imagenet_cache_path("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    net = ResNetBackbone("resnet18", "imagenet")
    torch.testing.assert_close(net.conv1.weight, state["conv1.weight"])
    torch.testing.assert_close(net.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    # and through the model registry, for the SDF models and the pose network
    for name in ("gf", "pose"):
        model = build_model(name, {"backbone_weights": "imagenet", "image_size": 64})
        torch.testing.assert_close(model.backbone.conv1.weight, state["conv1.weight"])


def test_local_state_dict_changes_the_first_conv(tmp_path):
    state = _random_resnet18_state(5)
    path = tmp_path / "my_resnet18.pth"
    torch.save(state, path)
    before = ResNetBackbone("resnet18").conv1.weight.detach().clone()
    net = ResNetBackbone("resnet18", str(path))
    assert not torch.allclose(before, net.conv1.weight)
    torch.testing.assert_close(net.conv1.weight, state["conv1.weight"])


def test_missing_imagenet_weights_say_where_to_put_the_file(hub_cache, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(FileNotFoundError) as err:
        load_backbone_weights("resnet18", "imagenet")
    message = str(err.value)
    assert str(imagenet_cache_path("resnet18")) in message
    assert "local state dict" in message


def test_without_pretrained_clears_the_nested_pose_weights():
    args = {"backbone_weights": "imagenet", "pose": {"backbone_weights": "/x.pth", "a": 1}}
    out = without_pretrained(args)
    assert out == {"backbone_weights": None, "pose": {"backbone_weights": None, "a": 1}}
    assert args["backbone_weights"] == "imagenet"  # input untouched
