"""Forward-hook feature capture: models keep forward(x) -> logits."""

import pytest
import torch

from kdlib.hooks import FeatureHooks, capture
from kdlib.models import MLP, build


def test_capture_penultimate_features_with_gradients():
    model = MLP(hidden=(16, 8))
    x = torch.randn(4, 64)
    with capture(model, ["features"]) as feats:
        logits = model(x)
    assert logits.shape == (4, 10) and feats["features"].shape == (4, 8)
    feats["features"].sum().backward()
    assert model.features[0].weight.grad is not None
    model(x)  # hooks removed on exit: nothing recorded any more
    assert len(model._forward_hooks) == 0 and all(len(m._forward_hooks) == 0 for m in model.modules())


def test_unknown_module_name_is_reported():
    with pytest.raises(KeyError, match="no module named 'nope'"):
        FeatureHooks(MLP(), ["nope"])


def test_hooks_reach_cifar_model_stages():
    model = build("resnet8x4").eval()
    hooks = FeatureHooks(model, ["layer3"])
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    assert hooks["layer3"].shape[0] == 2 and hooks["layer3"].dim() == 4
    hooks.remove()


def test_features_runs_in_chunks_restores_the_mode_and_equals_the_chunks_forwards(one_thread):
    from kdlib.hooks import features
    from kdlib.models import MLP

    torch.manual_seed(0)
    model = MLP(12, [16, 8], 3).train()
    x = torch.randn(50, 12)
    logits, out = features(model, x, ["features"], batch_size=7)  # 8 chunks, the last one short
    assert model.training  # restored
    model.eval()
    chunks, embs = [], []
    with torch.no_grad(), capture(model, ["features"]) as h:
        for i in range(0, 50, 7):
            chunks.append(model(x[i:i + 7]))
            embs.append(h["features"])
        whole = model(x)
    assert torch.equal(logits, torch.cat(chunks)) and torch.equal(out["features"], torch.cat(embs))
    torch.testing.assert_close(logits, whole)  # a kernel may round a row differently at another batch size
    assert not logits.requires_grad and features(model, x)[1] == {}
