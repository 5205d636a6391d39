"""Tiny causal LMs built from `transformers` configs (never from the hub), and the LM zoo.

The teacher ladder and the students of Part V (papers-llm.md, Sec. 0.2):

    role      name     cpu profile              params (V=69)
    teacher   small    GPT-2, 2 layers, d=64    ~0.11M
    teacher   medium   GPT-2, 2 layers, d=128   ~0.41M
    teacher   large    GPT-2, 4 layers, d=128   ~0.81M
    student   xs       GPT-2, 1 layer,  d=32    ~0.02M
    student   s        GPT-2, 2 layers, d=64    ~0.11M

A teacher is trained once on fresh oracle samples with a fixed token budget and
cached by ``kdlib.zoo`` (content hash of its spec + this file's source).
Dropout is off everywhere: the data are unlimited samples, not a fixed set.
Real text is not unlimited: a teacher's budget on it is capped at
``MAX_TEXT_EPOCHS`` passes over the training split (``lm_spec``).

Devices: the zoo trains an LM where ``repro.default_device()`` points (a GPU if
there is one), with the oracle on that device too; on a CPU-only machine
nothing changes.
"""

from __future__ import annotations

import torch

from kdlib import repro, zoo
from kdlib.lm.oracle import MixtureHMMOracle
from kdlib.lm.tokens import lm_logits, next_token_view, response_mask, sft_loss  # noqa: F401 (re-exported)

__all__ = ["TEACHERS", "STUDENTS", "MAX_TEXT_EPOCHS", "build_lm", "lm_spec", "make_lm",
           "fit_lm", "get_lm", "count_parameters", "oracle_stream", "sft_loss", "source_from_spec"]

# Default cap on a teacher's passes over a real-text corpus (Tiny Shakespeare: ~1.0M training
# characters). Without it the paper profile's 50M-character budget is ~50 epochs of memorisation
# for a model without dropout. The cpu profile's 1M characters are under the cap: unchanged.
MAX_TEXT_EPOCHS = 5

# name -> architecture (a flat dict; "arch" is "gpt2" or "llama")
TEACHERS = {
    "small": dict(arch="gpt2", n_layer=2, n_embd=64, n_head=2),
    "medium": dict(arch="gpt2", n_layer=2, n_embd=128, n_head=4),
    "large": dict(arch="gpt2", n_layer=4, n_embd=128, n_head=4),
}
STUDENTS = {
    "xs": dict(arch="gpt2", n_layer=1, n_embd=32, n_head=1),
    "s": dict(arch="gpt2", n_layer=2, n_embd=64, n_head=2),
}


def build_lm(arch, vocab_size, n_layer, n_embd, n_head, n_positions=128, seed=0, max_len=None):
    """A randomly initialised GPT-2 or Llama causal LM from a config (seeded init, no dropout).

    max_len: the longest sequence (tokens, position 0 included) the caller will
    feed it; the model gets ``max(n_positions, max_len)`` positions. A model is
    never built shorter than 128, so the cpu profile's models (and their seeded
    init) are unchanged. ``kdlib.lm.tokens.lm_logits`` and the sampler refuse
    longer sequences with a one-line error.
    """
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    if max_len is not None:
        n_positions = max(n_positions, int(max_len))
    repro.seed_everything(seed)
    if arch == "gpt2":
        config = GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd,
                            n_layer=n_layer, n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0,
                            attn_pdrop=0.0, bos_token_id=vocab_size - 1, eos_token_id=vocab_size - 1)
        model = GPT2LMHeadModel(config)
    elif arch == "llama":
        config = LlamaConfig(vocab_size=vocab_size, hidden_size=n_embd, intermediate_size=4 * n_embd,
                             num_hidden_layers=n_layer, num_attention_heads=n_head,
                             num_key_value_heads=n_head, max_position_embeddings=n_positions,
                             bos_token_id=vocab_size - 1, eos_token_id=vocab_size - 1,
                             tie_word_embeddings=True)
        model = LlamaForCausalLM(config)
    else:
        raise ValueError(f"build_lm: unknown arch {arch!r} (use 'gpt2' or 'llama')")
    return model


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def lm_spec(source, arch, *, kind="lm-teacher", tokens=1_000_000, batch_size=64, seq_len=48,
            lr=3e-3, seed=0, max_epochs=MAX_TEXT_EPOCHS):
    """The JSON-able zoo spec of an LM trained by SFT on fresh samples of ``source``.

    source: a MixtureHMMOracle (synthetic world) or a shakespeare.CharCorpus (real text).
    tokens: the training budget in content tokens (steps = tokens / (batch_size * seq_len)).
    max_epochs: real text only (an oracle's samples are always fresh): the budget is
    capped at max_epochs x the training split's length, and the spec records the
    capped budget. None: no cap.
    """
    if max_epochs is not None and hasattr(source, "train_ids"):
        tokens = min(int(tokens), int(max_epochs * len(source.train_ids)))
    return dict(kind=kind, data=source.spec(), arch=dict(arch), tokens=int(tokens),
                batch_size=int(batch_size), seq_len=int(seq_len), lr=float(lr), seed=int(seed))


def source_from_spec(data_spec, device=None):
    """The oracle (on ``device``) or corpus that a spec's "data" entry describes."""
    if data_spec["kind"] == "tinyshakespeare":
        from kdlib.lm.shakespeare import CharCorpus

        return CharCorpus(held_out_fraction=data_spec["held_out_fraction"])
    return MixtureHMMOracle.from_spec(data_spec, device=device)


def make_lm(spec):
    """zoo ``make``: the untrained model of an ``lm_spec``."""
    vocab_size = source_from_spec(spec["data"]).vocab_size
    return build_lm(vocab_size=vocab_size, max_len=spec["seq_len"] + 1, seed=spec["seed"], **spec["arch"])


def fit_lm(model, spec, progress=True):
    """zoo ``fit``: SFT (next-token cross-entropy) on fresh samples; returns its quality.

    Oracle: KL(oracle || model) per token (``golden_fkl``) on 512 held-out oracle
    sequences (seed 10_000, never trained on). Real text: ``heldout_nll`` in nats
    per character on the held-out split. Trains on ``repro.default_device()`` (a GPU if
    there is one); the model is returned on the CPU.
    """
    from kdlib.lm.methods import SFT
    from kdlib.lm.metrics import golden_token_kl, heldout_nll
    from kdlib.train import train

    device = repro.default_device()
    model.to(device)
    source = source_from_spec(spec["data"], device)
    steps = max(1, spec["tokens"] // (spec["batch_size"] * spec["seq_len"]))
    if isinstance(source, MixtureHMMOracle):
        data = oracle_stream(source, spec["batch_size"], spec["seq_len"])
    else:
        data = source.stream(spec["batch_size"], spec["seq_len"])
    arch = spec["arch"]
    train(model, SFT(source.n_vocab), data, steps=steps, lr=spec["lr"], optimizer="adamw",
          lr_schedule="cosine", seed=spec["seed"], progress=progress,
          desc=f"{spec['kind']} {arch['arch']} L{arch['n_layer']} d{arch['n_embd']}")
    metrics = dict(steps=steps, parameters=count_parameters(model))
    if isinstance(source, MixtureHMMOracle):
        held_out = source.sample(512, spec["seq_len"], generator=torch.Generator().manual_seed(10_000))
        metrics.update(golden_fkl=golden_token_kl(source, model, held_out), entropy_rate=source.entropy_rate())
    else:
        metrics.update(heldout_nll=heldout_nll(model, source.held_out(spec["seq_len"], 256), source.n_vocab))
    model.cpu()
    return metrics


def oracle_stream(oracle, batch_size, seq_len, prompt_len=1, prefetch=None):
    """A ``data(step, generator)`` callable for ``kdlib.train``: fresh oracle samples each step.

    A batch is a dict: tokens (B, 1 + seq_len) on the oracle's device, mask
    (B, 1 + seq_len) true on the targets (positions >= prompt_len; 1 = every
    content token), and the generator (for methods that sample, so a run is
    reproducible from its seed).
    prefetch: sample this many batches in one call (every ``prefetch`` steps,
    and at step 0 so each run depends only on its own generator). Sampling is
    sequential in the position, so on a GPU its cost is kernel launches per
    call, not per sequence: 32 batches at once cost about what one does.
    Default: 1 on the CPU (the batches of the original stream), 32 elsewhere.
    """
    if prefetch is None:
        prefetch = 1 if oracle.device.type == "cpu" else 32
    pool = {}

    def data(step, generator):
        if prefetch == 1:
            tokens = oracle.sample(batch_size, seq_len, generator=generator)
        else:
            if step % prefetch == 0 or "tokens" not in pool:
                pool["tokens"] = oracle.sample(prefetch * batch_size, seq_len, generator=generator)
            i = step % prefetch
            tokens = pool["tokens"][i * batch_size:(i + 1) * batch_size]
        return {"tokens": tokens, "mask": response_mask(tokens, prompt_len), "generator": generator}

    return data


def get_lm(source, arch, progress=True, **spec_kwargs):
    """The trained LM of ``lm_spec(source, arch, **spec_kwargs)`` from the zoo (eval mode)."""
    return zoo.get(lm_spec(source, arch, **spec_kwargs), make=make_lm, fit=fit_lm, progress=progress)
