"""Generalization vs fidelity over a grid of teachers and students (Ramesh, Sengupta & Chakraborty 2025).

The paper (ACL Findings 2025, arXiv 2505.15442) is an empirical study, not a new loss: students of
several sizes are distilled from teachers of several sizes, and the student's *accuracy gain* over
its own baseline is set against its *fidelity*, its agreement with the teacher. Here, in the exact
oracle world of Part V:

    golden accuracy   top-1 of the student == argmax of the oracle's next-token distribution,
                      over the content positions of fixed oracle sequences (percent)
    gain              golden accuracy of the distilled student - that of its baseline: the same
                      architecture, seed, batches and number of updates, trained by SFT on the
                      oracle's text (percentage points)
    agreement         top-1 of the distilled student == top-1 of its teacher (percent;
                      ``kdlib.lm.metrics.agreement``)

and, per seed, the Spearman rank correlation of gain and agreement over the grid's cells.
Plain functions: the notebook loops over seeds; each seed runs ``run_grid``.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from kdlib.lm.cache import SeedBatches
from kdlib.lm.methods import SFT, TokenKD
from kdlib.lm.models import build_lm, oracle_stream
from kdlib.lm.tokens import next_token_view
from kdlib.train import train

__all__ = ["top1_accuracy", "spearman", "train_student", "run_grid", "cell_frame", "grid_correlations",
           "student_gains"]


@torch.no_grad()
def top1_accuracy(reference_logprobs, model_logprobs, tokens, mask):
    """Fraction of target positions where the model's top-1 next token is the reference's top-1.

    reference_logprobs, model_logprobs: (N, T, V) next-token log-probs on tokens (N, T), as
    ``oracle.next_token_logprobs`` / ``metrics.model_logprobs`` return them (position t predicts
    t + 1; ``next_token_view`` does the shift). mask: (N, T) bool of the target tokens. With the
    oracle as reference this is the golden accuracy; with a teacher it is ``metrics.agreement``.
    Ties in the reference's argmax go to the lowest token id (torch's argmax).
    """
    if reference_logprobs.shape != model_logprobs.shape:
        raise ValueError(f"top1_accuracy: reference_logprobs {tuple(reference_logprobs.shape)} and "
                         f"model_logprobs {tuple(model_logprobs.shape)} differ")
    tokens, mask = tokens.cpu(), mask.cpu()
    ref, _, m = next_token_view(reference_logprobs.cpu(), tokens, mask)
    mod, _, _ = next_token_view(model_logprobs.cpu(), tokens, mask)
    same = (ref.argmax(-1) == mod.argmax(-1)).float()
    return float((same * m).sum() / m.sum())


def spearman(x, y):
    """Spearman's rank correlation of two equal-length sequences (``scipy.stats.spearmanr``)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError(f"spearman: need two 1-D sequences of the same length >= 3, got {x.shape} and {y.shape}")
    return float(spearmanr(x, y).statistic)


def train_student(arch, method, stream, teacher, *, vocab_size, max_len, steps, lr, seed, device="cpu"):
    """A student of ``arch`` (seeded init), trained by ``method`` on ``stream`` through ``kdlib.train``.

    Returns (model, seconds). AdamW with cosine decay, as every Part V student.
    """
    student = build_lm(vocab_size=vocab_size, seed=seed, max_len=max_len, **arch).to(device)
    t0 = time.perf_counter()
    train(student, method, stream, teacher=teacher, steps=steps, lr=lr, optimizer="adamw",
          lr_schedule="cosine", seed=seed, progress=False)
    return student, time.perf_counter() - t0


def run_grid(oracle, ev, teachers, students, seed, *, steps, batch_size, seq_len, lr, device="cpu"):
    """One seed of the grid: per student its SFT baseline, per (teacher, student) its forward-KL student.

    ev: a ``kdlib.lm.cache.EvalSet`` of fixed oracle sequences (accuracy and agreement are measured
    on its content positions). teachers: {name: frozen LM}; students: {name: arch dict for
    ``build_lm``}. Every student of the seed starts from the same init (per architecture) and sees
    the same batches (``SeedBatches`` with one data seed), for ``steps`` updates: equal updates and
    equal data, only the targets differ. Returns rows: one per (teacher, student, method), method
    "sft" (teacher "none") or "kd", with golden accuracy and agreement in percent.
    """
    n = oracle.n_vocab
    data_seed = 40_000 + seed
    mask = ev.content_mask
    oracle_lp = ev.oracle_logprobs
    teacher_lp = {name: ev.teacher_logprobs(t) for name, t in teachers.items()}
    common = dict(vocab_size=oracle.vocab_size, max_len=seq_len + 1, steps=steps, lr=lr, seed=seed, device=device)
    rows = []

    def measure(model):
        lp = ev.logprobs(model)
        out = {"golden_acc": 100 * top1_accuracy(oracle_lp, lp, ev.tokens, mask),
               "golden_fkl": ev.golden_token_kl(lp)}
        for t_name, t_lp in teacher_lp.items():
            out[f"agreement_{t_name}"] = 100 * ev.agreement(t_lp, lp)
        return out

    for s_name, arch in students.items():
        stream = SeedBatches(oracle_stream(oracle, batch_size, seq_len), seed=data_seed)
        model, sec = train_student(arch, SFT(n), stream, None, **common)
        base = measure(model)
        for t_name in teachers:
            rows.append({"seed": seed, "level": "model", "teacher": t_name, "student": s_name, "method": "sft",
                         **base, "agreement": base[f"agreement_{t_name}"], "train_seconds": sec})
    for t_name, teacher in teachers.items():
        # the same batches again, now with this teacher's logits computed once for all students
        stream = SeedBatches(oracle_stream(oracle, batch_size, seq_len), seed=data_seed, teacher=teacher, n_vocab=n)
        for s_name, arch in students.items():
            model, sec = train_student(arch, TokenKD(n, "fkl"), stream, teacher, **common)
            m = measure(model)
            rows.append({"seed": seed, "level": "model", "teacher": t_name, "student": s_name, "method": "kd",
                         **m, "agreement": m[f"agreement_{t_name}"], "train_seconds": sec})
    return rows


def cell_frame(model_rows):
    """Per (seed, teacher, student) cell: the KD student's metrics and its gains over the SFT baseline.

    gain: golden accuracy, KD - SFT (points); agreement: the KD student's agreement with its
    teacher (percent); agreement_gain: KD - SFT agreement with that teacher; fkl_gain: golden
    token KL, SFT - KD (nats; positive = KD better).
    """
    import pandas as pd

    df = pd.DataFrame(model_rows)
    keys = ["seed", "teacher", "student"]
    kd = df[df.method == "kd"].set_index(keys)
    sft = df[df.method == "sft"].set_index(keys).reindex(kd.index)
    cells = pd.DataFrame({"golden_acc_kd": kd.golden_acc, "golden_acc_sft": sft.golden_acc,
                          "gain": kd.golden_acc - sft.golden_acc, "agreement": kd.agreement,
                          "agreement_gain": kd.agreement - sft.agreement,
                          "fkl_gain": sft.golden_fkl - kd.golden_fkl}).reset_index()
    cells["level"] = "cell"
    return cells


def grid_correlations(cells, x="gain", y="agreement"):
    """Per seed, Spearman's rho of columns x and y over that seed's grid cells: rows {seed, level, rho}."""
    return [{"seed": int(seed), "level": "grid", "rho": spearman(g[x], g[y]), "n_cells": len(g)}
            for seed, g in cells.groupby("seed")]


def student_gains(cells):
    """Per (seed, student): the gain averaged over the teachers: rows {seed, level, student, gain}."""
    g = cells.groupby(["seed", "student"], sort=False)["gain"].mean().reset_index()
    return [{"seed": int(r.seed), "level": "student", "student": r.student, "gain": float(r.gain)}
            for r in g.itertuples()]

