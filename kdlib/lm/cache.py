"""Computed once, shared: a seed's training batches with the teacher's logits, and evaluation constants.

In an LM chapter every objective of a seed trains on the same batches (the pairing of the
protocol), and a frozen teacher's logits on a batch do not depend on the objective. Drawing the
batches and running the teacher once per seed, instead of once per objective, is exact: the
same numbers reach every objective (``SeedBatches(cache=False)`` recomputes them per call and is
the reference the tests and ``benchmarks/bench_lm.py`` compare with). The methods read the cache in
one place, ``kdlib.lm.base.TokenMethod.teacher_logits``: rows a method replaced by its own samples
(on-policy KD, GKD, ImitKD, SKD) go through the teacher there; SeqKD samples from the teacher itself.

``EvalSet`` does the same for evaluation: the oracle's exact log-probs on the fixed evaluation
sequences and each frozen teacher's log-probs on them are computed once, and each student's
log-probs once per evaluation, however many metrics read them.
"""

from __future__ import annotations

import weakref

import torch

from kdlib.lm.metrics import _content_mask, _sequence_logprob_from, _token_kl, model_logprobs
from kdlib.lm.tokens import lm_logits, next_token_view, response_mask

__all__ = ["SeedBatches", "EvalSet"]


class SeedBatches:
    """A seed's stream of training batches, drawn once and replayed to every objective.

    data: a ``data(step, generator)`` callable (``oracle_stream``, ``CharCorpus.stream``).
    seed: the seed of the stream's *own* generator. The batches never draw from the training
        loop's generator, so a method that samples (GKD, ImitKD) cannot shift the batches of
        later steps: every objective of the seed sees the same sequences.
    teacher: if given, its logits over the first ``n_vocab`` outputs on each batch's tokens
        (unshifted, as ``lm_logits`` returns them) are added as ``batch["teacher_logits"]``.
    cache: True keeps every batch (and its teacher logits) after its first use; False draws and
        runs the teacher again for every objective, step by step (same values, the reference).

    A batch is ``{"tokens", "mask", "generator", ["teacher_logits"]}``; "generator" is the
    training loop's (for methods that sample). Steps are served in order from 0 (as
    ``kdlib.train.train`` asks for them); a cached stream serves any step already drawn.
    Memory: steps x batch x length x n_vocab floats of teacher logits (80 MB at the cpu profile).
    """

    def __init__(self, data, seed, teacher=None, n_vocab=None, cache=True):
        if teacher is not None and n_vocab is None:
            raise ValueError("SeedBatches: n_vocab is required with a teacher")
        self.data, self.seed, self.teacher, self.n_vocab, self.cache = data, int(seed), teacher, n_vocab, cache
        self._batches: list[dict] = []
        self._generator, self._next = None, 0

    def _draw(self, step):
        if step == 0:
            self._generator, self._next = torch.Generator().manual_seed(self.seed), 0
        if step != self._next:
            raise ValueError(f"SeedBatches: step {step} asked for, but the stream is at step {self._next}; "
                             "steps are drawn in order from 0")
        batch = {k: v for k, v in self.data(step, self._generator).items() if k != "generator"}
        if self.teacher is not None:
            with torch.no_grad():
                batch["teacher_logits"] = lm_logits(self.teacher, batch["tokens"], self.n_vocab)
        self._next += 1
        return batch

    def __call__(self, step, generator):
        if self.cache and step < len(self._batches):
            batch = self._batches[step]
        else:
            batch = self._draw(step)
            if self.cache:
                self._batches.append(batch)
        return {**batch, "generator": generator}

    def __len__(self):
        return len(self._batches)


class EvalSet:
    """Fixed evaluation sequences and the constants every evaluation on them shares.

    tokens: (N, T) oracle sequences ``[tag, prompt, response]``; prompt_len: P, the tag included
    (the response is ``tokens[:, P:]``). Computed once: the oracle's exact next-token log-probs
    (the forward algorithm, the costliest part of a golden metric) and the oracle's log-likelihood
    of each response; each frozen teacher's log-probs once per teacher (``teacher_logprobs``).
    Every metric equals its ``kdlib.lm.metrics`` counterpart exactly (tested).
    """

    def __init__(self, oracle, tokens, prompt_len):
        self.oracle, self.tokens, self.prompt_len = oracle, tokens.cpu(), int(prompt_len)
        self.n_vocab = oracle.n_vocab
        self.oracle_logprobs = oracle.next_token_logprobs(self.tokens)  # (N, T, V) on the oracle's device
        # == oracle.sequence_logprob(tokens, start=P): the same slice, gather and sum
        tokens_o = self.tokens.to(self.oracle_logprobs.device)
        logp = self.oracle_logprobs[:, self.prompt_len - 1:-1]
        self.oracle_response_logprob = logp.gather(-1, tokens_o[:, self.prompt_len:, None]).squeeze(-1).sum(-1)
        self.content_mask = _content_mask(self.tokens)
        self.response_mask = response_mask(self.tokens, self.prompt_len)
        self._teachers = weakref.WeakKeyDictionary()

    def logprobs(self, model):
        """A model's log-probs over the content vocabulary on the evaluation tokens (N, T, V)."""
        return model_logprobs(model, self.tokens, self.n_vocab)

    def teacher_logprobs(self, teacher):
        """``logprobs`` of a frozen model, computed on its first use and kept while the model lives."""
        if teacher not in self._teachers:
            self._teachers[teacher] = self.logprobs(teacher)
        return self._teachers[teacher]

    def golden_token_kl(self, model_lp, mask=None, direction="forward"):
        """== ``metrics.golden_token_kl(oracle, model, tokens, mask, direction)`` from the model's log-probs."""
        mask = self.content_mask if mask is None else mask.cpu()
        return _token_kl(self.oracle_logprobs, model_lp.to(self.oracle_logprobs.device), self.tokens, mask, direction)

    def proxy_token_kl(self, teacher_lp, model_lp, mask=None, direction="forward"):
        """== ``metrics.proxy_token_kl(teacher, model, tokens, n_vocab, mask, direction)``."""
        mask = self.content_mask if mask is None else mask.cpu()
        return _token_kl(teacher_lp, model_lp, self.tokens, mask, direction)

    def coverage(self, model_lp):
        """== ``metrics.coverage_fkl(oracle, model, tokens, P)``: sequence-level FKL per response token."""
        log_q = _sequence_logprob_from(model_lp, self.tokens, self.prompt_len).cpu()
        log_p = self.oracle_response_logprob.cpu()
        return float((log_p - log_q).mean() / (self.tokens.shape[1] - self.prompt_len))

    def agreement(self, teacher_lp, model_lp, mask=None):
        """== ``metrics.agreement(teacher, model, tokens, n_vocab, mask)``: top-1 agreement."""
        mask = self.content_mask if mask is None else mask.cpu()
        t, _, m = next_token_view(teacher_lp, self.tokens, mask)
        s, _, _ = next_token_view(model_lp, self.tokens, mask)
        same = (t.argmax(-1) == s.argmax(-1)).float()
        return float((same * m).sum() / m.sum())
