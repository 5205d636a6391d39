"""Teacher hacking (Tiapkin et al., ICML 2025): data sources, a golden/proxy tracker, the statistic.

The paper distils a student from a teacher that is itself an imperfect copy of an oracle, and
watches two distances over training: the *proxy* dist(teacher, student), which the loss
minimises, and the *golden* dist(oracle, student), which is what one wants. Teacher hacking is
the proxy still falling while the golden distance turns up. Here both are exact token-level
KLs (``kdlib.lm.metrics``), because the oracle is a hidden-Markov mixture.

Data sources (the paper's Sec. on data sources; our reading):

    offline   a fixed pool of N prompts with k teacher completions each, generated once and
              replayed epoch after epoch (``OfflineData``)
    online    a fresh prompt and a fresh teacher completion for every row of every step: a
              pool of steps x batch_size rows, generated once and read once (``OnlineData``)

Both pools are built by ``teacher_pool`` in one batched generation, with the teacher's logits
on them, so training never runs the teacher. ``Tracker`` evaluates golden and proxy every few
steps from inside the data stream (``kdlib.train`` asks for step s's batch after s updates),
so the one training loop is used unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

from kdlib.lm.metrics import golden_token_kl, proxy_token_kl
from kdlib.lm.sampling import sample
from kdlib.lm.tokens import lm_logits, response_mask

__all__ = ["teacher_pool", "oracle_pool", "OfflineData", "OnlineData", "Tracker", "hacking_gap", "proxy_drop_after_min",
           "late_change"]


@torch.no_grad()
def teacher_pool(oracle, teacher, n_prompts, k, prompt_len, response_len, seed, chunk=2048):
    """N oracle prompts, k teacher completions each, and the teacher's logits on them (generated once).

    prompt_len: oracle tokens after the domain tag (the prompt is ``[tag, prompt]``);
    seed: the pool's own generator (prompts, then completions). Returns a dict with
    tokens (N*k, 1+prompt_len+response_len) long on the CPU, the k completions of a prompt in
    consecutive rows; mask (response tokens); teacher_logits (N*k, T, V) float32 on the CPU;
    prompt_id (N*k,) the index of each row's prompt.
    """
    if n_prompts < 1 or k < 1:
        raise ValueError(f"teacher_pool: n_prompts and k must be >= 1, got {n_prompts}, {k}")
    generator = torch.Generator().manual_seed(int(seed))
    prompts = oracle.sample(n_prompts, prompt_len, generator=generator).cpu().repeat_interleave(k, 0)
    tokens, logits = [], []
    for i in range(0, len(prompts), chunk):  # chunks bound the memory of the KV cache
        seq = sample(teacher, prompts[i:i + chunk], response_len, n_vocab=oracle.n_vocab,
                     generator=generator).cpu()
        tokens.append(seq)
        logits.append(lm_logits(teacher, seq, oracle.n_vocab).cpu())
    tokens = torch.cat(tokens)
    return {"tokens": tokens, "mask": response_mask(tokens, 1 + prompt_len),
            "teacher_logits": torch.cat(logits), "prompt_id": torch.arange(n_prompts).repeat_interleave(k)}


@torch.no_grad()
def oracle_pool(oracle, n_prompts, prompt_len, response_len, seed):
    """The control's pool: the oracle itself as the teacher (one oracle completion per prompt).

    Same layout as ``teacher_pool`` with k = 1: oracle sequences of prompt_len + response_len
    tokens (a prompt and its oracle completion, drawn together), and as "teacher logits" the
    oracle's exact next-token log-probs on them. Distilling from it, any rise of the golden
    KL is ordinary overfitting of the fixed pool, not teacher hacking.
    """
    if n_prompts < 1:
        raise ValueError(f"oracle_pool: n_prompts must be >= 1, got {n_prompts}")
    tokens = oracle.sample(n_prompts, prompt_len + response_len,
                           generator=torch.Generator().manual_seed(int(seed))).cpu()
    return {"tokens": tokens, "mask": response_mask(tokens, 1 + prompt_len),
            "teacher_logits": oracle.next_token_logprobs(tokens).float().cpu(),
            "prompt_id": torch.arange(n_prompts)}


class OfflineData:
    """A ``data(step, generator)`` stream over a fixed pool, epoch after epoch.

    Each epoch is a permutation of the pool drawn from ``(seed, epoch)`` alone, so the stream
    is the same for every method and every rerun of a seed and never touches the loop's
    generator. Batches run across epoch boundaries (no partial batches).
    """

    def __init__(self, pool, batch_size, seed):
        if batch_size < 1:
            raise ValueError(f"OfflineData: batch_size must be >= 1, got {batch_size}")
        self.pool, self.batch_size, self.seed = pool, int(batch_size), int(seed)
        self.size = len(pool["tokens"])
        self._perms = {}

    def _perm(self, epoch):
        if epoch not in self._perms:
            self._perms[epoch] = torch.randperm(self.size, generator=torch.Generator().manual_seed(
                self.seed * 100_003 + epoch))
        return self._perms[epoch]

    def indices(self, step):
        """The pool rows of a step: positions step*B ... step*B+B-1 of the concatenated epochs."""
        pos = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
        return torch.cat([self._perm(int(p // self.size))[int(p % self.size)].view(1) for p in pos])

    def __call__(self, step, generator=None):
        idx = self.indices(step)
        return {"tokens": self.pool["tokens"][idx], "mask": self.pool["mask"][idx],
                "teacher_logits": self.pool["teacher_logits"][idx], "generator": generator}


class OnlineData:
    """Fresh prompts and completions at every step: row block ``step`` of a pool of steps*B rows."""

    def __init__(self, pool, batch_size):
        self.pool, self.batch_size = pool, int(batch_size)
        self.steps = len(pool["tokens"]) // self.batch_size

    def __call__(self, step, generator=None):
        if step >= self.steps:
            raise ValueError(f"OnlineData: step {step} asked for, but the pool holds {self.steps} steps "
                             f"of {self.batch_size}; build it with n_prompts >= steps * batch_size")
        sl = slice(step * self.batch_size, (step + 1) * self.batch_size)
        return {"tokens": self.pool["tokens"][sl], "mask": self.pool["mask"][sl],
                "teacher_logits": self.pool["teacher_logits"][sl], "generator": generator}


class Tracker:
    """Golden KL(oracle || student) and proxy KL(teacher || student) every ``every`` steps.

    sets: name -> (tokens, mask) of fixed evaluation prefixes (held-out prompts with teacher
    completions, a slice of the training pool, ...). teacher None (the oracle-as-teacher
    control): the proxy is the golden KL itself, and only ``<set>_golden`` is recorded. ``wrap(data, student)`` returns a stream
    that, before serving step s (after s updates), records the metrics when s % every == 0;
    call ``finish(student, steps)`` after training for the last point. ``rows`` is a list of
    ``{"step", "<set>_golden", "<set>_proxy", ...}``.
    """

    def __init__(self, oracle, teacher, sets, every):
        if every < 1:
            raise ValueError(f"Tracker: every must be >= 1, got {every}")
        self.oracle, self.teacher, self.sets, self.every = oracle, teacher, sets, int(every)
        self.rows = []

    def record(self, student, step):
        row = {"step": int(step)}
        for name, (tokens, mask) in self.sets.items():
            row[f"{name}_golden"] = golden_token_kl(self.oracle, student, tokens, mask)
            if self.teacher is not None:
                row[f"{name}_proxy"] = proxy_token_kl(self.teacher, student, tokens, self.oracle.n_vocab, mask)
        self.rows.append(row)
        return row

    def wrap(self, data, student):
        def tracked(step, generator):
            if step % self.every == 0:
                self.record(student, step)
            return data(step, generator)
        return tracked

    def finish(self, student, steps):
        if not self.rows or self.rows[-1]["step"] != steps:
            self.record(student, steps)
        return self.rows


def hacking_gap(golden_curve):
    """end - min of a golden-distance curve over training: > 0 when it turned up after its minimum."""
    curve = np.asarray(golden_curve, dtype=float)
    if curve.ndim != 1 or len(curve) == 0:
        raise ValueError("hacking_gap: golden_curve must be a non-empty 1-D sequence")
    return float(curve[-1] - curve.min())


def proxy_drop_after_min(golden_curve, proxy_curve):
    """proxy at the golden curve's minimum - proxy at the end: > 0 when the proxy kept falling after it."""
    golden, proxy = np.asarray(golden_curve, dtype=float), np.asarray(proxy_curve, dtype=float)
    if golden.shape != proxy.shape or golden.ndim != 1 or len(golden) == 0:
        raise ValueError("proxy_drop_after_min: the two curves must be non-empty, 1-D and of equal length")
    return float(proxy[int(golden.argmin())] - proxy[-1])


def late_change(curve, steps, from_step):
    """curve at the end - curve at ``from_step``: the change over a fixed late window of training.

    curve, steps: equal-length 1-D sequences (a Tracker curve and its steps); from_step must be one of
    the recorded steps. > 0 when the curve rose over the window (a golden rise), < 0 when it fell.
    """
    curve, steps = np.asarray(curve, dtype=float), np.asarray(steps)
    if curve.shape != steps.shape or curve.ndim != 1 or len(curve) == 0:
        raise ValueError("late_change: curve and steps must be non-empty, 1-D and of equal length")
    hit = np.flatnonzero(steps == from_step)
    if len(hit) != 1:
        raise ValueError(f"late_change: step {from_step} was not recorded once (steps: {steps.tolist()})")
    return float(curve[-1] - curve[hit[0]])
