"""kdlib.lm.cache: a seed's batches and teacher logits computed once give the same students as
recomputing them per objective; the evaluation constants give the same metrics as kdlib.lm.metrics."""

import pytest
import torch

from kdlib.lm import metrics
from kdlib.lm.cache import EvalSet, SeedBatches
from kdlib.lm.methods import GKD, SFT, ImitKD, TokenKD
from kdlib.lm.models import build_lm, oracle_stream
from kdlib.lm.oracle import MixtureHMMOracle
from kdlib.train import train

ARCH = dict(arch="gpt2", n_layer=1, n_embd=16, n_head=1)
STEPS, P = 4, 3


@pytest.fixture(scope="module")
def oracle():
    return MixtureHMMOracle(n_domains=2, n_states=8, n_vocab=12, seed=0)


@pytest.fixture(scope="module")
def teacher(oracle):
    return build_lm(vocab_size=oracle.vocab_size, seed=99, **{**ARCH, "n_embd": 24, "n_head": 2}).eval()


def _method(name, oracle):
    n = oracle.n_vocab
    if name == "sft":
        return SFT(n)
    if name == "gkd":
        return GKD(n, P, lam=0.5)
    if name == "imitkd":
        return ImitKD(n, P, total_steps=STEPS)
    return TokenKD(n, name)


def _students(oracle, teacher, names, stream, seed=3):
    """Train one student per objective on `stream`, in order; return their parameters."""
    out = {}
    for name in names:
        student = build_lm(vocab_size=oracle.vocab_size, seed=seed, **ARCH)
        train(student, _method(name, oracle), stream, teacher=teacher, steps=STEPS, lr=3e-3, optimizer="adamw",
              lr_schedule="cosine", seed=seed, progress=False)
        out[name] = [p.detach().clone() for p in student.parameters()]
    return out


NAMES = ["sft", "fkl", "rkl", "skew_fkl", "gkd", "imitkd"]


def test_cached_batches_and_teacher_logits_give_identical_students(oracle, teacher):
    data = oracle_stream(oracle, 6, 10, prompt_len=P)
    cached = SeedBatches(data, seed=7, teacher=teacher, n_vocab=oracle.n_vocab, cache=True)
    uncached = SeedBatches(data, seed=7, teacher=teacher, n_vocab=oracle.n_vocab, cache=False)
    a = _students(oracle, teacher, NAMES, cached)
    b = _students(oracle, teacher, NAMES, uncached)
    assert len(cached) == STEPS and len(uncached) == 0
    for name in NAMES:
        assert all(torch.equal(x, y) for x, y in zip(a[name], b[name])), name
    # and the objectives really differ (the comparison could fail)
    assert not all(torch.equal(x, y) for x, y in zip(a["fkl"], a["rkl"]))


def test_cached_teacher_logits_equal_running_the_teacher_in_the_loss(oracle, teacher):
    data = oracle_stream(oracle, 6, 10, prompt_len=P)
    with_logits = SeedBatches(data, seed=7, teacher=teacher, n_vocab=oracle.n_vocab)
    without = SeedBatches(data, seed=7)  # no teacher_logits in the batch: the method runs the teacher
    a = _students(oracle, teacher, ["fkl", "gkd"], with_logits)
    b = _students(oracle, teacher, ["fkl", "gkd"], without)
    for name in a:
        assert all(torch.equal(x, y) for x, y in zip(a[name], b[name])), name


def test_every_objective_sees_the_same_batches_even_when_a_method_samples(oracle, teacher):
    seen = {}

    def spy(name, stream):
        def data(step, generator):
            batch = stream(step, generator)
            seen.setdefault(name, []).append(batch["tokens"].clone())
            return batch
        return data

    for name in ["fkl", "gkd"]:  # gkd draws from the loop's generator; the batches must not move
        stream = SeedBatches(oracle_stream(oracle, 6, 10, prompt_len=P), seed=7, cache=False)
        student = build_lm(vocab_size=oracle.vocab_size, seed=3, **ARCH)
        train(student, _method(name, oracle), spy(name, stream), teacher=teacher, steps=STEPS, seed=3, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(seen["fkl"], seen["gkd"]))
    assert not torch.equal(seen["fkl"][0], seen["fkl"][1])


def test_steps_out_of_order_are_refused(oracle):
    stream = SeedBatches(oracle_stream(oracle, 2, 5), seed=0)
    stream(0, None)
    with pytest.raises(ValueError, match="in order"):
        stream(2, None)
    with pytest.raises(ValueError, match="n_vocab"):
        SeedBatches(oracle_stream(oracle, 2, 5), seed=0, teacher=object())


def test_eval_set_equals_the_metrics_functions(oracle, teacher):
    tokens = oracle.sample(16, 9, generator=torch.Generator().manual_seed(1))
    student = build_lm(vocab_size=oracle.vocab_size, seed=5, **ARCH).eval()
    ev = EvalSet(oracle, tokens, P)
    lp, t_lp = ev.logprobs(student), ev.teacher_logprobs(teacher)
    assert ev.teacher_logprobs(teacher) is t_lp  # computed once
    n = oracle.n_vocab
    mask = ev.response_mask
    assert ev.golden_token_kl(lp) == metrics.golden_token_kl(oracle, student, tokens)
    assert ev.golden_token_kl(lp, mask) == metrics.golden_token_kl(oracle, student, tokens, mask)
    assert ev.golden_token_kl(lp, direction="reverse") == metrics.golden_token_kl(oracle, student, tokens,
                                                                                  direction="reverse")
    assert ev.coverage(lp) == metrics.coverage_fkl(oracle, student, tokens, P)
    assert ev.proxy_token_kl(t_lp, lp) == metrics.proxy_token_kl(teacher, student, tokens, n)
    assert ev.agreement(t_lp, lp) == metrics.agreement(teacher, student, tokens, n)
    assert torch.equal(ev.oracle_response_logprob, oracle.sequence_logprob(tokens, start=P))
    assert ev.golden_token_kl(lp) != ev.golden_token_kl(ev.teacher_logprobs(teacher))
