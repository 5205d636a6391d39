"""Feature plumbing shared by Part III: the patch transformer, stage names for every family, adapters."""

import pytest
import torch

from kdlib.adapters import Conv1x1Adapter, FlattenAdapter, LinearAdapters, TokenAdapter, adapter_for, stage_shapes
from kdlib.hooks import capture, stage_names
from kdlib.models import CIFAR_MODELS
from kdlib.models.transformer import PatchTransformer
from kdlib.tasks import make_model


def test_patch_transformer_tokens_and_embedding():
    model = PatchTransformer(in_len=40, patch=4, dim=16, depth=3, heads=2)
    x = torch.randn(5, 40)
    names = stage_names(model)
    assert names == ["features.1", "features.2", "features.3"]
    with capture(model, ["features.0", *names, "features"]) as h:
        logits = model(x)
    assert logits.shape == (5, 10)
    assert h["features.0"].shape == (5, 10, 16)  # 10 tokens of 4 samples
    assert all(h[n].shape == (5, 10, 16) for n in names)
    assert h["features"].shape == (5, 16)
    assert torch.allclose(model.fc(h["features"]), logits)


def test_patch_transformer_rejects_bad_sizes():
    with pytest.raises(ValueError, match="in_len=40 is not a multiple of patch=3"):
        PatchTransformer(patch=3)
    with pytest.raises(ValueError, match="dim=10 is not a multiple of heads=4"):
        PatchTransformer(dim=10)


def test_patch_transformer_attends_across_tokens():
    """Changing the first patch changes every token after one block (a per-token MLP would not)."""
    torch.manual_seed(0)
    model = PatchTransformer(depth=1).eval()
    x = torch.randn(1, 40)
    y = x.clone()
    y[0, :4] += 1.0
    with capture(model, ["features.1"]) as h:
        model(x)
        a = h["features.1"]
        model(y)
        b = h["features.1"]
    assert (a - b)[0, -1].abs().max() > 1e-4


def test_stage_names_for_every_family():
    assert stage_names(make_model("mlp", 10, [8, 8, 8], dataset="mnist1d")) == ["features.1", "features.3", "features.5"]
    assert len(stage_names(make_model("cnn1d", 10, dataset="mnist1d"))) == 3
    assert stage_names(CIFAR_MODELS["resnet8x4"](num_classes=100)) == ["layer1", "layer2", "layer3"]
    assert stage_names(CIFAR_MODELS["wrn_16_2"](num_classes=100)) == ["block1", "block2", "block3"]
    assert stage_names(CIFAR_MODELS["vgg8"](num_classes=100)) == [f"block{k}" for k in range(5)]
    assert stage_names(CIFAR_MODELS["mobilenetv2"](num_classes=100)) == [f"blocks.{k}" for k in range(7)]
    with pytest.raises(ValueError, match="no known stages in Linear"):
        stage_names(torch.nn.Linear(2, 2))


def test_adapters_map_to_the_teacher_shape():
    assert isinstance(adapter_for((16,), (125,)), torch.nn.Linear)
    conv = adapter_for((8, 19), (25, 5))
    assert isinstance(conv, Conv1x1Adapter) and conv(torch.randn(3, 8, 19)).shape == (3, 25, 5)
    tok = adapter_for((10, 16), (5, 32), tokens=True)
    assert isinstance(tok, TokenAdapter) and tok(torch.randn(3, 10, 16)).shape == (3, 5, 32)
    flat = adapter_for((25, 5), (100,))
    assert isinstance(flat, FlattenAdapter) and flat(torch.randn(3, 25, 5)).shape == (3, 100)
    back = adapter_for((100,), (25, 5))
    assert back(torch.randn(3, 100)).shape == (3, 25, 5)
    lin = LinearAdapters([3, 4], [6, 8])
    assert [o.shape for o in lin([torch.randn(2, 3), torch.randn(2, 4)])] == [(2, 6), (2, 8)]
    with pytest.raises(ValueError, match="2 student widths but 1 teacher widths"):
        LinearAdapters([3, 4], [6])


def test_token_adapter_is_per_token_then_pooled():
    ad = TokenAdapter(4, 4, 2)
    with torch.no_grad():
        ad.proj.weight.copy_(torch.eye(4))
        ad.proj.bias.zero_()
    x = torch.arange(16.0).view(1, 4, 4)
    assert torch.equal(ad(x)[0], torch.stack([x[0, :2].mean(0), x[0, 2:].mean(0)]))


def test_stage_shapes_across_families():
    x = torch.randn(4, 40)
    cnn = make_model("cnn1d", 10, dataset="mnist1d")
    assert stage_shapes(cnn, x, stage_names(cnn)) == [(25, 19), (25, 10), (25, 5)]
    tr = PatchTransformer()
    assert stage_shapes(tr, x, stage_names(tr)) == [(10, 32), (10, 32)]
    assert cnn.training and tr.training  # left in the mode they were in
