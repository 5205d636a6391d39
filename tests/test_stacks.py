"""One code path for one seed and for K: every loss and every logits-only method, run on K stacked
seeds' (K, B, C) tensors, gives each seed's own value and gradient, bit for bit (`kdlib.batched`
calls the very same functions on the stacks)."""

import importlib
import inspect
import pkgutil

import pytest
import torch

import kdlib.methods
from kdlib.losses import (cross_entropy, dkd_loss, dkd_terms, kd_loss, logit_mse, luminet_loss, reverse_kl,
                          soft_cross_entropy, target_mass_cross_entropy, tvd)
from kdlib.method import CE, Method

pytestmark = pytest.mark.usefixtures("one_thread")  # bit-identity is a one-thread property
K, C = 5, 10


def _inputs(batch, soft_target=False):
    g = torch.Generator().manual_seed(batch)
    s, t = 3 * torch.randn(K, batch, C, generator=g), 3 * torch.randn(K, batch, C, generator=g)
    y = torch.softmax(torch.randn(K, batch, C, generator=g), -1) if soft_target else torch.randint(0, C, (K, batch), generator=g)
    return s, t, y


def _equal_per_seed(fn, s0, t, y):
    """fn on the stacks equals fn on each seed, values and gradients (the stack's loss summed)."""
    s = s0.clone().requires_grad_()
    values = fn(s, t, y)
    assert values.shape == (K,), values.shape
    values.sum().backward()
    for i in range(K):
        si = s0[i].clone().requires_grad_()
        value = fn(si, t[i], y[i])
        value.backward()
        assert value.shape == ()
        assert torch.equal(values[i], value) and torch.equal(s.grad[i], si.grad)


LOSSES = {
    "kd_loss": lambda s, t, y: kd_loss(s, t, 4.0),
    "cross_entropy": lambda s, t, y: cross_entropy(s, y),
    "dkd_loss": lambda s, t, y: dkd_loss(s, t, y, 1.0, 8.0, 4.0),
    "nckd mean": lambda s, t, y: dkd_terms(s, t, y, 4.0)[1].mean(-1),
    "reverse_kl": lambda s, t, y: reverse_kl(s, t),
    "tvd": lambda s, t, y: tvd(s, t),
    "logit_mse": lambda s, t, y: logit_mse(s, t),
    "luminet_loss": lambda s, t, y: luminet_loss(s, t, 4.0),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("batch", [64, 14])  # 14: 1/B is not a power of two, so the mean's backward must match too
def test_losses_on_stacks_equal_each_seeds_loss(name, batch):
    _equal_per_seed(LOSSES[name], *_inputs(batch))


@pytest.mark.parametrize("fn", [soft_cross_entropy, target_mass_cross_entropy])
def test_soft_target_losses_on_stacks(fn):
    _equal_per_seed(lambda s, t, y: fn(s, y), *_inputs(14, soft_target=True))


def _logits_only_methods():
    """Every logits-only Method of kdlib.methods that builds with its paper defaults, and CE."""
    found = {CE}
    for info in pkgutil.iter_modules(kdlib.methods.__path__):
        module = importlib.import_module(f"kdlib.methods.{info.name}")
        found |= {obj for obj in vars(module).values()
                  if inspect.isclass(obj) and issubclass(obj, Method) and obj.__module__ == module.__name__}
    methods = []
    for cls in sorted(found, key=lambda c: c.__name__):
        try:
            method = cls()
        except TypeError:  # needs a model or data to build (features, heads): not a logits-only method
            continue
        if method.logits_only:
            methods.append(method)
    return methods


METHODS = _logits_only_methods()


def test_the_book_has_logits_only_methods_to_check():
    names = {type(m).__name__ for m in METHODS}
    assert {"CE", "KD", "DKD", "LuminetKD", "CWTM", "TargetCE", "WLSKD", "ActiveKD"} <= names, names


@pytest.mark.parametrize("method", METHODS, ids=lambda m: type(m).__name__)
def test_every_logits_only_method_runs_unchanged_on_stacks(method):
    soft = type(method).__name__ in ("TargetCE", "SubclassTargets")  # their targets are distributions
    s0, t, y = _inputs(14, soft_target=soft)
    for name in method.terms_from_logits(s0[0], t[0], y[0]):
        _equal_per_seed(lambda s, t, y: method.terms_from_logits(s, t, y)[name], s0, t, y)


def test_a_term_that_is_not_per_seed_is_named():
    from kdlib.batched import train_seeds
    from kdlib.models import MLP

    class WholeBatchKD(Method):  # reduces over everything: wrong on stacks
        needs_teacher = False

        def terms_from_logits(self, student_logits, teacher_logits, target):
            return {"ce": cross_entropy(student_logits, target).mean()}

    x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
    with pytest.raises(ValueError, match="WholeBatchKD.terms_from_logits: term 'ce' has shape"):
        train_seeds(lambda s: MLP(8, [4], 3), WholeBatchKD(), lambda s: (x, y), [0, 1], epochs=1, progress=False)
