"""The LM methods (TokenKD, SKD, TAID, SinKD, GKD, SFT, SeqKD) on fixed seeded tiny GPT-2s: their
terms and the student's gradients equal golden values recorded when each method wrote its own forward
(before the one forward of kdlib.lm.base), and the teacher logits cached by SeedBatches give exactly
the values of the teacher run inside forward."""

import math

import pytest
import torch

from kdlib.lm.methods import GKD, SFT, SeqKD, TokenKD
from kdlib.lm.models import build_lm
from kdlib.lm.sinkd import SinKD
from kdlib.lm.skd import SKD
from kdlib.lm.taid import TAID
from kdlib.lm.tokens import lm_logits, response_mask

V, P, N, T = 10, 3, 6, 12  # content tokens (12 outputs: 2 special), prompt length, batch, sequence length

# Recorded from the code before kdlib.lm.base (bbf7007, each method with its own forward) on the uncached
# path; each float's repr(), so the recording machine reproduces them to the bit.
GOLDEN = {
    "tokenkd_fkl": {
        "fkl@0": 0.0513220839202404,
        "grad_sum": -0.05801292553272247,
        "grad_abs": 5.801885227977779,
    },
    "tokenkd_jsd": {
        "jsd@0": 0.010659625753760338,
        "grad_sum": -0.01172888468751615,
        "grad_abs": 1.2045950871778737,
    },
    "tokenkd_skew_rkl": {
        "skew_rkl@0": 0.03230573609471321,
        "grad_sum": -0.034859850637436546,
        "grad_abs": 3.6727442998783357,
    },
    "skd": {
        "rkl@0": 0.05164618790149689,
        "grad_sum": -0.06403051760782685,
        "grad_abs": 6.028202096496863,
    },
    "taid": {
        "taid@0": 2.1996819972991943,
        "taid@1": 2.1996819972991943,
        "taid@2": 2.1875388622283936,
        "grad_sum": -0.02241420558791707,
        "grad_abs": 2.3570603682316977,
    },
    "sinkd": {
        "kl@0": 0.38609281182289124,
        "sinkd@0": 2.380774974822998,
        "grad_sum": -0.6394110855025898,
        "grad_abs": 45.79927747459443,
    },
    "gkd": {
        "jsd@0": 0.010703335516154766,
        "grad_sum": -0.010031886459164141,
        "grad_abs": 1.2698411840120054,
    },
    "sft": {
        "ce@0": 2.4443821907043457,
        "grad_sum": 0.21144403411199875,
        "grad_abs": 22.16345283321933,
    },
    "seqkd": {
        "ce@0": 2.1021206378936768,
        "grad_sum": -0.1567918683841527,
        "grad_abs": 19.641943872127065,
    },
}


def _lm(seed, n_embd):
    model = build_lm("gpt2", vocab_size=V + 2, n_layer=1, n_embd=n_embd, n_head=2, seed=seed).eval()
    with torch.no_grad():  # sharpen the random init: the two models then disagree visibly
        model.lm_head.weight.mul_(3.0)
    return model


def _methods():
    return {
        "tokenkd_fkl": TokenKD(V, "fkl"), "tokenkd_jsd": TokenKD(V, "jsd", beta=0.3),
        "tokenkd_skew_rkl": TokenKD(V, "skew_rkl", alpha=0.2),
        "skd": SKD(V, P, top_k=3, divergence="rkl"),
        "taid": TAID(V, total_steps=4, alpha=0.2),
        "sinkd": SinKD(V, sinkd_weight=0.3, n_positions=20, seed=5, teacher_temperature=0.5),
        "gkd": GKD(V, P, lam=0.5, divergence="jsd"),
        "sft": SFT(V), "seqkd": SeqKD(V, P),
    }


def _batch(cached, teacher):
    tokens = torch.randint(0, V, (N, T), generator=torch.Generator().manual_seed(11))
    mask = response_mask(tokens, P)
    mask[0, -2:] = False  # a ragged mask: alignment must drop the first target, keep the shape
    batch = {"tokens": tokens, "mask": mask, "generator": torch.Generator().manual_seed(13)}
    if cached:  # as kdlib.lm.cache.SeedBatches adds them: unshifted, first V outputs
        with torch.no_grad():
            batch["teacher_logits"] = lm_logits(teacher, tokens, V)
    return batch


def run(name, cached):
    """name's terms on the fixed batch (TAID: three calls, t moving on the third), and the student's
    gradient of the first call's summed terms as two float64 sums: plain floats, exact to the bit."""
    student, teacher = _lm(1, 16), _lm(2, 24)
    method = _methods()[name]
    method.step = 2
    out = {}
    for call in range(3 if name == "taid" else 1):
        terms = method(student, teacher, _batch(cached, teacher))
        out.update({f"{k}@{call}": float(v.detach()) for k, v in terms.items()})
        if call == 0:
            sum(terms.values()).backward()
    grads = [p.grad.double() for p in student.parameters() if p.grad is not None]
    out["grad_sum"] = float(sum(g.sum() for g in grads))
    out["grad_abs"] = float(sum(g.abs().sum() for g in grads))
    assert all(p.grad is None for p in teacher.parameters())
    return out


def run_all():
    return {f"{name}/{'cached' if cached else 'computed'}": run(name, cached)
            for name in _methods() for cached in (False, True)}


@pytest.mark.parametrize("name", list(GOLDEN))
def test_terms_and_gradients_equal_the_recorded_values(name):
    # rel_tol 1e-6, a few float32 ulps: another CPU's kernels or thread count may round differently;
    # on the recording machine the values were equal to the bit
    got = run(name, cached=False)
    assert got.keys() == GOLDEN[name].keys()
    for key, value in GOLDEN[name].items():
        assert math.isclose(got[key], value, rel_tol=1e-6), (key, got[key], value)


@pytest.mark.parametrize("name", list(GOLDEN))
def test_cached_teacher_logits_give_exactly_the_computed_ones(name):
    """SeedBatches' teacher logits vs the teacher run in forward: the same floats, bit for bit."""
    assert run(name, cached=True) == run(name, cached=False)


def test_the_cache_is_read_and_a_missing_teacher_is_a_clear_error():
    student, teacher = _lm(1, 16), _lm(2, 24)
    method = TokenKD(V, "fkl")
    # the dataset's rows are all served from the cache: no teacher needed
    assert torch.equal(method(student, None, _batch(True, teacher))["fkl"],
                       method(student, teacher, _batch(False, teacher))["fkl"])
    with pytest.raises(ValueError, match="needs a teacher"):
        method(student, None, _batch(False, teacher))
    assert SFT(V)(student, None, _batch(False, teacher))["ce"] > 0  # hard labels: no teacher logits
