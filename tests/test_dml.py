"""Deep mutual learning, one method for three chapters: mutual_kl's properties, and golden values
of the three former implementations (pesf's DML + DMLPair, bdkd's OnlineKD('dml') + OnlinePair,
orc's GroupDML + StudentGroup) that the one DML on a Cohort reproduces, then short runs."""

import math

import pytest
import torch
from torch import nn

from kdlib.cohort import Cohort
from kdlib.losses import bdkd_loss, cross_entropy, kd_loss, mutual_kl
from kdlib.methods import METHODS
from kdlib.methods.bdkd import online_pair
from kdlib.methods.dml import DML
from kdlib.methods.orc import student_group
from kdlib.methods.pesf import dml_pair
from kdlib.models.small import MLP
from kdlib.train import evaluate, train


class Fixed(nn.Module):
    """A 'network' whose logits are its parameter, whatever the input: the loss on given logits."""

    def __init__(self, logits):
        super().__init__()
        self.z = nn.Parameter(logits.clone())

    def forward(self, x):
        return self.z


def seeded(k, seed):
    """K seeded (8, 5) logits of growing scale, and (8,) labels (the golden runs' inputs)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(8, 5, generator=g) * (1 + i) for i in range(k)], torch.randint(0, 5, (8,), generator=g)


X = torch.zeros(8, 1)  # Fixed ignores its input


def terms_and_grads(method, cohort, y):
    terms = method(cohort, None, (X, y))
    grads = torch.autograd.grad(sum(terms.values()), [net.z for net in cohort.networks])
    return terms, grads


# --- the former formulas, copied from the code they replace, as golden references -----------------

def old_pesf_dml(z_s, z_t, y, temperature, ce_weight, kd_weight):  # pesf.DML.forward
    return {"ce": ce_weight * cross_entropy(z_s, y),
            "kd": kd_weight * kd_loss(z_s, z_t.detach(), temperature),
            "teacher_ce": ce_weight * cross_entropy(z_t, y),
            "teacher_kd": kd_weight * kd_loss(z_t, z_s.detach(), temperature)}


def old_bdkd_dml(small_logits, large_logits, y, t, k):  # bdkd.OnlineKD('dml').forward
    return {"ce_small": cross_entropy(small_logits, y),
            "kl_small": k * bdkd_loss(small_logits, large_logits.detach(), 0.0, t),
            "ce_large": cross_entropy(large_logits, y),
            "kl_large": k * bdkd_loss(large_logits, small_logits.detach(), 0.0, t)}


def old_group_dml(logits, y, kl_weight, temperature):  # orc.GroupDML.forward
    k = len(logits)
    kl = sum(kd_loss(logits[i], logits[j].detach(), temperature) for i in range(k) for j in range(k) if j != i)
    return {"ce": sum(cross_entropy(z, y) for z in logits), "kl": kl_weight / (k - 1) * kl}


# values printed by the former code (commit bbf7007) on these inputs
GOLDEN_PESF = {(1.0, 1.0): (1.2622101306915283, 1.4165046215057373, 2.23130202293396, 1.451251745223999),
               (0.7, 0.3): (0.8835470676422119, 0.4249514043331146, 1.5619113445281982, 0.43537554144859314)}
GOLDEN_BDKD = {(1.0, 1.0): (1.96365487575531, 0.5045063495635986, 2.250563383102417, 0.8672067523002625),
               (1.0, 0.5): (1.96365487575531, 0.2522531747817993, 2.250563383102417, 0.4336033761501312),
               (2.0, 0.5): (1.96365487575531, 0.113046795129776, 2.250563383102417, 0.15182942152023315)}
GOLDEN_ORC = {(1.0, 1.0): (10.233572006225586, 5.757159233093262), (2.0, 0.8): (10.233572006225586, 6.746072292327881)}


@pytest.mark.parametrize("weights", list(GOLDEN_PESF))
def test_pesf_setting_equals_the_former_dml(weights):
    ce_weight, kd_weight = weights
    (z_s, z_t), y = seeded(2, 0)
    pair = dml_pair(Fixed(z_t), Fixed(z_s))  # T = 6 with T^2, the chapter's weights
    terms, grads = terms_and_grads(DML(temperature=6.0, ce_weight=ce_weight, kl_weight=kd_weight), pair, y)
    new = [terms[k] for k in ("ce_student", "kl_student", "ce_teacher", "kl_teacher")]
    zs, zt = z_s.clone().requires_grad_(), z_t.clone().requires_grad_()
    old = old_pesf_dml(zs, zt, y, 6.0, ce_weight, kd_weight)
    for a, b, golden in zip(new, old.values(), GOLDEN_PESF[weights]):
        assert a.item() == pytest.approx(b.item(), abs=1e-6) and a.item() == pytest.approx(golden, abs=1e-6)
    assert sum(terms.values()).item() == sum(old.values()).item()  # same terms, same order
    assert all(torch.equal(a, b) for a, b in zip(grads, torch.autograd.grad(sum(old.values()), [zs, zt])))


@pytest.mark.parametrize("setting", list(GOLDEN_BDKD))
def test_bdkd_setting_equals_the_former_online_dml(setting):
    temperature, kl_weight = setting
    (z_s, z_l), y = seeded(2, 1)
    pair = online_pair(Fixed(z_l), Fixed(z_s))  # no T^2: bdkd_loss's convention
    method = DML(temperature=temperature, kl_weight=kl_weight, t_squared=False)
    terms, grads = terms_and_grads(method, pair, y)
    zs, zl = z_s.clone().requires_grad_(), z_l.clone().requires_grad_()
    old = old_bdkd_dml(zs, zl, y, temperature, kl_weight)
    assert list(terms) == list(old)  # the same names, in the same order
    for name, golden in zip(old, GOLDEN_BDKD[setting]):
        assert terms[name].item() == pytest.approx(old[name].item(), abs=1e-6)
        assert terms[name].item() == pytest.approx(golden, abs=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(grads, torch.autograd.grad(sum(old.values()), [zs, zl])))


@pytest.mark.parametrize("setting", list(GOLDEN_ORC))
def test_orc_setting_equals_the_former_group_dml(setting):
    temperature, kl_weight = setting
    zz, y = seeded(3, 2)
    group = student_group([Fixed(z) for z in zz])
    terms, grads = terms_and_grads(DML(temperature=temperature, kl_weight=kl_weight), group, y)
    leaves = [z.clone().requires_grad_() for z in zz]
    old = old_group_dml(leaves, y, kl_weight, temperature)
    ce = sum(terms[f"ce_s{i + 1}"] for i in range(3))  # per student now; the former code summed them
    kl = sum(terms[f"kl_s{i + 1}"] for i in range(3))
    for new, name, golden in zip((ce, kl), ("ce", "kl"), GOLDEN_ORC[setting]):
        assert new.item() == pytest.approx(old[name].item(), abs=1e-6) and new.item() == pytest.approx(golden, abs=1e-6)
    # the terms are grouped per student (a float round-off in the summed loss), the graph is not:
    # the gradients are the former ones bit for bit
    assert all(torch.equal(a, b) for a, b in zip(grads, torch.autograd.grad(sum(old.values()), leaves)))


def test_mutual_kl_conventions_and_limits():
    (a, b), _ = seeded(2, 3)
    for t in (1.0, 2.0, 6.0):
        assert torch.equal(mutual_kl(a, b, t), kd_loss(a, b, t))
        assert mutual_kl(a, b, t, t_squared=False).item() == pytest.approx(bdkd_loss(a, b, 0.0, t).item(), abs=1e-7)
    assert torch.equal(mutual_kl(a, b, 1.0), mutual_kl(a, b, 1.0, t_squared=False))  # T = 1: the same
    assert mutual_kl(a, a, 2.0).abs() < 1e-6 and mutual_kl(a, b) > 0
    a_, b_ = a.clone().requires_grad_(), b.clone().requires_grad_()
    mutual_kl(a_, b_).backward()
    assert b_.grad is None and a_.grad.abs().sum() > 0  # the peer is a target, not trained through


def test_dml_terms_logs_and_validation():
    zz, y = seeded(3, 4)
    group = Cohort([Fixed(z) for z in zz], names=("a", "b", "c"))
    m = DML()
    terms = m(group, None, (X, y))
    assert list(terms) == ["ce_a", "kl_a", "ce_b", "kl_b", "ce_c", "kl_c"]
    logged = m.pop_logged()
    assert set(logged) == {"entropy_a", "entropy_b", "entropy_c"}
    assert all(0 <= float(v) <= math.log(5) + 1e-6 for v in logged.values())
    with pytest.raises(TypeError, match="Cohort"):
        m(MLP(hidden=(8,)), None, (torch.randn(4, 64), torch.zeros(4, dtype=torch.long)))
    with pytest.raises(ValueError, match="temperature"):
        DML(temperature=0.0)
    assert METHODS["dml"] is DML


def test_short_dml_run_trains_every_network_and_scores_the_deployed_one():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(128, 64, generator=g), torch.randint(0, 10, (128,), generator=g)
    torch.manual_seed(0)
    cohort = Cohort([MLP(hidden=(8,)), MLP(hidden=(16,)), MLP(hidden=(32,))], scored=1)
    before = [p.detach().clone() for p in cohort.parameters()]
    hist = train(cohort, DML(), (x, y), epochs=2, batch_size=64, progress=False)
    assert {"ce_net1", "kl_net3", "entropy_net2"} <= set(hist) and len(hist["entropy_net1"]) == 2
    assert all(math.isfinite(v) for v in hist["loss"])
    assert all(not torch.equal(a, b) for a, b in zip(before, cohort.parameters()))
    assert evaluate(cohort, (x, y)) == evaluate(cohort["net2"], (x, y))
