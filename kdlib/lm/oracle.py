"""The ground truth of Part V: a mixture of hidden-Markov "domains" over one vocabulary.

Every LM chapter samples its data from ``MixtureHMMOracle`` and scores any
sequence -- written by the oracle, the teacher or the student -- with the
*exact* next-token distribution of the oracle (the forward algorithm). So the
"golden" metrics of these chapters are exact, not estimated by a bigger model.

Token layout, ``vocab_size = n_vocab + n_domains + 1``:

    0 .. n_vocab-1                 content tokens (the only ones the oracle emits)
    n_vocab + d                    domain tag <d>   (a sequence that starts with it is from domain d)
    n_vocab + n_domains            BOS              (domain unknown: the prior over domains applies)

A sequence is ``[tag or BOS, x_1, x_2, ...]``; position 0 is never predicted.
``next_token_logprobs(tokens)[:, t]`` is log p(x_{t+1} | x_{<=t}) over the
content tokens, aligned with a causal LM's ``logits[:, t]``.

Device: the oracle lives on one device (``device=`` or ``.to(device)``, like a
module). Sampling and the forward algorithm run there, batched over sequences,
with no host round trip per token; results come back on that device.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["MixtureHMMOracle", "REFERENCE_SIZE", "sparsity_from_logprobs"]

# (n_states, n_vocab) of the cpu profile's world, where the default concentrations were chosen
# (papers-llm.md Sec. 0.1: entropy 1.83 nats, top-1 mass 0.42). See ``scale_concentration``.
REFERENCE_SIZE = (64, 64)


def _dirichlet_rows(rng, concentration, n_rows, n_cols, floor):
    """n_rows samples of Dir(concentration * 1), mixed with a uniform floor so every entry is > 0."""
    rows = rng.dirichlet(np.full(n_cols, concentration), size=n_rows)
    rows = np.nan_to_num(rows, nan=0.0)
    rows = rows / rows.sum(-1, keepdims=True).clip(min=1e-300)
    return (1 - floor) * rows + floor / n_cols


def _per_domain(value, n_domains):
    values = list(value) if isinstance(value, (list, tuple)) else [value] * n_domains
    if len(values) != n_domains:
        raise ValueError(f"expected {n_domains} per-domain values, got {values}")
    return [float(v) for v in values]


def _categorical(probs, generator):
    """One index per row of probs (N, C), drawn exactly as ``torch.multinomial(probs, 1)`` does.

    torch.multinomial with one sample is an exponential race, argmax(p / q) with
    q ~ Exp(1) (ATen's Distributions.cpp); written out, it runs on any device
    with a generator of that device and, on the CPU, draws the same tokens from
    the same generator state as the multinomial call it replaces.
    """
    noise = torch.empty_like(probs).exponential_(generator=generator)
    return (probs / noise).argmax(-1)


def sparsity_from_logprobs(logp, mask=None):
    """Sparsity of next-token distributions logp (..., V), averaged over positions (mask: (...) bool).

    Returns {"entropy": nats, "top1": mass of the most likely token, "n90": the
    number of most likely tokens that together hold 90 % of the mass}.
    """
    p = logp.double().exp()
    entropy = -(p * logp.double()).sum(-1)
    top1 = p.max(-1).values
    cumulative = p.sort(-1, descending=True).values.cumsum(-1)
    n90 = (cumulative < 0.9).sum(-1) + 1  # tokens before the cumulative mass reaches 0.9, plus that one
    mask = torch.ones_like(top1, dtype=torch.bool) if mask is None else mask.to(top1.device)
    return {name: float(value[mask].double().mean())
            for name, value in dict(entropy=entropy, top1=top1, n90=n90).items()}


class MixtureHMMOracle:
    """A seeded mixture of D hidden-Markov models, each with K states over V content tokens.

    Domain d has an initial state distribution pi_d ~ Dir(1), transitions
    A_d[k] ~ Dir(transition_conc_d) and emissions B_d[k] ~ Dir(emission_conc_d),
    each emission row mixed with a uniform ``emission_floor`` so that every
    content token has non-zero probability (log-likelihoods stay finite).
    Small concentrations give sparse, low-entropy, strongly context-dependent
    next-token distributions. Concentrations may be one value or one per domain
    (domains of different difficulty). All parameters are float64 tensors.

    scale_concentration: the concentrations are given for the cpu world
    (``REFERENCE_SIZE``, 64 states x 64 tokens) and scaled by 64 / n_states
    (transitions) and 64 / n_vocab (emissions). Why: a row of Dir(alpha) over n
    categories has E[sum p^2] = (1 + alpha) / (1 + n alpha), so holding n * alpha
    fixed holds the expected number of live successors and tokens per state
    fixed, and a larger world stays as sparse as the cpu one. Off by default:
    the cpu profile's world is unchanged.
    device: where the parameters live and every computation runs (default CPU).
    Construction draws from numpy on the host, so a seed gives the same world on every device.
    """

    def __init__(self, n_domains=4, n_states=64, n_vocab=64, transition_conc=0.02,
                 emission_conc=0.01, domain_weights=None, emission_floor=1e-3, seed=0,
                 scale_concentration=False, device=None):
        self.n_domains, self.n_states, self.n_vocab = n_domains, n_states, n_vocab
        self.vocab_size = n_vocab + n_domains + 1
        self.bos = n_vocab + n_domains
        rng = np.random.default_rng(seed)
        t_conc = _per_domain(transition_conc, n_domains)
        e_conc = _per_domain(emission_conc, n_domains)
        t_scale, e_scale = ((REFERENCE_SIZE[0] / n_states, REFERENCE_SIZE[1] / n_vocab)
                            if scale_concentration else (1.0, 1.0))
        weights = np.ones(n_domains) if domain_weights is None else np.asarray(domain_weights, float)
        pi = [_dirichlet_rows(rng, 1.0, 1, n_states, 0.0)[0] for _ in range(n_domains)]
        A = [_dirichlet_rows(rng, c * t_scale, n_states, n_states, 0.0) for c in t_conc]
        B = [_dirichlet_rows(rng, c * e_scale, n_states, n_vocab, emission_floor) for c in e_conc]
        self.domain_weights = torch.tensor(weights / weights.sum())  # (D,)
        self.initial = torch.tensor(np.stack(pi))  # (D, K)
        self.transitions = torch.tensor(np.stack(A))  # (D, K, K)
        self.emissions = torch.tensor(np.stack(B))  # (D, K, V)
        self._spec = dict(kind="mixture-hmm", n_domains=n_domains, n_states=n_states, n_vocab=n_vocab,
                          transition_conc=t_conc, emission_conc=e_conc, domain_weights=weights.tolist(),
                          emission_floor=emission_floor, seed=seed)
        if scale_concentration:  # only when on: the cpu world's spec (a zoo key) stays as it was
            self._spec["scale_concentration"] = True
        self.to(device if device is not None else "cpu")

    def to(self, device):
        """Move the oracle to ``device`` (in place, like a module); returns it."""
        self.device = torch.device(device)
        for name in ("domain_weights", "initial", "transitions", "emissions"):
            setattr(self, name, getattr(self, name).to(self.device))
        # float32 copies for sampling: the draws of the original CPU implementation used float32
        self._sampling = tuple(x.float() for x in (self.domain_weights, self.initial,
                                                  self.transitions, self.emissions))
        return self

    @classmethod
    def from_spec(cls, spec, device=None):
        kwargs = {k: v for k, v in spec.items() if k != "kind"}
        return cls(**kwargs, device=device)

    def spec(self):
        """A JSON-able dict that rebuilds this oracle (``from_spec``) and keys the zoo."""
        return dict(self._spec)

    def tag(self, domain):
        return self.n_vocab + domain

    # ------------------------------------------------------------------ exact scores
    def _prior(self, first, dtype):
        """Joint belief over (domain, state of x_1) given the first token: (N, D, K)."""
        is_tag = first < self.bos
        domain_prior = torch.where(
            is_tag[:, None],
            torch.nn.functional.one_hot((first - self.n_vocab).clamp(0, self.n_domains - 1),
                                        self.n_domains).to(dtype),
            self.domain_weights[None].to(dtype),
        )
        return domain_prior[:, :, None] * self.initial[None].to(dtype)

    @torch.no_grad()
    def next_token_logprobs(self, tokens, dtype=torch.float32):
        """Exact log p(x_{t+1} = v | x_{<=t}) by the scaled forward algorithm, on the oracle's device.

        tokens: (N, T) long (any device), tokens[:, 0] a domain tag or BOS, the
        rest content tokens. Returns (N, T, n_vocab) of ``dtype`` on the oracle's
        device; row t is the distribution of the token at t+1 (the last row
        predicts a token beyond the sequence). Cost: O(T * N * D * K * (K + V)),
        vectorised over N and D, one step per position and no host round trip.
        The belief is renormalised every step, so float32 arithmetic (the
        default, 3x faster on a CPU) agrees with float64 to ~1e-5 nats; the
        tests use float64 (fast on data-centre GPUs such as the H200).
        """
        tokens = tokens.to(self.device)
        n, length = tokens.shape
        if (tokens[:, 1:] >= self.n_vocab).any():  # one check per call, not per token
            raise ValueError("MixtureHMMOracle: special tokens may only appear at position 0")
        belief = self._prior(tokens[:, 0], dtype)  # P(domain, z_{t+1} | x_{<=t}), (N, D, K)
        emissions, transitions = self.emissions.to(dtype), self.transitions.to(dtype)
        emissions_by_token = emissions.permute(2, 0, 1)  # (V, D, K)
        out = torch.empty(n, length, self.n_vocab, dtype=dtype, device=self.device)
        for t in range(length):
            out[:, t] = torch.einsum("ndk,dkv->nv", belief, emissions).log()
            if t + 1 < length:
                posterior = belief * emissions_by_token[tokens[:, t + 1]]  # (N, D, K)
                posterior = posterior / posterior.sum((1, 2), keepdim=True)
                belief = torch.einsum("ndk,dkj->ndj", posterior, transitions)
        return out

    def sequence_logprob(self, tokens, start=1, dtype=torch.float32):
        """log p(x_start, ..., x_{T-1} | x_{<start}) per sequence, exact: (N,) on the oracle's device."""
        tokens = tokens.to(self.device)
        logp = self.next_token_logprobs(tokens, dtype)[:, start - 1:-1]  # predicts tokens[:, start:]
        return logp.gather(-1, tokens[:, start:, None]).squeeze(-1).sum(-1)

    # ------------------------------------------------------------------ sampling
    def _generator(self, generator):
        """A generator on the oracle's device: the given one, or one seeded by a single draw from it."""
        if generator is None or generator.device.type == self.device.type:
            return generator
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        return torch.Generator(self.device).manual_seed(seed)

    @torch.no_grad()
    def sample(self, n, length, generator=None, domain=None, tagged=True):
        """n sequences of ``length`` content tokens after a first token: (n, 1 + length) long.

        domain: None (drawn from the domain weights) or an int. tagged: start
        with the domain tag (True) or with BOS (the domain is then latent).
        The tokens are made and returned on the oracle's device. generator: a
        torch.Generator; on the CPU the draws are exactly those of the original
        multinomial implementation. A CPU generator given to an oracle on a GPU
        seeds a GPU generator with one draw: reproducible for a seed, the same
        distribution as on the CPU, not the same tokens.
        """
        generator = self._generator(generator)
        weights, initial, transitions, emissions = self._sampling
        if domain is None:
            domains = _categorical(weights.expand(n, -1), generator)
        else:
            domains = torch.full((n,), int(domain), dtype=torch.long, device=self.device)
        first = (self.n_vocab + domains if tagged
                 else torch.full((n,), self.bos, dtype=torch.long, device=self.device))
        state = _categorical(initial[domains], generator)
        out = torch.empty(n, 1 + length, dtype=torch.long, device=self.device)
        out[:, 0] = first
        for t in range(length):
            out[:, t + 1] = _categorical(emissions[domains, state], generator)
            state = _categorical(transitions[domains, state], generator)
        return out

    def entropy_rate(self, n=512, length=64, seed=0):
        """Monte-Carlo estimate of the oracle's entropy in nats per content token."""
        tokens = self.sample(n, length, generator=torch.Generator().manual_seed(seed))
        return float(-self.sequence_logprob(tokens).mean() / length)

    def sparsity_stats(self, n_seq=256, seq_len=64, seed=0):
        """How sparse the oracle's next-token distributions are, on its own samples.

        Averaged over the content positions of n_seq sampled sequences (each
        distribution given a prefix of the sequence, the domain tag included):
        {"entropy" (nats), "top1" (mass of the most likely token), "n90" (tokens
        holding 90 % of the mass)}; see ``sparsity_from_logprobs``.
        """
        tokens = self.sample(n_seq, seq_len, generator=torch.Generator().manual_seed(seed))
        logp = self.next_token_logprobs(tokens, dtype=torch.float64)[:, :-1]  # predicts x_1 .. x_T
        return sparsity_from_logprobs(logp)
