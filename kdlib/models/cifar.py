"""CIFAR-100 model zoo of CRD (Tian et al., 2020) / RepDistiller.

Re-implemented from the reference architectures in ``HobbitLong/RepDistiller``
(``models/``), which ``megvii-research/mdistiller`` copies unchanged.  Every
model maps a (N, 3, 32, 32) batch to (N, num_classes) logits and nothing else;
intermediate features are meant to be captured with forward hooks.

Design rules:

* Module attribute names follow the reference, so ``state_dict`` keys and
  shapes are identical and published RepDistiller/CRD checkpoints load with
  ``strict=True``.  Hook points per family: ResNet ``layer1..3`` + ``fc``;
  WRN ``block1..3`` + ``bn1`` + ``fc``; VGG ``block0..4`` (their outputs are
  pre-ReLU) + ``classifier``; MobileNetV2 ``conv1``, ``blocks[0..6]``,
  ``conv2`` + ``classifier``; ShuffleNets ``layer1..3`` + ``linear``.
* No in-place operations (no ``ReLU(inplace=True)``, no ``+=``), so a tensor
  stored by a hook is never overwritten later in the forward pass.
* Pre-activation features (RepDistiller's ``preact=True``) are module
  outputs too: ResNet and ShuffleV1 blocks pass their sum/concat through an
  ``nn.Identity`` named ``preact`` before the final ReLU (``layer1.0.preact``);
  VGG ``blockK`` outputs are pre-ReLU; for WRN the reference's preact of
  ``blockK`` is ``block{K+1}.layer.0.bn1`` and, for block3, ``bn1``.
* Weight initialisation matches the reference for each family.
"""

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv_bn(cin, cout, k, stride=1, groups=1, relu=True):
    """[Conv(k x k, no bias), BN, (ReLU)] as a list of modules."""
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return layers + [nn.ReLU()] if relu else layers


def channel_shuffle(x, groups):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def init_weights(model, fc_zero_bias=True, fc_std=None):
    """RepDistiller initialisation: He-normal (fan_out) convs with zero bias,
    BN weight 1 / bias 0; linear bias zeroed and weights N(0, fc_std) if given."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if fc_std is not None:
                nn.init.normal_(m.weight, 0.0, fc_std)
            if fc_zero_bias:
                nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------- ResNet (CIFAR)
class BasicBlock(nn.Module):
    """Post-activation residual block; 1x1 conv + BN shortcut when the shape changes."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = conv3x3(cout, cout), nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.preact = nn.Identity()  # hook point for the pre-ReLU block output

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(self.preact(out + shortcut))


class ResNet(nn.Module):
    """CIFAR ResNet of depth 6n+2: stem conv, three stages of n blocks (strides 1, 2, 2)."""

    def __init__(self, depth, widths, num_classes=100):
        super().__init__()
        assert (depth - 2) % 6 == 0, "depth must be 6n+2"
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        cin = widths[0]
        for i, (w, stride) in enumerate(zip(widths[1:], (1, 2, 2)), 1):
            blocks = [BasicBlock(cin if j == 0 else w, w, stride if j == 0 else 1) for j in range(n)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            cin = w
        self.avgpool = nn.AvgPool2d(8)
        self.fc = nn.Linear(widths[3], num_classes)
        init_weights(self, fc_zero_bias=False)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ----------------------------------------------------------------------------- Wide ResNet
class WideBlock(nn.Module):
    """Pre-activation block (BN-ReLU-conv x2).  When the shape changes, the 1x1
    shortcut takes the *activated* input, as in the reference."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), conv3x3(cin, cout, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), conv3x3(cout, cout)
        self.convShortcut = None if cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        act = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        return out + (x if self.convShortcut is None else self.convShortcut(act))


class WideResNet(nn.Module):
    def __init__(self, depth, widen, num_classes=100):
        super().__init__()
        assert (depth - 4) % 6 == 0, "depth must be 6n+4"
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = conv3x3(3, widths[0])
        for i, stride in enumerate((1, 2, 2), 1):
            cin, w = widths[i - 1], widths[i]
            blocks = [WideBlock(cin if j == 0 else w, w, stride if j == 0 else 1) for j in range(n)]
            # the extra ".layer" level reproduces the reference keys (block1.layer.0.bn1.weight, ...)
            setattr(self, f"block{i}", nn.Sequential(OrderedDict(layer=nn.Sequential(*blocks))))
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        init_weights(self)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = F.avg_pool2d(F.relu(self.bn1(x)), 8)
        return self.fc(torch.flatten(x, 1))


# ----------------------------------------------------------------------------- VGG (BN)
VGG_CFGS = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
}


class VGG(nn.Module):
    """VGG with batch norm and a single linear classifier.  Each ``blockK`` is
    (conv-BN-ReLU)* with the final ReLU stripped, so its output is pre-activation.
    Reference quirk kept: the max-pool after block3 only runs for 64x64 inputs,
    so on CIFAR block4 runs at 4x4 and the head is a global average pool."""

    def __init__(self, cfg, num_classes=100):
        super().__init__()
        cin = 3
        for i, widths in enumerate(cfg):
            layers = []
            for w in widths:
                layers += [nn.Conv2d(cin, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
                cin = w
            setattr(self, f"block{i}", nn.Sequential(*layers[:-1]))
        self.classifier = nn.Linear(512, num_classes)
        init_weights(self, fc_std=0.01)

    def forward(self, x):
        h = x.shape[2]
        for i in range(5):
            x = F.relu(getattr(self, f"block{i}")(x))
            if i < 3 or (i == 3 and h == 64):
                x = F.max_pool2d(x, 2)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ----------------------------------------------------------------------------- MobileNetV2
class InvertedResidual(nn.Module):
    """1x1 expand - 3x3 depthwise - 1x1 linear projection; the expand conv is
    present even for expansion 1 (unlike torchvision)."""

    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        mid = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            *conv_bn(cin, mid, 1),  # expand
            *conv_bn(mid, mid, 3, stride, groups=mid),  # depthwise
            *conv_bn(mid, cout, 1, relu=False),  # linear projection
        )

    def forward(self, x):
        out = self.conv(x)
        return x + out if self.use_res_connect else out


class MobileNetV2(nn.Module):
    """RepDistiller's MobileNetV2 (from RCO).  CIFAR changes: the stem has stride 2,
    the seven stages run at 16, 16, 8, 4, 4, 2, 2 pixels, and the head is a 2x2 average pool."""

    def __init__(self, expand=6, width=0.5, num_classes=100):
        super().__init__()
        settings = [(1, 16, 1, 1), (expand, 24, 2, 1), (expand, 32, 3, 2), (expand, 64, 4, 2),
                    (expand, 96, 3, 1), (expand, 160, 3, 2), (expand, 320, 1, 1)]  # (t, c, n, s)
        cin = int(32 * width)
        self.conv1 = nn.Sequential(*conv_bn(3, cin, 3, stride=2))
        self.blocks = nn.ModuleList()
        for t, c, n, s in settings:
            cout = int(c * width)
            blocks = [InvertedResidual(cin if j == 0 else cout, cout, s if j == 0 else 1, t) for j in range(n)]
            self.blocks.append(nn.Sequential(*blocks))
            cin = cout
        last = int(1280 * width) if width > 1.0 else 1280
        self.conv2 = nn.Sequential(*conv_bn(cin, last, 1))
        self.avgpool = nn.AvgPool2d(2, ceil_mode=True)
        self.classifier = nn.Sequential(nn.Linear(last, num_classes))  # Sequential: keys classifier.0.*
        init_weights(self, fc_std=0.01)

    def forward(self, x):
        x = self.conv1(x)
        for block in self.blocks:
            x = block(x)
        return self.classifier(torch.flatten(self.avgpool(self.conv2(x)), 1))


# ----------------------------------------------------------------------------- ShuffleNet V1
class ShuffleV1Block(nn.Module):
    """1x1 group conv - shuffle - 3x3 depthwise - 1x1 group conv.  Stride-2 units
    concatenate a 3x3 avg-pooled shortcut, so their branch yields cout - cin
    channels.  The first 1x1 conv is ungrouped when cin == 24 (the stem width).
    Reference deviation from the paper kept: a ReLU follows the depthwise conv."""

    def __init__(self, cin, cout, stride, groups):
        super().__init__()
        self.stride = stride
        branch = cout - cin if stride == 2 else cout
        mid = branch // 4
        self.g1 = 1 if cin == 24 else groups
        self.conv1, self.bn1 = nn.Conv2d(cin, mid, 1, groups=self.g1, bias=False), nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = nn.Conv2d(mid, branch, 1, groups=groups, bias=False), nn.BatchNorm2d(branch)
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()
        self.preact = nn.Identity()  # hook point for the pre-ReLU block output

    def forward(self, x):
        out = channel_shuffle(F.relu(self.bn1(self.conv1(x))), self.g1)
        out = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(out)))))
        res = self.shortcut(x)
        return F.relu(self.preact(torch.cat([out, res], 1) if self.stride == 2 else out + res))


class ShuffleNetV1(nn.Module):
    def __init__(self, widths=(240, 480, 960), depths=(4, 8, 4), groups=3, num_classes=100):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 24, 1, bias=False), nn.BatchNorm2d(24)
        cin = 24
        for i, (w, n) in enumerate(zip(widths, depths), 1):
            blocks = [ShuffleV1Block(cin if j == 0 else w, w, 2 if j == 0 else 1, groups) for j in range(n)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            cin = w
        self.linear = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(torch.flatten(F.avg_pool2d(x, 4), 1))


# ----------------------------------------------------------------------------- ShuffleNet V2
class ShuffleV2Block(nn.Module):
    """Stride-1 unit: split channels in half, transform the second half
    (1x1-BN-ReLU, 3x3 dw-BN, 1x1-BN-ReLU), concatenate, shuffle (2 groups)."""

    def __init__(self, channels):
        super().__init__()
        c = channels // 2
        self.conv1, self.bn1 = nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False), nn.BatchNorm2d(c)
        self.conv3, self.bn3 = nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        c = x.shape[1] // 2
        x1, x2 = x[:, :c], x[:, c:]
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x2)))))
        out = F.relu(self.bn3(self.conv3(out)))
        return channel_shuffle(torch.cat([x1, out], 1), 2)


class ShuffleV2Down(nn.Module):
    """Stride-2 unit: left (3x3 dw-BN, 1x1-BN-ReLU) and right (1x1-BN-ReLU,
    3x3 dw-BN, 1x1-BN-ReLU) branches, each cout/2 channels; concat, shuffle."""

    def __init__(self, cin, cout):
        super().__init__()
        mid = cout // 2
        self.conv1, self.bn1 = nn.Conv2d(cin, cin, 3, 2, 1, groups=cin, bias=False), nn.BatchNorm2d(cin)
        self.conv2, self.bn2 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv3, self.bn3 = nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid)
        self.conv4, self.bn4 = nn.Conv2d(mid, mid, 3, 2, 1, groups=mid, bias=False), nn.BatchNorm2d(mid)
        self.conv5, self.bn5 = nn.Conv2d(mid, mid, 1, bias=False), nn.BatchNorm2d(mid)

    def forward(self, x):
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = self.bn4(self.conv4(F.relu(self.bn3(self.conv3(x)))))
        right = F.relu(self.bn5(self.conv5(right)))
        return channel_shuffle(torch.cat([left, right], 1), 2)


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 1x; each stage is a down unit followed by ``depths[i]`` stride-1 units."""

    def __init__(self, widths=(116, 232, 464, 1024), depths=(3, 7, 3), num_classes=100):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 24, 1, bias=False), nn.BatchNorm2d(24)
        cin = 24
        for i, (w, n) in enumerate(zip(widths[:3], depths), 1):
            blocks = [ShuffleV2Down(cin, w)] + [ShuffleV2Block(w) for _ in range(n)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            cin = w
        self.conv2, self.bn2 = nn.Conv2d(cin, widths[3], 1, bias=False), nn.BatchNorm2d(widths[3])
        self.linear = nn.Linear(widths[3], num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.linear(torch.flatten(F.avg_pool2d(x, 4), 1))


# ----------------------------------------------------------------------------- constructors
_SMALL, _X4 = [16, 16, 32, 64], [32, 64, 128, 256]


def resnet8(num_classes=100):
    return ResNet(8, _SMALL, num_classes)


def resnet14(num_classes=100):
    return ResNet(14, _SMALL, num_classes)


def resnet20(num_classes=100):
    return ResNet(20, _SMALL, num_classes)


def resnet32(num_classes=100):
    return ResNet(32, _SMALL, num_classes)


def resnet44(num_classes=100):
    return ResNet(44, _SMALL, num_classes)


def resnet56(num_classes=100):
    return ResNet(56, _SMALL, num_classes)


def resnet110(num_classes=100):
    return ResNet(110, _SMALL, num_classes)


def resnet8x4(num_classes=100):
    return ResNet(8, _X4, num_classes)


def resnet32x4(num_classes=100):
    return ResNet(32, _X4, num_classes)


def wrn_16_2(num_classes=100):
    return WideResNet(16, 2, num_classes)


def wrn_40_1(num_classes=100):
    return WideResNet(40, 1, num_classes)


def wrn_40_2(num_classes=100):
    return WideResNet(40, 2, num_classes)


def vgg8(num_classes=100):
    return VGG(VGG_CFGS["vgg8"], num_classes)


def vgg13(num_classes=100):
    return VGG(VGG_CFGS["vgg13"], num_classes)


def mobilenetv2(num_classes=100):
    return MobileNetV2(expand=6, width=0.5, num_classes=num_classes)


def shufflenetv1(num_classes=100):
    return ShuffleNetV1(num_classes=num_classes)


def shufflenetv2(num_classes=100):
    return ShuffleNetV2(num_classes=num_classes)


CIFAR_MODELS = {
    f.__name__: f
    for f in (resnet8x4, resnet32x4, resnet8, resnet14, resnet20, resnet32, resnet44, resnet56, resnet110,
              wrn_16_2, wrn_40_1, wrn_40_2, vgg8, vgg13, mobilenetv2, shufflenetv1, shufflenetv2)
}
