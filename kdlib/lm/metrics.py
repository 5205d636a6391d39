"""Exact metrics against the oracle (golden) and the teacher (proxy), papers-llm.md Sec. 0.4.

Token level: the KL between next-token distributions, averaged over the
positions of any set of prefixes -- oracle-, teacher- or student-generated.
Sequence level, with exact oracle log-likelihoods:

    precision  RKL(S || O) = E_{y ~ q_S}[log q_S(y|x) - log p_O(y|x)]   on student samples
    coverage   FKL(O || S) = E_{y ~ p_O}[log p_O(y|x) - log q_S(y|x)]   on oracle samples

both reported in nats per response token. Lower is better for both.

Devices: a model's log-probs stay on the model's device and the oracle's on
the oracle's; a golden comparison runs on the oracle's device. Tokens may be
anywhere. Every metric returns a Python float.
"""

from __future__ import annotations

import torch

from kdlib.losses import kd_loss, reverse_kl
from kdlib.lm.sampling import sample
from kdlib.lm.tokens import lm_logits, next_token_view, response_mask

__all__ = ["golden_token_kl", "proxy_token_kl", "sequence_logprob", "precision_rkl",
           "coverage_fkl", "agreement", "distinct_n", "heldout_nll"]


def _batched(fn, tokens, batch_size=512):
    return torch.cat([fn(tokens[i:i + batch_size]) for i in range(0, len(tokens), batch_size)])


@torch.no_grad()
def model_logprobs(model, tokens, n_vocab, batch_size=512):
    """log q(x_{t+1} = v | x_{<=t}) of a model over the content vocabulary: (N, T, n_vocab) on its device."""
    return _batched(lambda t: lm_logits(model, t, n_vocab).log_softmax(-1), tokens, batch_size)


def _token_kl(log_p, log_q, tokens, mask, direction):
    logp, _, m = next_token_view(log_p, tokens, mask)
    logq, _, _ = next_token_view(log_q, tokens, mask)
    if direction == "forward":  # KL(p || q): log-probs are valid logits at temperature 1
        return float(kd_loss(logq, logp, 1.0, mask=m))
    if direction == "reverse":  # KL(q || p)
        return float(reverse_kl(logq, logp, mask=m))
    raise ValueError(f"direction must be 'forward' or 'reverse', got {direction!r}")


@torch.no_grad()
def golden_token_kl(oracle, model, tokens, mask=None, direction="forward"):
    """Exact mean token-level KL(oracle || model) ('forward') or KL(model || oracle) ('reverse').

    tokens: (N, T) prefixes from anyone; mask: (N, T) bool of the target tokens
    (default: all content tokens). Nats per token.
    """
    tokens = tokens.cpu()
    mask = _content_mask(tokens) if mask is None else mask.cpu()
    log_o = oracle.next_token_logprobs(tokens)
    return _token_kl(log_o, model_logprobs(model, tokens, oracle.n_vocab).to(log_o.device), tokens, mask, direction)


@torch.no_grad()
def proxy_token_kl(teacher, model, tokens, n_vocab, mask=None, direction="forward"):
    """Mean token-level KL(teacher || model) (or reverse) on any prefixes: the proxy metric."""
    tokens = tokens.cpu()
    mask = _content_mask(tokens) if mask is None else mask.cpu()
    log_t = model_logprobs(teacher, tokens, n_vocab)
    return _token_kl(log_t, model_logprobs(model, tokens, n_vocab), tokens, mask, direction)


def _content_mask(tokens):
    mask = torch.ones_like(tokens, dtype=torch.bool)
    mask[:, 0] = False
    return mask


@torch.no_grad()
def sequence_logprob(model, tokens, prompt_len, n_vocab):
    """log q(tokens[:, prompt_len:] | tokens[:, :prompt_len]) per sequence: (N,)."""
    return _sequence_logprob_from(model_logprobs(model, tokens, n_vocab), tokens, prompt_len)


def _sequence_logprob_from(logq, tokens, prompt_len):
    """`sequence_logprob` from a model's log-probs (N, T, V) on tokens (N, T)."""
    logq, targets, m = next_token_view(logq, tokens, response_mask(tokens, prompt_len))
    return (logq.gather(-1, targets[..., None]).squeeze(-1) * m).sum(-1)


@torch.no_grad()
def heldout_nll(model, tokens, n_vocab, mask=None):
    """Mean next-token negative log-likelihood (nats per token) on fixed text: real-text 'golden'."""
    tokens = tokens.cpu()
    mask = _content_mask(tokens) if mask is None else mask.cpu()
    logq, targets, m = next_token_view(model_logprobs(model, tokens, n_vocab), tokens, mask)
    nll = -logq.gather(-1, targets[..., None]).squeeze(-1)
    return float((nll * m).sum() / m.sum())


@torch.no_grad()
def precision_rkl(oracle, model, prompts, n_new, generator=None):
    """Sequence-level RKL(model || oracle) per response token, on the model's own samples.

    prompts: (N, P). The model samples n_new tokens at sample_temperature 1 over
    the content vocabulary; log q is the model's and log p the oracle's, exact.
    Returns (nats per token, the sampled sequences).
    """
    seqs = sample(model, prompts, n_new, n_vocab=oracle.n_vocab, generator=generator).cpu()
    p = prompts.shape[1]
    log_q = sequence_logprob(model, seqs, p, oracle.n_vocab).cpu()
    log_p = oracle.sequence_logprob(seqs, start=p).cpu()
    return float((log_q - log_p).mean() / n_new), seqs


@torch.no_grad()
def coverage_fkl(oracle, model, tokens, prompt_len):
    """Sequence-level FKL(oracle || model) per response token, on oracle samples (N, T)."""
    tokens = tokens.cpu()
    log_p = oracle.sequence_logprob(tokens, start=prompt_len).cpu()
    log_q = sequence_logprob(model, tokens, prompt_len, oracle.n_vocab).cpu()
    return float((log_p - log_q).mean() / (tokens.shape[1] - prompt_len))


@torch.no_grad()
def agreement(teacher, student, tokens, n_vocab, mask=None):
    """Fraction of target positions where teacher and student have the same top-1 token."""
    tokens = tokens.cpu()
    mask = _content_mask(tokens) if mask is None else mask.cpu()
    t, _, m = next_token_view(model_logprobs(teacher, tokens, n_vocab), tokens, mask)
    s, _, _ = next_token_view(model_logprobs(student, tokens, n_vocab), tokens, mask)
    same = (t.argmax(-1) == s.argmax(-1)).float()
    return float((same * m).sum() / m.sum())


def distinct_n(tokens, n=2):
    """Distinct-n: unique n-grams / all n-grams over the rows of tokens (N, T) (Li et al. 2016)."""
    grams = tokens.unfold(1, n, 1).reshape(-1, n)
    return len(set(map(tuple, grams.tolist()))) / max(1, len(grams))
