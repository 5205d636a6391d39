"""TokenMethod: the one forward of the token-level LM methods.

Every LM method (SFT, SeqKD, TokenKD, GKD/ImitKD, SKD, TAID, SinKD) does the same things before
its own loss: choose the sequences it trains on (``prefixes``), run the student on them, align the
logits with the tokens they predict (``next_token_view``) and, for KD, get the frozen teacher's
logits on the same tokens -- from ``kdlib.lm.cache.SeedBatches``' cache when it holds them, else by
running the teacher. These were four copies; written once here, the shift and the cache cannot
drift apart between methods, and a method is its ``prefixes`` and a pure loss of aligned logits.
"""

from __future__ import annotations

import torch

from kdlib.lm.tokens import lm_logits, next_token_view
from kdlib.method import Method

__all__ = ["TokenMethod"]


class TokenMethod(Method):
    """A token-level LM method: ``prefixes`` -> aligned logits -> ``terms_from_token_logits``.

    A subclass sets ``self.n_vocab`` (the content tokens: the first n_vocab outputs are the logits)
    and implements the pure ``terms_from_token_logits``; it overrides ``prefixes`` if it trains on
    other sequences than the batch's (samples), and ``forward`` only to record something (calling
    ``super().forward``). ``needs_teacher_logits = False``: the teacher is not run (hard labels).

    The cache: ``batch["teacher_logits"]``, the teacher's unshifted ``lm_logits`` (N, T, n_vocab)
    on ``batch["tokens"]``. Its rows are used where the prefixes are those tokens; rows a method
    replaced by its own samples (GKD's, SKD's) go through the teacher here. Either way the numbers
    are those of the teacher run on the prefixes (tests/test_lm_base.py checks it to the bit).
    """

    needs_teacher_logits: bool = True
    n_vocab: int

    def prefixes(self, student, teacher, batch):
        """(tokens (N, T) long, mask (N, T) bool of the target tokens): by default the batch's own."""
        return batch["tokens"], batch["mask"]

    def forward(self, student, teacher, batch) -> dict:
        tokens, mask = self.prefixes(student, teacher, batch)
        student_logits, target_tokens, target_mask = next_token_view(
            lm_logits(student, tokens, self.n_vocab), tokens, mask)  # (N, T-1, V), (N, T-1), (N, T-1)
        teacher_logits = None
        if self.needs_teacher_logits:
            teacher_logits = next_token_view(self.teacher_logits(teacher, batch, tokens), tokens)[0]
        return self.terms_from_token_logits(student_logits, teacher_logits, target_tokens, target_mask)

    def terms_from_token_logits(self, student_logits, teacher_logits, target_tokens, mask) -> dict:
        """Pure: aligned (N, T-1, V) student logits, teacher logits (no grad; None without a teacher),
        (N, T-1) target tokens and bool mask (row t predicts target_tokens[:, t]) -> weighted terms.

        May read hyperparameters and ``self.step`` (schedules), nothing else that changes."""
        raise NotImplementedError

    def teacher_logits(self, teacher, batch, tokens):
        """The teacher's unshifted logits (N, T, n_vocab) on tokens, no grad: cached rows where valid."""
        cached, source = batch.get("teacher_logits"), batch.get("tokens")
        if cached is None or source is None or cached.shape[-1] != self.n_vocab or source.shape != tokens.shape:
            fresh = torch.ones(len(tokens), dtype=torch.bool, device=tokens.device)
        else:
            fresh = (source.to(tokens.device) != tokens).any(-1)  # (N,) rows the method replaced
        if not fresh.any():
            return cached
        if teacher is None:
            raise ValueError(f"{type(self).__name__} needs a teacher (teacher=None, no cached logits)")
        with torch.no_grad():
            if fresh.all():
                return lm_logits(teacher, tokens, self.n_vocab)
            logits, fresh = cached.clone(), fresh.to(cached.device)
            logits[fresh] = lm_logits(teacher, tokens[fresh.to(tokens.device)], self.n_vocab).to(logits.device)
        return logits
