"""ResNet feature extractors (torchvision), optionally initialised with ImageNet weights.

The module keeps torchvision's attribute names (``conv1``, ``bn1``, ``layer1`` ... ``layer4``), so
a torchvision ``resnet18-*.pth`` state dict loads as is (its ``fc.*`` entries are dropped).

``model_args.backbone_weights`` (:func:`load_backbone_weights`):

* ``imagenet``: torchvision's weights enum (``ResNet18_Weights.IMAGENET1K_V1`` ...), the weights
  the reference loads from the same URL (zerchen/gSDF ``common/networks/backbones/resnet.py``
  ``init_weights``). torchvision caches the file under the torch hub folder
  (``$TORCH_HOME/hub/checkpoints/``) and downloads it only when it is not there;
* a path: a local state dict (torchvision's format, ``fc.*`` ignored);
* ``null``: torchvision's random initialisation.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
from torch import nn

from gsdf.config import ConfigError
from gsdf.models.args import BACKBONES

_CHANNELS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}
# channels of layer1..layer3 (strides 4, 8, 16), the skip inputs of a UNet neck
# channels of conv1 (H/2), layer1 (H/4), layer2 (H/8), layer3 (H/16)
_LEVEL_CHANNELS = {"resnet18": (64, 64, 128, 256), "resnet34": (64, 64, 128, 256),
                   "resnet50": (64, 256, 512, 1024)}


class ResNetBackbone(nn.Module):
    """ResNet trunk without pooling and classifier.

    Args:
        name: ``resnet18`` | ``resnet34`` | ``resnet50``.
        weights_path: ``"imagenet"``, a local torchvision state dict, or ``None`` (random
            initialisation); see :func:`load_backbone_weights`.

    Shapes:
        forward: image (B, 3, H, W), ImageNet-normalised -> features (B, C, H/32, W/32) with
        ``C = out_channels`` (512 for ResNet-18/34, 2048 for ResNet-50).
    """

    def __init__(self, name: str = "resnet18", weights_path: str | Path | None = None) -> None:
        super().__init__()
        if name not in BACKBONES:
            raise ConfigError(f"model_args 'backbone' = {name!r} is not allowed; allowed values: "
                              f"{list(BACKBONES)}")
        net = getattr(torchvision.models, name)(weights=None)
        self.name = name
        self.out_channels = _CHANNELS[name]
        self.level_channels = _LEVEL_CHANNELS[name]
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1, net.layer2, net.layer3, net.layer4)
        if weights_path is not None:
            self.load_imagenet(weights_path)

    def load_imagenet(self, weights_path: str | Path) -> None:
        """Load ``"imagenet"`` or a local torchvision state dict (the ``fc`` layer is ignored)."""
        state = load_backbone_weights(self.name, weights_path)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        self.load_state_dict(state, strict=True)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(image))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x  # (B, C, H/32, W/32)

    def levels(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The final map and the intermediate ones a UNet neck adds back.

        Returns:
            (B, C, H/32, W/32) and ``[layer3 (B, c3, H/16, W/16), layer2 (B, c2, H/8, W/8),
            layer1 (B, c1, H/4, W/4), conv1 (B, c0, H/2, W/2)]`` (coarse to fine;
            ``c0..c3 = level_channels``).
        """
        x0 = self.relu(self.bn1(self.conv1(image)))
        x1 = self.layer1(self.maxpool(x0))
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        return self.layer4(x3), [x3, x2, x1, x0]


IMAGENET = "imagenet"


def imagenet_cache_path(name: str) -> Path:
    """Where torchvision looks for (and caches) the ImageNet weights of ResNet ``name``:
    ``{torch.hub.get_dir()}/checkpoints/{file name of the weights URL}``."""
    weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def load_backbone_weights(name: str, spec: str | Path) -> dict[str, torch.Tensor]:
    """The state dict ``model_args.backbone_weights = spec`` names for ResNet ``name``.

    Args:
        name: ``resnet18`` | ``resnet34`` | ``resnet50``.
        spec: ``"imagenet"`` (torchvision's ``IMAGENET1K_V1`` weights enum, read from the torch
            hub cache or downloaded into it) or the path of a local state dict.

    Raises:
        FileNotFoundError: the local file is missing, or the ImageNet weights are neither cached
            nor downloadable; the message names the file to provide.
    """
    if str(spec) == IMAGENET:
        weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
        try:
            return weights.get_state_dict(progress=False)
        except (OSError, RuntimeError) as err:  # urllib's URLError is an OSError
            raise FileNotFoundError(
                f"model_args 'backbone_weights: imagenet': the {name} ImageNet weights are not "
                f"in the torch hub cache and could not be downloaded from {weights.url} "
                f"({type(err).__name__}: {err}). Download that file on a machine with internet "
                f"access and put it at {imagenet_cache_path(name)} (the folder follows "
                f"$TORCH_HOME), or set 'backbone_weights' to the path of a local state dict, "
                f"or to null for random initialisation") from err
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(
            f"backbone weights {path} not found; set model_args 'backbone_weights' to a local "
            f"torchvision {name} checkpoint, to 'imagenet', or to null for random "
            f"initialisation")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return state


def without_pretrained(model_args: dict) -> dict:
    """``model_args`` with every ``backbone_weights`` (also the nested ``pose`` one) set to
    None: for networks whose trained weights are loaded right after they are built, so that
    rebuilding them never reads (or downloads) ImageNet weights."""
    out = dict(model_args)
    out["backbone_weights"] = None
    if isinstance(out.get("pose"), dict):
        out["pose"] = without_pretrained(out["pose"])
    return out
