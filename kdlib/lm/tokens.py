"""The one place where a causal LM's logits are aligned with the tokens they predict.

A causal LM run on tokens (N, T) returns logits (N, T, V) whose row t predicts
token t+1. Every LM loss and metric in kdlib goes through ``next_token_view``,
so the shift ``logits[:, :-1]`` against ``tokens[:, 1:]`` is written once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["next_token_view", "lm_logits", "response_mask", "check_length", "token_cross_entropy", "sft_loss"]


def next_token_view(logits, tokens, mask=None):
    """Align logits with the tokens they predict.

    logits: (N, T, V), row t predicting token t+1 (a model's output, or an
    oracle's ``next_token_logprobs``); tokens: (N, T) long; mask: None or
    (N, T) bool marking the tokens that are *targets* (e.g. the response).
    Returns (logits[:, :-1], tokens[:, 1:], mask[:, 1:]) -- shapes (N, T-1, V),
    (N, T-1), (N, T-1) -- with an all-true mask when none is given.
    """
    if mask is None:
        mask = torch.ones_like(tokens, dtype=torch.bool)
    return logits[:, :-1], tokens[:, 1:].to(logits.device), mask[:, 1:].bool().to(logits.device)


def lm_logits(model, tokens, n_vocab=None):
    """A causal LM's logits on tokens (N, T) as float32 (N, T, n_vocab).

    n_vocab keeps only the first n_vocab outputs: the oracle's content tokens.
    Special tokens (domain tags, BOS) are inputs only, so their output logits
    are never used -- not in losses, metrics or sampling. Tokens are moved to
    the model's device; the logits stay there.
    """
    check_length(model, tokens.shape[1])
    logits = model(tokens.to(next(model.parameters()).device)).logits
    return (logits if n_vocab is None else logits[..., :n_vocab]).float()


def response_mask(tokens, prompt_len):
    """(N, T) bool, true on the response tokens (positions >= prompt_len)."""
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[:, prompt_len:] = True
    return mask


def check_length(model, length):
    """A one-line error if a model built with fewer positions would be fed ``length`` tokens.

    (GPT-2 would otherwise fail with an index error deep in its embedding, or a
    device-side assert on a GPU.)
    """
    config = getattr(model, "config", None)
    positions = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    if positions is not None and length > positions:
        raise ValueError(f"sequence of {length} tokens for a model with n_positions={positions}: "
                         f"build it with kdlib.lm.models.build_lm(..., max_len={length})")


def token_cross_entropy(logits, target_tokens, mask):
    """Next-token cross-entropy of aligned logits (N, T, V) on (N, T) targets, mean over the mask's tokens."""
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target_tokens.reshape(-1), reduction="none")
    mask = mask.reshape(-1).float()
    return (nll * mask).sum() / mask.sum().clamp_min(1.0)


def sft_loss(model, tokens, mask, n_vocab):
    """Next-token cross-entropy on the masked target tokens (mean over them)."""
    return token_cross_entropy(*next_token_view(lm_logits(model, tokens, n_vocab), tokens, mask))
