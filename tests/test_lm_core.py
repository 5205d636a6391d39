"""kdlib.lm metrics, methods (a two-step run each, through kdlib.train), the LM zoo, Tiny Shakespeare."""

import math

import pytest
import torch

from kdlib.lm import metrics
from kdlib.lm.methods import DIVERGENCES, GKD, SFT, ImitKD, SeqKD, TokenKD
from kdlib.lm.models import build_lm, get_lm, oracle_stream
from kdlib.lm.oracle import MixtureHMMOracle
from kdlib.lm.shakespeare import CharCorpus, load_text
from kdlib.train import train

ARCH = dict(arch="gpt2", n_layer=1, n_embd=16, n_head=1)


@pytest.fixture(scope="module")
def oracle():
    return MixtureHMMOracle(n_domains=2, n_states=8, n_vocab=10, seed=0)


def lm(oracle, seed=0, **arch):
    return build_lm(vocab_size=oracle.vocab_size, seed=seed, **{**ARCH, **arch}).eval()


def test_golden_kl_is_exact(oracle):
    model = lm(oracle)
    tokens = oracle.sample(16, 6, generator=torch.Generator().manual_seed(0))
    log_o = oracle.next_token_logprobs(tokens, dtype=torch.float64)[:, :-1]
    with torch.no_grad():
        log_q = model(tokens).logits[:, :-1, :oracle.n_vocab].double().log_softmax(-1)
    by_hand = (log_o.exp() * (log_o - log_q)).sum(-1).mean()
    assert metrics.golden_token_kl(oracle, model, tokens) == pytest.approx(float(by_hand), rel=1e-4)
    reverse = (log_q.exp() * (log_q - log_o)).sum(-1).mean()
    assert metrics.golden_token_kl(oracle, model, tokens, direction="reverse") == pytest.approx(float(reverse), rel=1e-4)
    assert metrics.proxy_token_kl(model, model, tokens, oracle.n_vocab) == pytest.approx(0.0, abs=1e-6)


def test_sequence_level_estimators(oracle):
    model = lm(oracle)
    tokens = oracle.sample(2000, 6, generator=torch.Generator().manual_seed(0))
    # coverage = E_O[log p - log q] per token: equals the mean token KL(O || S) in expectation
    cov = metrics.coverage_fkl(oracle, model, tokens, prompt_len=3)
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[:, 3:] = True
    token_kl = metrics.golden_token_kl(oracle, model, tokens, mask)
    assert cov == pytest.approx(token_kl, rel=0.1)
    prec, seqs = metrics.precision_rkl(oracle, model, tokens[:, :3], 4, torch.Generator().manual_seed(1))
    assert seqs.shape == (2000, 7) and prec > 0
    assert metrics.sequence_logprob(model, seqs, 3, oracle.n_vocab).shape == (2000,)
    # the oracle against itself has zero KL: log p - log p
    assert oracle.sequence_logprob(seqs, start=3).shape == (2000,)


def test_agreement_and_distinct_n(oracle):
    model = lm(oracle)
    tokens = oracle.sample(8, 5, generator=torch.Generator().manual_seed(0))
    assert metrics.agreement(model, model, tokens, oracle.n_vocab) == 1.0
    assert metrics.distinct_n(torch.tensor([[1, 2, 1, 2]]), 2) == pytest.approx(2 / 3)
    assert metrics.distinct_n(torch.tensor([[1, 2, 3, 4]]), 1) == 1.0


def methods(oracle):
    n = oracle.n_vocab
    out = {f"kd-{d}": TokenKD(n, d, record_grad_norm=True) for d in DIVERGENCES}
    out.update(sft=SFT(n), seqkd=SeqKD(n, prompt_len=3), onpolicy=GKD(n, 3, lam=1.0),
               gkd=GKD(n, 3, lam=0.5, divergence="jsd"), imitkd=ImitKD(n, 3, total_steps=2))
    return out


@pytest.mark.parametrize("name", ["kd-fkl", "kd-rkl", "kd-jsd", "kd-tvd", "kd-skew_fkl", "kd-skew_rkl",
                                  "sft", "seqkd", "onpolicy", "gkd", "imitkd"])
def test_two_step_run_of_every_method(oracle, name):
    method = methods(oracle)[name]
    student, teacher = lm(oracle, seed=1), lm(oracle, seed=2, n_embd=32, n_head=2)
    before = [p.detach().clone() for p in teacher.parameters()]
    data = oracle_stream(oracle, batch_size=4, seq_len=8, prompt_len=3)
    history = train(student, method, data, teacher=teacher, steps=2, lr=1e-3, progress=False)
    assert len(history["loss"]) == 2 and all(math.isfinite(v) for v in history["loss"])
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
    tokens, mask = method.prefixes(student, teacher, data(0, torch.Generator().manual_seed(0)))
    assert tokens.shape == (4, 9) and tokens.max() < oracle.vocab_size
    if name == "kd-fkl":
        assert len(method.grad_norms) == 2


def test_gkd_lambda_selects_the_data_source(oracle):
    student, teacher = lm(oracle, seed=1), lm(oracle, seed=2)
    batch = oracle_stream(oracle, 32, 8, prompt_len=3)(0, torch.Generator().manual_seed(0))
    supervised, _ = GKD(oracle.n_vocab, 3, lam=0.0).prefixes(student, teacher, batch)
    assert torch.equal(supervised, batch["tokens"])
    on_policy, mask = GKD(oracle.n_vocab, 3, lam=1.0).prefixes(student, teacher, batch)
    assert torch.equal(on_policy[:, :3], batch["tokens"][:, :3])
    assert not torch.equal(on_policy, batch["tokens"]) and mask[:, 3:].all() and not mask[:, :3].any()
    imit = ImitKD(oracle.n_vocab, 3, total_steps=11)
    imit.step = 0
    assert imit.current_lam() == 0.0
    imit.step = 10
    assert imit.current_lam() == 1.0


def test_lm_zoo_trains_once_and_reloads(oracle, tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_CACHE", str(tmp_path))
    kwargs = dict(tokens=4 * 8 * 3, batch_size=4, seq_len=8, seed=0)
    first = get_lm(oracle, ARCH, progress=False, **kwargs)
    assert first.zoo_meta["metrics"]["steps"] == 3 and first.zoo_meta["metrics"]["golden_fkl"] > 0
    again = get_lm(oracle, ARCH, progress=False, **kwargs)
    assert again.zoo_meta["sha256"] == first.zoo_meta["sha256"]
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters()))
    assert not again.training


def test_tiny_shakespeare_checksum_and_corpus(tmp_path):
    corpus = CharCorpus()
    assert corpus.n_vocab == 65 and corpus.vocab_size == 66
    assert corpus.decode(corpus.encode("First Citizen")) == "First Citizen"
    windows = corpus.windows(4, 16, torch.Generator().manual_seed(0))
    assert windows.shape == (4, 17) and (windows[:, 0] == corpus.bos).all()
    assert corpus.held_out(64, max_windows=3).shape == (3, 65)
    bad = tmp_path / "tinyshakespeare.txt"
    bad.write_text("not Shakespeare")
    with pytest.raises(ValueError, match="tinyshakespeare.txt: sha256"):
        load_text(bad)


def test_lm_zoo_on_real_text(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_CACHE", str(tmp_path))
    corpus = CharCorpus()
    model = get_lm(corpus, ARCH, progress=False, tokens=2 * 4 * 16, batch_size=4, seq_len=16)
    assert model.zoo_meta["metrics"]["heldout_nll"] > 0
    assert model.zoo_meta["spec"]["data"]["kind"] == "tinyshakespeare"
    nll = metrics.heldout_nll(model, corpus.held_out(16, 4), corpus.n_vocab)
    assert 0 < nll < 2 * math.log(corpus.vocab_size)


def test_toy_forward_kl_averages_modes_and_reverse_kl_seeks_one():
    from kdlib.lm.toy import bimodal_logits, fit_gaussian, grid

    x = grid(121)
    teacher = bimodal_logits(x)  # modes at -2 and +2
    fkl = fit_gaussian(teacher, x, "fkl", steps=300)
    rkl = fit_gaussian(teacher, x, "rkl", steps=300)
    assert abs(fkl["mean"]) < 0.2 and fkl["std"] > 1.5  # covers both modes
    assert abs(rkl["mean"] - 2.0) < 0.2 and rkl["std"] < 1.0  # sits on one


def test_paper_length_sequences_smoke(oracle):
    """seq_len 128 (the paper profile's): 129 tokens with the tag, one more than the default 128 positions."""
    seq_len, prompt = 128, 33
    too_short = lm(oracle)
    with pytest.raises(ValueError, match="n_positions=128"):
        metrics.golden_token_kl(oracle, too_short, oracle.sample(2, seq_len))
    teacher = lm(oracle, max_len=1 + seq_len)
    student = lm(oracle, seed=1, max_len=1 + seq_len, n_embd=8)
    assert student.config.n_positions == 129
    assert lm(oracle, max_len=49).config.n_positions == 128  # the cpu profile's models are unchanged
    data = oracle_stream(oracle, 4, seq_len, prompt_len=prompt)
    for method in (TokenKD(oracle.n_vocab, "rkl"), GKD(oracle.n_vocab, prompt, lam=1.0)):
        history = train(student, method, data, teacher=teacher, steps=3, lr=1e-2, progress=False)
        assert all(math.isfinite(v) for v in history["loss"])
    eval_tokens = oracle.sample(4, seq_len, generator=torch.Generator().manual_seed(0))
    assert metrics.golden_token_kl(oracle, student, eval_tokens) > 0
    assert math.isfinite(metrics.precision_rkl(oracle, student, eval_tokens[:, :prompt], seq_len - prompt + 1)[0])
    with pytest.raises(ValueError, match="max_len=130"):  # one token beyond: a clear error, not an index error
        metrics.precision_rkl(oracle, student, eval_tokens[:, :prompt], seq_len - prompt + 2)


def test_oracle_stream_prefetch_serves_the_pool_in_order(oracle):
    one = oracle_stream(oracle, 4, 6)
    pooled = oracle_stream(oracle, 4, 6, prefetch=3)
    g = torch.Generator().manual_seed(0)
    batches = [pooled(step, g)["tokens"] for step in range(6)]
    pool = oracle.sample(12, 6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat(batches[:3]), pool)  # steps 0-2: one call, in order
    assert not torch.equal(batches[3], batches[0])  # step 3: a fresh pool
    # on the CPU the default is one batch per call: the original stream
    assert torch.equal(one(0, torch.Generator().manual_seed(0))["tokens"],
                       oracle.sample(4, 6, generator=torch.Generator().manual_seed(0)))


def test_text_teacher_budget_capped_in_epochs():
    from kdlib.lm.models import MAX_TEXT_EPOCHS, lm_spec

    corpus = CharCorpus()
    n = len(corpus.train_ids)
    assert lm_spec(corpus, ARCH, tokens=50_000_000)["tokens"] == MAX_TEXT_EPOCHS * n
    assert lm_spec(corpus, ARCH, tokens=50_000_000, max_epochs=2)["tokens"] == 2 * n
    assert lm_spec(corpus, ARCH, tokens=1_000_000)["tokens"] == 1_000_000  # the cpu profile: under the cap
    assert lm_spec(MixtureHMMOracle(seed=0), ARCH, tokens=50_000_000)["tokens"] == 50_000_000  # fresh samples
