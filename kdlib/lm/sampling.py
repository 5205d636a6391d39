"""A KV-cached sampler for the tiny causal LMs (sample temperature, top-k, top-p).

Generation feeds the prompt once and then one token per step, reusing the
keys/values of the past (``past_key_values``): cost O(T) per sequence instead
of O(T^2) for re-running the whole prefix. ``use_cache=False`` re-runs the
prefix every step; it exists to test that both give the same tokens.

Randomness: one uniform per sequence per step from ``generator``, turned into a
token by inverting the CDF, so a cached and an uncached run at the same seed
draw the same numbers. All uniforms are drawn before the loop (the same numbers,
in the same order, as one draw per step) and moved to the model's device once:
the loop never waits on the host, and a CPU and a GPU run draw the same numbers.
"""

from __future__ import annotations

import torch

from kdlib.lm.tokens import check_length

__all__ = ["filter_logits", "sample"]


def filter_logits(logits, sample_temperature=1.0, top_k=None, top_p=None):
    """Temperature, then top-k, then nucleus (top-p) filtering of (N, V) logits.

    Removed tokens get -inf. top_p keeps the smallest set of most likely tokens
    whose probability reaches top_p (the top token is always kept).
    """
    logits = logits.float() / sample_temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop_sorted = cumulative - sorted_logits.softmax(-1) >= top_p  # mass before this token
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _draw(logits, u):
    """One token per row by inverse CDF: (N, V) logits and uniforms u (N, 1) -> (N,) long."""
    cdf = logits.softmax(-1).cumsum(-1)
    return torch.searchsorted(cdf, u * cdf[:, -1:]).clamp_max(logits.shape[-1] - 1).squeeze(-1)


@torch.no_grad()
def sample(model, prompt, max_new_tokens, *, n_vocab=None, sample_temperature=1.0, top_k=None,
           top_p=None, generator=None, use_cache=True):
    """Continue each prompt by ``max_new_tokens`` sampled tokens.

    model: a causal LM (``model(ids).logits``); prompt: (N, P) long, all of the
    same length (no padding); n_vocab: sample only among the first n_vocab
    tokens (the oracle's content tokens). Returns (N, P + max_new_tokens) long.
    The model's train/eval mode is left as it was (the LMs have no dropout).
    """
    device = next(model.parameters()).device
    check_length(model, prompt.shape[1] + max_new_tokens)
    tokens = prompt.to(device)
    uniforms = torch.rand(max_new_tokens, len(prompt), 1, generator=generator).to(device)
    past, step_input = None, tokens
    for step in range(max_new_tokens):
        if use_cache:
            out = model(step_input, past_key_values=past, use_cache=True)
            past = out.past_key_values
        else:
            out = model(tokens, use_cache=False)
        logits = out.logits[:, -1]
        if n_vocab is not None:
            logits = logits[:, :n_vocab]
        logits = filter_logits(logits, sample_temperature, top_k, top_p)
        step_input = _draw(logits, uniforms[step])[:, None]
        tokens = torch.cat([tokens, step_input], dim=1)
    return tokens
