"""Speculative KD (Xu et al., ICLR 2025): interleaved student/teacher sampling, then token-level KD.

The paper's rule, per token, which is what this module does (**per-token interleaving**):

    y_i = proposal ~ q_S(. | y_<i, x)      if proposal is in TopK(p_T(. | y_<i, x))
          ~ p_T(. | y_<i, x)               otherwise

so P(y_i = y) = q_S(y) 1[y in TopK] + (1 - q_S(TopK)) p_T(y).

The released sampler (google-research ``speculative_kd/transformers/utils.py``,
``_speculative_kd_sampling``) is assisted decoding: the student drafts a block of tokens, the
teacher scores them in one pass, and a rejected draft is re-drafted from the corrected prefix, so
the blocks alone would only be a speed trick. But it tests a *fresh* student draw against the
top-K and keeps the *drafted* token, so its law is q_S(TopK) q_S(y) + (1 - q_S(TopK)) p_T(y); and
its teacher is warped by the generation settings (temperature 0.2, top-p 0.5 in
``config/kd_train.yaml``). The book keeps the paper's rule (the chapter's Deviations).

Both models keep a KV cache (``past_key_values``, as ``kdlib.lm.sampling.sample`` does for one
model): per new token each model runs on one position.

Randomness (so that the limits are exact, not only in distribution): all student uniforms are
drawn first, as one (max_new_tokens, N, 1) tensor -- the very numbers ``sample`` draws from the
same generator -- then all teacher uniforms, one more such tensor. Each is turned into a token by
``sampling._draw`` (inverse CDF). Hence with top_k >= n_vocab every proposal is kept and the
tokens equal ``sample(student, ...)``; with top_k = 0 every proposal is replaced and the tokens
equal ``sample(teacher, ...)`` run on a generator that has first skipped the student's block.
"""

from __future__ import annotations

import torch

from kdlib.lm.base import TokenMethod
from kdlib.lm.methods import DIVERGENCES, divergence
from kdlib.lm.sampling import _draw, filter_logits
from kdlib.lm.tokens import check_length, response_mask

__all__ = ["in_top_k", "interleaved_sample", "SKD"]


def in_top_k(logits, tokens, top_k):
    """(N,) bool: is tokens[i] among the top_k of logits[i] ((N, V) logits, (N,) long)?

    Ties count as inside (a token whose logit equals the k-th largest is kept), as
    ``filter_logits``'s top-k keeps them. top_k = 0 keeps nothing; top_k >= V keeps everything.
    """
    if top_k <= 0:
        return torch.zeros(len(tokens), dtype=torch.bool, device=tokens.device)
    if top_k >= logits.shape[-1]:
        return torch.ones(len(tokens), dtype=torch.bool, device=tokens.device)
    kth = logits.topk(top_k, dim=-1).values[:, -1]
    return logits.gather(-1, tokens[:, None]).squeeze(-1) >= kth


@torch.no_grad()
def interleaved_sample(student, teacher, prompts, max_new_tokens, top_k, n_vocab=None, generator=None, *,
                       sample_temperature=1.0, teacher_temperature=1.0, teacher_top_p=None, use_cache=True,
                       return_accepted=False):
    """SKD's interleaved sampling: the student proposes, the teacher replaces tokens outside its top-K.

    student, teacher: causal LMs (``model(ids).logits``) on the same device; prompts: (N, P) long,
    no padding; top_k: K >= 0 (0: the teacher samples every token; >= n_vocab: on-policy
    sampling); n_vocab: only the first n_vocab outputs are tokens (the oracle's content tokens);
    sample_temperature: the student's proposal temperature; teacher_temperature, teacher_top_p:
    the teacher's replacement sampling (the official code warps it; 1.0 / None: its plain
    distribution). use_cache=False re-runs both prefixes every step (the reference for tests).
    Returns (N, P + max_new_tokens) long, and with return_accepted also (N, max_new_tokens) bool:
    which response tokens are the student's own proposals.
    """
    if int(top_k) != top_k or top_k < 0:
        raise ValueError(f"interleaved_sample: top_k must be an integer >= 0, got {top_k!r}")
    device = next(student.parameters()).device
    for model in (student, teacher):
        check_length(model, prompts.shape[1] + max_new_tokens)
    tokens = prompts.to(device)
    student_u = torch.rand(max_new_tokens, len(prompts), 1, generator=generator).to(device)
    teacher_u = torch.rand(max_new_tokens, len(prompts), 1, generator=generator).to(device)
    accepted = torch.zeros(len(prompts), max_new_tokens, dtype=torch.bool, device=device)
    s_past = t_past = None
    step_input = tokens
    for step in range(max_new_tokens):
        if use_cache:
            s_out = student(step_input, past_key_values=s_past, use_cache=True)
            t_out = teacher(step_input, past_key_values=t_past, use_cache=True)
            s_past, t_past = s_out.past_key_values, t_out.past_key_values
        else:
            s_out, t_out = student(tokens, use_cache=False), teacher(tokens, use_cache=False)
        s_logits, t_logits = s_out.logits[:, -1].float(), t_out.logits[:, -1].float()
        if n_vocab is not None:
            s_logits, t_logits = s_logits[:, :n_vocab], t_logits[:, :n_vocab]
        proposal = _draw(filter_logits(s_logits, sample_temperature), student_u[step])
        keep = in_top_k(t_logits, proposal, top_k)
        # the teacher's draw is made at every step (whether used or not), so the draws never depend on K
        replacement = _draw(filter_logits(t_logits, teacher_temperature, top_p=teacher_top_p), teacher_u[step])
        accepted[:, step] = keep
        step_input = torch.where(keep, proposal, replacement)[:, None]
        tokens = torch.cat([tokens, step_input], dim=1)
    return (tokens, accepted) if return_accepted else tokens


class SKD(TokenMethod):
    """Speculative KD: token-level divergence D(p_T || q_S) on interleaved sequences (SKD's loss).

    Per batch, the prompts (the first prompt_len tokens) are continued by ``interleaved_sample``
    with the training loop's generator; the loss is ``divergence`` on the response tokens only,
    as ``kdlib.lm.methods.TokenKD`` on the dataset's or ``GKD(lam=1)`` on the student's samples.
    No gradient flows through sampling. ``acceptance`` keeps the fraction of student proposals
    kept at each step (how often the teacher had to step in).
    """

    def __init__(self, n_vocab, prompt_len, top_k=25, divergence="fkl", beta=0.5, alpha=0.1,
                 sample_temperature=1.0, teacher_temperature=1.0, teacher_top_p=None):
        super().__init__()
        if divergence not in DIVERGENCES:
            raise ValueError(f"unknown divergence {divergence!r}; use one of {DIVERGENCES}")
        self.n_vocab, self.prompt_len, self.top_k = n_vocab, prompt_len, top_k
        self.divergence, self.beta, self.alpha = divergence, beta, alpha
        self.sample_temperature, self.teacher_temperature = sample_temperature, teacher_temperature
        self.teacher_top_p, self.acceptance = teacher_top_p, []

    def prefixes(self, student, teacher, batch):
        tokens = batch["tokens"]
        new, accepted = interleaved_sample(
            student, teacher, tokens[:, :self.prompt_len], tokens.shape[1] - self.prompt_len, self.top_k,
            self.n_vocab, batch.get("generator"), sample_temperature=self.sample_temperature,
            teacher_temperature=self.teacher_temperature, teacher_top_p=self.teacher_top_p, return_accepted=True)
        self._accepted = float(accepted.float().mean())
        new = new.to(tokens.device)
        return new, response_mask(new, self.prompt_len)

    def forward(self, student, teacher, batch):
        terms = super().forward(student, teacher, batch)  # samples through self.prefixes
        self.acceptance.append(self._accepted)
        return terms

    def terms_from_token_logits(self, student_logits, teacher_logits, target_tokens, mask):
        return {self.divergence: divergence(self.divergence, student_logits, teacher_logits, mask,
                                            self.beta, self.alpha)}
