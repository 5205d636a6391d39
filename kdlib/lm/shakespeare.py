"""Tiny Shakespeare (Karpathy's char-rnn corpus) as a character-level LM corpus: real text.

The ~1.1 MB file ships with kdlib (``kdlib/lm/data/tinyshakespeare.txt``) and
is verified by sha256 on every load. There is no exact oracle for real text, so
the golden metric becomes held-out NLL (nats per character) on the last 10%.
Token layout: the 65 characters sorted, then BOS (id 65) as position 0 of every window.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

__all__ = ["SHA256", "PATH", "load_text", "CharCorpus"]

SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
PATH = Path(__file__).parent / "data" / "tinyshakespeare.txt"


def load_text(path=PATH, sha256=SHA256):
    """The corpus as a str, after checking its sha256 (a mismatch raises a one-line error)."""
    path = Path(path)
    payload = path.read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    if digest != sha256:
        raise ValueError(f"{path}: sha256 {digest[:12]}... does not match the expected {sha256[:12]}...")
    return payload.decode("utf-8")


class CharCorpus:
    """Character-level encoding and a 90/10 train / held-out split of one text.

    ``n_vocab`` content tokens (the characters) plus BOS; ``vocab_size = n_vocab + 1``.
    """

    def __init__(self, text=None, held_out_fraction=0.1):
        text = load_text() if text is None else text
        self.chars = sorted(set(text))
        self.n_vocab = len(self.chars)
        self.bos = self.n_vocab
        self.vocab_size = self.n_vocab + 1
        self.index = {c: i for i, c in enumerate(self.chars)}
        ids = self.encode(text)
        split = int(len(ids) * (1 - held_out_fraction))
        self.train_ids, self.held_out_ids = ids[:split], ids[split:]
        self.held_out_fraction = held_out_fraction

    def spec(self):
        """A JSON-able description (keys the zoo); the text itself is pinned by its sha256."""
        return dict(kind="tinyshakespeare", sha256=SHA256, held_out_fraction=self.held_out_fraction)

    def encode(self, text):
        return torch.tensor([self.index[c] for c in text], dtype=torch.long)

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids if i < self.n_vocab)

    def windows(self, n, seq_len, generator=None, split="train"):
        """n random windows of seq_len characters, each after a BOS: (n, 1 + seq_len) long."""
        ids = self.train_ids if split == "train" else self.held_out_ids
        starts = torch.randint(0, len(ids) - seq_len, (n,), generator=generator)
        body = ids[starts[:, None] + torch.arange(seq_len)]
        return torch.cat([torch.full((n, 1), self.bos, dtype=torch.long), body], dim=1)

    def held_out(self, seq_len, max_windows=None):
        """The held-out split cut into consecutive windows (fixed, for evaluation)."""
        n = (len(self.held_out_ids) - 1) // seq_len
        n = n if max_windows is None else min(n, max_windows)
        body = self.held_out_ids[: n * seq_len].view(n, seq_len)
        return torch.cat([torch.full((n, 1), self.bos, dtype=torch.long), body], dim=1)

    def stream(self, batch_size, seq_len):
        """A ``data(step, generator)`` callable for ``kdlib.train`` (same batch format as the oracle)."""
        def data(step, generator):
            tokens = self.windows(batch_size, seq_len, generator)
            mask = torch.ones_like(tokens, dtype=torch.bool)
            mask[:, 0] = False
            return {"tokens": tokens, "mask": mask, "generator": generator}

        return data
