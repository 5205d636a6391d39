"""Token-level LM distillation methods, and where their training sequences come from.

Every method receives a batch of oracle sequences ``{"tokens": (B, T), "mask": (B, T)}``
(the "dataset" D of prompts x and ground-truth responses y) and decides which
prefixes to train on:

    SFT          hard labels on the dataset's sequences            (no teacher)
    TokenKD      D(p_T || q_S) on the dataset's sequences          supervised KD; MiniLLM's
                 with D one of fkl, rkl, jsd, tvd, skew_fkl,        single-step RKL; GKD's JSD;
                 skew_rkl                                           DistiLLM's skew KL
    SeqKD        hard labels on teacher samples y ~ p_T(.|x)        Kim & Rush 2016
    GKD          per prompt: a student sample y ~ q_S(.|x) with     Agarwal et al. 2024, Eq. 4
                 probability lam, else the dataset's y; then D      (lam=1: on-policy KD)
    ImitKD       GKD with lam rising linearly 0 -> 1 over training  Lin et al. 2020

No gradient flows through sampling. ``prefixes(student, teacher, batch)``
returns the sequences a method trains on, so a notebook can measure the
teacher's quality exactly there (SKD's argument). The rest -- the student's and
the teacher's logits on them, aligned with the tokens they predict, the
teacher's from the cache when it has them -- is ``kdlib.lm.base.TokenMethod``'s
one forward; each method here is its prefixes and a loss of aligned logits.
"""

from __future__ import annotations

import torch

from kdlib.losses import generalized_jsd, kd_loss, reverse_kl, skew_forward_kl, skew_reverse_kl, tvd
from kdlib.lm.base import TokenMethod
from kdlib.lm.sampling import sample
from kdlib.lm.tokens import response_mask, token_cross_entropy

__all__ = ["DIVERGENCES", "divergence", "SFT", "TokenKD", "SeqKD", "GKD", "ImitKD"]

DIVERGENCES = ("fkl", "rkl", "jsd", "tvd", "skew_fkl", "skew_rkl")


def divergence(name, student_logits, teacher_logits, mask, beta=0.5, alpha=0.1):
    """D(p_T || q_S) by name, on aligned (N, T, V) logits with a (N, T) mask, at temperature 1.

    One convention for the whole book (kdlib.losses): beta is GKD's, with
    jsd(beta=0) = fkl and jsd(beta=1) = rkl; alpha is DistiLLM's skew, with
    skew_fkl = KL(p_T || alpha p_T + (1 - alpha) q_S) and skew_rkl =
    KL(q_S || (1 - alpha) p_T + alpha q_S), both tending to fkl / rkl as alpha -> 0.
    mask None: every position counts (the losses reduce over (N, T) only under a mask).
    """
    if mask is None:
        mask = torch.ones(student_logits.shape[:-1], dtype=torch.bool, device=student_logits.device)
    if name == "fkl":
        return kd_loss(student_logits, teacher_logits, 1.0, mask=mask)
    if name == "rkl":
        return reverse_kl(student_logits, teacher_logits, mask=mask)
    if name == "jsd":
        return generalized_jsd(student_logits, teacher_logits, beta=beta, mask=mask)
    if name == "tvd":
        return tvd(student_logits, teacher_logits, mask=mask)
    if name == "skew_fkl":
        return skew_forward_kl(student_logits, teacher_logits, alpha=alpha, mask=mask)
    if name == "skew_rkl":
        return skew_reverse_kl(student_logits, teacher_logits, alpha=alpha, mask=mask)
    raise ValueError(f"unknown divergence {name!r}; use one of {DIVERGENCES}")


class SFT(TokenMethod):
    """Next-token cross-entropy on the dataset's sequences: training on hard samples."""

    needs_teacher_logits = False

    def __init__(self, n_vocab):
        super().__init__()
        self.n_vocab = n_vocab

    def terms_from_token_logits(self, student_logits, teacher_logits, target_tokens, mask):
        return {"ce": token_cross_entropy(student_logits, target_tokens, mask)}


class TokenKD(TokenMethod):
    """Token-level distillation on the dataset's sequences (supervised KD), any divergence.

    record_grad_norm: keep the student's gradient norm of every step in
    ``self.grad_norms`` (the stability measurement of the divergences chapter).
    """

    def __init__(self, n_vocab, divergence="fkl", beta=0.5, alpha=0.1, record_grad_norm=False):
        super().__init__()
        if divergence not in DIVERGENCES:
            raise ValueError(f"unknown divergence {divergence!r}; use one of {DIVERGENCES}")
        self.n_vocab, self.divergence, self.beta, self.alpha = n_vocab, divergence, beta, alpha
        self.record_grad_norm, self.grad_norms, self._params = record_grad_norm, [], []

    def forward(self, student, teacher, batch):
        self._params = list(student.parameters())  # a plain list: not a submodule
        return super().forward(student, teacher, batch)

    def terms_from_token_logits(self, student_logits, teacher_logits, target_tokens, mask):
        return {self.divergence: divergence(self.divergence, student_logits, teacher_logits, mask,
                                            self.beta, self.alpha)}

    def backward(self, loss, terms):
        loss.backward()
        if self.record_grad_norm:
            grads = [p.grad.norm() for p in self._params if p.grad is not None]
            self.grad_norms.append(float(torch.stack(grads).norm()))


class SeqKD(TokenMethod):
    """Sequence-level KD (Kim & Rush 2016): hard labels on the teacher's samples y ~ p_T(.|x)."""

    needs_teacher_logits = False  # the teacher samples the sequences; its logits are not needed

    def __init__(self, n_vocab, prompt_len, sample_temperature=1.0):  # Kim & Rush: beam; here: sampling
        super().__init__()
        self.n_vocab, self.prompt_len, self.sample_temperature = n_vocab, prompt_len, sample_temperature

    def prefixes(self, student, teacher, batch):
        tokens = batch["tokens"]
        n_new = tokens.shape[1] - self.prompt_len
        teacher_tokens = sample(teacher, tokens[:, :self.prompt_len], n_new, n_vocab=self.n_vocab,
                                sample_temperature=self.sample_temperature, generator=batch.get("generator"))
        return teacher_tokens, response_mask(teacher_tokens, self.prompt_len)

    def terms_from_token_logits(self, student_logits, teacher_logits, target_tokens, mask):
        return {"ce": token_cross_entropy(student_logits, target_tokens, mask)}


class GKD(TokenMethod):
    """Generalized KD (Agarwal et al. 2024, Eq. 4): on-policy with probability lam per prompt.

    lam=0 is supervised KD on the dataset's responses, lam=1 is on-policy KD,
    lam=0.5 is SKD's ``mixed`` baseline. The loss is ``divergence`` on the
    response tokens only (TRL's defaults: lam=0.5, jsd with beta=0.5).
    lam_ramp_steps: if set, lam rises linearly from 0 to ``lam`` over that many
    steps (ImitKD's schedule).
    """

    def __init__(self, n_vocab, prompt_len, lam=0.5, divergence="fkl", beta=0.5, alpha=0.1,
                 sample_temperature=1.0, lam_ramp_steps=None):
        super().__init__()
        self.n_vocab, self.prompt_len, self.lam = n_vocab, prompt_len, lam
        self.divergence, self.beta, self.alpha = divergence, beta, alpha
        self.sample_temperature, self.lam_ramp_steps = sample_temperature, lam_ramp_steps

    def current_lam(self):
        if self.lam_ramp_steps is None:
            return self.lam
        return self.lam * min(1.0, self.step / max(1, self.lam_ramp_steps - 1))

    def _draw(self, student, batch):
        """(tokens, on_policy): the batch with each on-policy row replaced by a student sample."""
        tokens, generator = batch["tokens"], batch.get("generator")
        on_policy = (torch.rand(len(tokens), generator=generator) < self.current_lam()).to(tokens.device)  # (B,)
        if on_policy.any():
            n_new = tokens.shape[1] - self.prompt_len
            student_tokens = sample(student, tokens[on_policy, :self.prompt_len], n_new,
                                    n_vocab=self.n_vocab, sample_temperature=self.sample_temperature,
                                    generator=generator)
            tokens = tokens.clone()
            tokens[on_policy] = student_tokens.to(tokens.device)
        return tokens, on_policy

    def prefixes(self, student, teacher, batch):
        tokens, _ = self._draw(student, batch)
        return tokens, response_mask(tokens, self.prompt_len)

    def terms_from_token_logits(self, student_logits, teacher_logits, target_tokens, mask):
        # the dataset's rows keep SeedBatches' cached teacher logits; the student's samples get fresh ones
        return {self.divergence: divergence(self.divergence, student_logits, teacher_logits, mask,
                                            self.beta, self.alpha)}


def ImitKD(n_vocab, prompt_len, total_steps, divergence="fkl", sample_temperature=1.0):
    """ImitKD (Lin et al. 2020): the dataset's prefix with probability beta_i = 1 - i / total_steps,
    else a student sample -- GKD with lam rising linearly from 0 to 1 (SKD's baseline)."""
    return GKD(n_vocab, prompt_len, lam=1.0, divergence=divergence,
               sample_temperature=sample_temperature, lam_ramp_steps=total_steps)
