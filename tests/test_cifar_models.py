"""The CRD/RepDistiller CIFAR-100 zoo: sizes, state_dict layout and logits shape."""

import hashlib

import pytest
import torch

from kdlib.models.cifar import CIFAR_MODELS

# sum(p.numel() for p in model.parameters()) of the reference implementations at
# num_classes=100: HobbitLong/RepDistiller@b84f547, models/ (model_dict names
# MobileNetV2 -> mobile_half, ShuffleV1, ShuffleV2, vgg8/vgg13 -> vgg8_bn/vgg13_bn),
# instantiated with torch 2.13 CPU.
REFERENCE_PARAMS = {
    "resnet8x4": 1233540,
    "resnet32x4": 7433860,
    "resnet8": 83892,
    "resnet14": 181108,
    "resnet20": 278324,
    "resnet32": 472756,
    "resnet44": 667188,
    "resnet56": 861620,
    "resnet110": 1736564,
    "wrn_16_2": 703284,
    "wrn_40_1": 569780,
    "wrn_40_2": 2255156,
    "vgg8": 3965028,
    "vgg13": 9462180,
    "mobilenetv2": 812836,
    "shufflenetv1": 949258,
    "shufflenetv2": 1355528,
}

# First 16 hex digits of sha256(";".join(f"{key}:{tuple(shape)}" for the state_dict)) of
# the same reference models: identical keys, order and shapes, so RepDistiller/CRD
# checkpoints load with strict=True.
REFERENCE_STATE_DICT = {
    "resnet8x4": "8135fcd31bd66896",
    "resnet32x4": "685f596181ef34e8",
    "resnet8": "eec123cffead889d",
    "resnet14": "b671d2c42cef460b",
    "resnet20": "e480ef445ab85de5",
    "resnet32": "716a10c3e306cb9b",
    "resnet44": "0ea6f5caec17075f",
    "resnet56": "d4fcbd5d057cb214",
    "resnet110": "daa718d52ef69745",
    "wrn_16_2": "5af6aa9e7ef23f35",
    "wrn_40_1": "878f52387f93459c",
    "wrn_40_2": "f074c18001055d3e",
    "vgg8": "38970949c714781f",
    "vgg13": "eb9f56f5fa1be1b5",
    "mobilenetv2": "dc5f751da70599bb",
    "shufflenetv1": "c21b32ee346e9700",
    "shufflenetv2": "4a894fed324fb11e",
}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_registry_has_all_names():
    assert set(CIFAR_MODELS) == set(REFERENCE_PARAMS)
    for name, ctor in CIFAR_MODELS.items():
        assert ctor.__name__ == name


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_model_matches_reference_and_gives_logits(name):
    torch.manual_seed(0)
    model = CIFAR_MODELS[name](num_classes=100)
    assert sum(p.numel() for p in model.parameters()) == REFERENCE_PARAMS[name]
    layout = ";".join(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    assert hashlib.sha256(layout.encode()).hexdigest()[:16] == REFERENCE_STATE_DICT[name]
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 100)
    assert torch.isfinite(logits).all()


def test_num_classes_and_train_mode():
    model = CIFAR_MODELS["resnet8"](num_classes=10)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    out.sum().backward()
    assert model.conv1.weight.grad is not None
