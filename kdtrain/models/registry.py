"""Model registry: name -> constructor(num_classes, in_channels), like timm's `@register_model`.

Small CIFAR/MNIST-scale networks are defined here; torchvision's classification models are reachable
as `tv:<name>` (e.g. `tv:resnet18`), and timm's, where timm is installed, as `timm:<name>`, without
registering each one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from kdtrain.errors import UserError

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register `fn(num_classes, in_channels)` under its name (underscores become dashes)."""
    name = fn.__name__.replace("_", "-")
    if name in MODELS:
        raise ValueError(f"model {name!r} registered twice")
    MODELS[name] = fn
    return fn


def list_models() -> list[str]:
    return sorted(MODELS)


def create_model(name: str, num_classes: int, in_channels: int = 3) -> nn.Module:
    """Build a registered model, a torchvision one as `tv:<name>` or a timm one as `timm:<name>` (randomly
    initialised)."""
    if name.startswith("tv:"):
        return _torchvision_model(name[3:], num_classes, in_channels)
    if name.startswith("timm:"):
        return _timm_model(name[5:], num_classes, in_channels)
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; choose one of {', '.join(list_models())}, tv:<torchvision name> "
                      "or timm:<timm name>")
    return MODELS[name](num_classes=num_classes, in_channels=in_channels)


def _torchvision_model(name: str, num_classes: int, in_channels: int) -> nn.Module:
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise UserError(f"unknown torchvision classification model {name!r}")
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    if in_channels != 3:  # swap the stem conv in place so state_dict keys stay torchvision's
        for parent in model.modules():
            for child_name, child in parent.named_children():
                if isinstance(child, nn.Conv2d):
                    setattr(parent, child_name, _with_in_channels(child, in_channels))
                    return model
    return model


def _timm_model(name: str, num_classes: int, in_channels: int) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise UserError(f"timm:{name} needs timm, which is not installed: pip install timm") from None
    if not timm.is_model(name):
        raise UserError(f"unknown timm model {name!r} (timm.list_models() names them)")
    # pretrained=False: the weights come from the teacher file, never from a download
    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels)


def _with_in_channels(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                     conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode)


# --- CIFAR-style ResNets (He et al. 2016, sec. 4.2): 3 stages of n blocks, widths w, 2w, 4w -----------------


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, dropout: float = 0.0, preact: bool = False):
        super().__init__()
        self.preact = preact
        self.bn1 = nn.BatchNorm2d(cin if preact else cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Conv2d(cin, cout, 1, stride, bias=False)
            self.short_bn = nn.Identity() if preact else nn.BatchNorm2d(cout)

    def forward(self, x):
        if self.preact:  # wide-resnet ordering: BN-ReLU-conv
            o = torch.relu(self.bn1(x))
            short = x if self.short is None else self.short(o)
            o = self.conv2(self.drop(torch.relu(self.bn2(self.conv1(o)))))
            return o + short
        short = x if self.short is None else self.short_bn(self.short(x))
        o = torch.relu(self.bn1(self.conv1(x)))
        o = self.bn2(self.conv2(self.drop(o)))
        return torch.relu(o + short)


class CifarResNet(nn.Module):
    def __init__(self, blocks: int, width: int, num_classes: int, in_channels: int, preact: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        self.preact = preact
        self.stem = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.stem_bn = nn.Identity() if preact else nn.BatchNorm2d(width)
        layers, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(blocks):
                layers.append(BasicBlock(cin, cout, 2 if (stage and i == 0) else 1, dropout, preact))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.final_bn = nn.BatchNorm2d(cin) if preact else nn.Identity()
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.stem_bn(self.stem(x))
        x = self.layers(x if self.preact else torch.relu(x))
        x = torch.relu(self.final_bn(x)) if self.preact else x
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@register_model
def resnet8(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    return CifarResNet(1, 16, num_classes, in_channels)


@register_model
def resnet8_wide(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """ResNet-8 with widths 32/64/128: more accurate per CPU second than deeper thin nets at 28 px."""
    return CifarResNet(1, 32, num_classes, in_channels)


@register_model
def resnet14(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    return CifarResNet(2, 16, num_classes, in_channels)


@register_model
def resnet20(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    return CifarResNet(3, 16, num_classes, in_channels)


@register_model
def wrn16_2(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """Wide ResNet 16-2 (Zagoruyko & Komodakis 2016): pre-activation blocks, widths 32/64/128."""
    return CifarResNet(2, 32, num_classes, in_channels, preact=True)


# --- plain CNNs for 28-32 px inputs --------------------------------------------------------------------------


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class PlainCNN(nn.Module):
    """conv-BN-ReLU stages with 2x2 max-pooling between them, global average pool, linear head."""

    def __init__(self, widths: list[list[int]], num_classes: int, in_channels: int, dropout: float = 0.0):
        super().__init__()
        layers, cin = [], in_channels
        for i, stage in enumerate(widths):
            if i:
                layers.append(nn.MaxPool2d(2))
            for cout in stage:
                layers += _conv_bn(cin, cout)
                cin = cout
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.fc(self.drop(torch.flatten(x, 1)))


@register_model
def cnn(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """5 conv layers (32-64-64-128-128): the calibration teacher's size class."""
    return PlainCNN([[32], [64, 64], [128, 128]], num_classes, in_channels, dropout=0.2)


@register_model
def cnn_tiny(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """3 conv layers (16-32-64), about 25k parameters: the default student."""
    return PlainCNN([[16], [32], [64]], num_classes, in_channels)
