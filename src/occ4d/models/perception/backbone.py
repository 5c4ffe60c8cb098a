"""Image encoder: a ResNet (He et al., 2016) and an FPN neck (Lin et al., 2017), written here.

The ResNet is the torchvision layout (7x7 stem, max-pool, four stages at strides 4, 8, 16, 32,
basic or bottleneck blocks, BatchNorm), so ResNet-18/34/50 shapes are a choice of ``layers``
and ``block``. The FPN fuses the stages from ``out_stride`` down to stride 32 top-down and
returns one map at ``out_stride`` (BEVDet uses the stride-16 level; a CPU model gains
resolution at stride 8 or 4, where small objects cover enough feature pixels).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(conv_bn(cin, width, 3, stride), conv_bn(width, cout, 3, relu=False))
        self.skip = conv_bn(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + self.skip(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(conv_bn(cin, width, 1), conv_bn(width, width, 3, stride),
                                  conv_bn(width, cout, 1, relu=False))
        self.skip = conv_bn(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + self.skip(x))


class ResNet(nn.Module):
    """Returns the stage outputs at strides 4, 8, 16 and 32."""

    def __init__(self, *, block: str = "basic", layers: tuple[int, ...] = (2, 2, 2, 2),
                 widths: tuple[int, ...] = (64, 128, 256, 512), in_channels: int = 3):
        super().__init__()
        cls = BasicBlock if block == "basic" else Bottleneck
        self.stem = nn.Sequential(conv_bn(in_channels, widths[0], 7, 2), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], widths[0]
        for i, (n, w) in enumerate(zip(layers, widths, strict=True)):
            blocks = []
            for b in range(n):
                blocks.append(cls(cin, w, 2 if (b == 0 and i > 0) else 1))
                cin = w * cls.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.out_channels = tuple(w * cls.expansion for w in widths)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)  # (B, C0, H/4, W/4)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)  # strides 4, 8, 16, 32
        return outs


class FPN(nn.Module):
    """Top-down fusion of the stride-4/8/16/32 maps from ``out_stride`` on; returns the fused map
    at ``out_stride``."""

    def __init__(self, *, in_channels: tuple[int, ...], channels: int, out_stride: int = 16):
        super().__init__()
        self.level = {4: 0, 8: 1, 16: 2, 32: 3}[out_stride]
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels[self.level:])
        self.out = conv_bn(channels, channels, 3)

    def forward(self, feats: list[Tensor]) -> Tensor:
        feats = feats[self.level:]
        x = self.lateral[-1](feats[-1])
        for lat, f in zip(reversed(self.lateral[:-1]), reversed(feats[:-1]), strict=True):
            x = lat(f) + F.interpolate(x, size=f.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(x)  # (B, channels, H/out_stride, W/out_stride)
