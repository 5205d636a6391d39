"""One-for-All: the eps-modulated loss, FitNets' hint, exit branches for every family, both methods."""

import pytest
import torch
import torch.nn.functional as F

from kdlib.adapters import ExitBranch, stage_shapes
from kdlib.hooks import capture, stage_names
from kdlib.losses import fitnet_loss, kd_loss, ofa_loss
from kdlib.methods import METHODS, FitNet, OFA
from kdlib.models.small import CNN1D
from kdlib.models.transformer import PatchTransformer
from kdlib.tasks import make_model
from kdlib.train import train


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 10, generator=g), torch.randn(6, 10, generator=g)
    y = torch.randint(0, 10, (6,), generator=g)
    return s, t, y


def brute_ofa(s, t, y, eps, temp=1.0):
    """Eq. of the official ofa_loss, class by class in float64."""
    p_s, p_t = F.softmax(s.double() / temp, -1), F.softmax(t.double() / temp, -1)
    total = 0.0
    for n in range(len(y)):
        for c in range(s.shape[1]):
            hit = float(c == int(y[n]))
            total += -((p_t[n, c] + hit) ** eps - hit) * torch.log(p_s[n, c])
    return total / len(y)


def test_ofa_golden_values(logits):
    s, t, y = logits
    assert ofa_loss(s, t, y, 1.0).item() == pytest.approx(2.5652378, abs=1e-5)
    assert ofa_loss(s, t, y, 1.5).item() == pytest.approx(1.2021505, abs=1e-5)
    for eps, temp in [(1.0, 1.0), (1.5, 1.0), (2.0, 4.0), (0.7, 2.0)]:
        assert ofa_loss(s, t, y, eps, temp).item() == pytest.approx(float(brute_ofa(s, t, y, eps, temp)), rel=1e-5)


def test_eps_one_is_soft_label_cross_entropy(logits):
    s, t, y = logits
    soft_ce = -(F.softmax(t, -1) * F.log_softmax(s, -1)).sum(-1).mean()
    assert torch.allclose(ofa_loss(s, t, y, 1.0), soft_ce, atol=1e-6)
    # = KL(p_t || p_s) + H(p_t): KD at T = 1 plus a constant of the teacher
    entropy_t = -(F.softmax(t, -1) * F.log_softmax(t, -1)).sum(-1).mean()
    assert torch.allclose(ofa_loss(s, t, y, 1.0), kd_loss(s, t, 1.0) + entropy_t, atol=1e-5)
    # the labels play no role at eps = 1
    assert torch.allclose(ofa_loss(s, t, y, 1.0), ofa_loss(s, t, (y + 1) % 10, 1.0))


def test_eps_above_one_enhances_the_target_class(logits):
    s, t, y = logits
    p_t = F.softmax(t, -1)
    mask = F.one_hot(y, 10).float()
    w1, w15 = (p_t + mask) - mask, (p_t + mask) ** 1.5 - mask
    target_share = lambda w: (w * mask).sum(-1) / w.sum(-1)  # noqa: E731
    assert (target_share(w15) > target_share(w1)).all()
    # the labels matter once eps != 1
    assert not torch.allclose(ofa_loss(s, t, y, 1.5), ofa_loss(s, t, (y + 1) % 10, 1.5))


def test_ofa_nonnegative_and_minimised_near_the_teacher(logits):
    s, t, y = logits
    assert ofa_loss(s, t, y, 1.5) >= 0 and ofa_loss(s, t, y, 1.0) >= 0
    # at eps = 1 the minimiser over student logits is the teacher's distribution
    assert ofa_loss(t, t, y, 1.0) < ofa_loss(s, t, y, 1.0)
    assert ofa_loss(t + 3.0, t, y, 1.0).item() == pytest.approx(ofa_loss(t, t, y, 1.0).item(), abs=1e-5)


def test_no_gradient_reaches_the_teacher(logits):
    s, t, y = logits
    s, t = s.clone().requires_grad_(), t.clone().requires_grad_()
    ofa_loss(s, t, y, 1.5).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None
    a, b = torch.randn(4, 3, 5, requires_grad=True), torch.randn(4, 3, 5, requires_grad=True)
    fitnet_loss(a, b).backward()
    assert a.grad.abs().sum() > 0 and b.grad is None


def test_fitnet_loss_is_the_elementwise_mse():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(4, 3, 5, generator=g), torch.randn(4, 3, 5, generator=g)
    assert fitnet_loss(a, b).item() == pytest.approx(((a - b) ** 2).mean().item())
    assert fitnet_loss(a, a).item() == 0.0
    assert fitnet_loss(a, b).item() == pytest.approx(1.6703949, abs=1e-5)


def test_bad_input_is_named(logits):
    s, t, y = logits
    with pytest.raises(ValueError, match="ofa_loss: eps"):
        ofa_loss(s, t, y, 0.0)
    with pytest.raises(ValueError, match="ofa_loss: logits"):
        ofa_loss(s, t[:, :5], y, 1.0)
    with pytest.raises(ValueError, match="fitnet_loss"):
        fitnet_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="ExitBranch: feature_shape"):
        ExitBranch((2, 3, 4), 10)
    with pytest.raises(ValueError, match="OFA: 2 stage names"):
        OFA(["a", "b"], [(3,)])


def families():
    return {"mlp": (make_model("mlp", 10, [16, 16], seed=0, dataset="mnist1d"), False),
            "cnn": (CNN1D(channels=6), False),
            "tf": (PatchTransformer(dim=8, heads=2), True)}


@pytest.mark.parametrize("family", ["mlp", "cnn", "tf"])
def test_exit_branch_maps_every_stage_to_logits(family):
    model, tokens = families()[family]
    x = torch.randn(5, 40)
    names = stage_names(model)
    shapes = stage_shapes(model, x, names)
    with capture(model, names) as h:
        model(x)
    for n, shape in zip(names, shapes):
        branch = ExitBranch(shape, 10, tokens=tokens)
        z = branch(h[n].detach())
        assert z.shape == (5, 10)
        z.sum().backward()  # gradients reach the branch
        assert all(p.grad is not None for p in branch.parameters())
    with pytest.raises(ValueError, match="ExitBranch: expected features"):
        ExitBranch(shapes[0], 10, tokens=tokens)(torch.randn(5, 7))


def _data(n=64):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 40, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_ofa_method_terms_branches_and_frozen_teacher():
    teacher = CNN1D(channels=6).eval()
    student = PatchTransformer(dim=8, heads=2)
    x, y = _data()
    names = stage_names(student)
    method = OFA(names, stage_shapes(student, x, names), eps=1.5, tokens=True)
    assert len(method.branches) == 2
    terms = method(student, teacher, (x, y))
    assert set(terms) == {"ce", "ofa", "ofa_branches"}
    sum(terms.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in method.branches.parameters())
    # the student at inference is the student alone: its logits ignore the branches
    assert torch.equal(method.predict(student, x), student(x))
    # no stages: CE + L_OFA on the logits; at eps = 1 that is CE + KD(T=1) + H(p_t)
    bare = OFA([], [], eps=1.0)(student, teacher, (x, y))
    assert set(bare) == {"ce", "ofa"}


def test_fitnet_method_across_and_within_families():
    teacher = CNN1D(channels=6).eval()
    x, y = _data()
    tn = stage_names(teacher)
    tsh = stage_shapes(teacher, x, tn)
    for student, tokens in [(PatchTransformer(dim=8, heads=2), True), (CNN1D(channels=4), False),
                            (make_model("mlp", 10, [16], seed=0, dataset="mnist1d"), False)]:
        sn = stage_names(student)
        ssh = stage_shapes(student, x, sn)
        method = FitNet(sn[-1], tn[1], ssh[-1], tsh[1], student_tokens=tokens)
        terms = method(student, teacher, (x, y))
        assert set(terms) == {"ce", "kd", "hint"} and terms["hint"] > 0
        sum(terms.values()).backward()
        assert all(p.grad is None for p in teacher.parameters())
        assert all(p.grad is not None for p in method.adapter.parameters())


def test_short_runs_learn_and_keep_the_teacher():
    teacher = CNN1D(channels=6).eval()
    before = [p.detach().clone() for p in teacher.parameters()]
    x, y = _data(128)
    student = CNN1D(channels=4)
    sn = stage_names(student)
    method = OFA(sn, stage_shapes(student, x, sn), eps=1.5)
    hist = train(student, method, (x, y), teacher=teacher, epochs=3, batch_size=32, lr=1e-2, progress=False)
    assert hist["loss"][-1] < hist["loss"][0]
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
    assert METHODS["ofa"] is OFA and METHODS["fitnet"] is FitNet
