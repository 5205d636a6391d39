"""The mixture-HMM oracle: exact next-token log-probs against brute-force enumeration."""

import itertools
import math

import pytest
import torch

from kdlib.lm.oracle import MixtureHMMOracle


def tiny(**kwargs):
    return MixtureHMMOracle(n_domains=2, n_states=2, n_vocab=3, transition_conc=0.5,
                            emission_conc=0.5, domain_weights=[0.3, 0.7], seed=1, **kwargs)


def brute_force_prob(oracle, first, content):
    """p(content | first token) by summing over the domain and every hidden-state path."""
    D, K = oracle.n_domains, oracle.n_states
    pi, A, B, w = oracle.initial, oracle.transitions, oracle.emissions, oracle.domain_weights
    domains = [first - oracle.n_vocab] if first < oracle.bos else range(D)
    total = 0.0
    for d in domains:
        prior = 1.0 if first < oracle.bos else float(w[d])
        for path in itertools.product(range(K), repeat=len(content)):
            p = prior * float(pi[d, path[0]])
            for i, (z, x) in enumerate(zip(path, content)):
                if i > 0:
                    p *= float(A[d, path[i - 1], z])
                p *= float(B[d, z, x])
            total += p
    return total


@pytest.mark.parametrize("first_kind", ["tag0", "tag1", "bos"])
def test_forward_algorithm_matches_enumeration(first_kind):
    oracle = tiny()
    first = {"tag0": oracle.tag(0), "tag1": oracle.tag(1), "bos": oracle.bos}[first_kind]
    length = 4
    seqs = torch.tensor([[first, *c] for c in itertools.product(range(3), repeat=length)])
    logp = oracle.next_token_logprobs(seqs, dtype=torch.float64)  # (81, 5, 3)
    for row, seq in zip(logp, seqs.tolist()):
        for t in range(length):
            exact = brute_force_prob(oracle, first, seq[1:t + 2]) / brute_force_prob(oracle, first, seq[1:t + 1]) \
                if t > 0 else brute_force_prob(oracle, first, seq[1:2])
            assert math.isclose(row[t, seq[t + 1]].exp().item(), exact, rel_tol=1e-9)
    # each row is a distribution, and sequence log-probs sum to one over all sequences
    assert torch.allclose(logp.exp().sum(-1), torch.ones(()).double())
    total = oracle.sequence_logprob(seqs, dtype=torch.float64).exp().sum()
    assert math.isclose(total.item(), 1.0, rel_tol=1e-9)


def test_float32_agrees_with_float64():
    oracle = MixtureHMMOracle(n_domains=2, n_states=16, n_vocab=16, seed=0)
    tokens = oracle.sample(64, 32, generator=torch.Generator().manual_seed(0))
    a = oracle.next_token_logprobs(tokens, dtype=torch.float64)
    b = oracle.next_token_logprobs(tokens)
    assert (a - b).abs().max() < 1e-4


def test_sampling_matches_exact_probabilities():
    oracle = tiny()
    n = 40_000
    tokens = oracle.sample(n, 2, generator=torch.Generator().manual_seed(0), tagged=False)
    assert (tokens[:, 0] == oracle.bos).all()
    counts = torch.zeros(3, 3)
    for a, b in tokens[:, 1:].tolist():
        counts[a, b] += 1
    seqs = torch.tensor([[oracle.bos, a, b] for a in range(3) for b in range(3)])
    exact = oracle.sequence_logprob(seqs, dtype=torch.float64).exp().view(3, 3).float()
    se = (exact * (1 - exact) / n).sqrt()
    assert ((counts / n - exact).abs() <= 5 * se + 1e-4).all()


def test_tagged_samples_follow_domain_weights_and_seeded_construction():
    oracle = tiny()
    tokens = oracle.sample(20_000, 1, generator=torch.Generator().manual_seed(1))
    share1 = (tokens[:, 0] == oracle.tag(1)).float().mean().item()
    assert abs(share1 - 0.7) < 0.02
    again = tiny()
    assert torch.equal(again.emissions, oracle.emissions) and again.spec() == oracle.spec()
    assert MixtureHMMOracle.from_spec(oracle.spec()).spec() == oracle.spec()
    assert not torch.equal(MixtureHMMOracle(n_domains=2, n_states=2, n_vocab=3, seed=2).emissions,
                           oracle.emissions)
    assert oracle.emissions.min() > 0  # every content token has non-zero probability


def test_special_token_inside_a_sequence_raises():
    oracle = tiny()
    with pytest.raises(ValueError, match="special tokens"):
        oracle.next_token_logprobs(torch.tensor([[oracle.tag(0), 1, oracle.bos]]))


def test_default_oracle_is_low_entropy_and_multimodal():
    oracle = MixtureHMMOracle(seed=0)
    tokens = oracle.sample(256, 32, generator=torch.Generator().manual_seed(0))
    logp = oracle.next_token_logprobs(tokens)
    entropy = -(logp.exp() * logp).sum(-1)[:, 1:-1].mean()
    assert 1.0 < entropy < 3.0  # far below log(64) = 4.16: context matters
    assert logp.exp().max(-1).values.mean() < 0.7  # next-token distributions are not one-hot


# ---------------------------------------------------------------- the device-batched oracle
# The implementation before the oracle moved to the model's device (commit 6c209ed), verbatim
# in substance: CPU only, torch.multinomial per token. The new code must reproduce it exactly.

def old_sample(oracle, n, length, generator=None, domain=None, tagged=True):
    if domain is None:
        domains = torch.multinomial(oracle.domain_weights.float().expand(n, -1), 1,
                                    replacement=True, generator=generator).squeeze(-1)
    else:
        domains = torch.full((n,), int(domain), dtype=torch.long)
    first = oracle.n_vocab + domains if tagged else torch.full((n,), oracle.bos, dtype=torch.long)
    initial, transitions, emissions = (x.float() for x in (oracle.initial, oracle.transitions, oracle.emissions))
    state = torch.multinomial(initial[domains], 1, generator=generator).squeeze(-1)
    out = [first]
    for _ in range(length):
        out.append(torch.multinomial(emissions[domains, state], 1, generator=generator).squeeze(-1))
        state = torch.multinomial(transitions[domains, state], 1, generator=generator).squeeze(-1)
    return torch.stack(out, dim=1)


def old_next_token_logprobs(oracle, tokens, dtype):
    belief = oracle._prior(tokens[:, 0], dtype)
    emissions, transitions = oracle.emissions.to(dtype), oracle.transitions.to(dtype)
    out = []
    for t in range(tokens.shape[1]):
        out.append(torch.einsum("ndk,dkv->nv", belief, emissions).log())
        if t + 1 < tokens.shape[1]:
            posterior = belief * emissions.permute(2, 0, 1)[tokens[:, t + 1]]
            posterior = posterior / posterior.sum((1, 2), keepdim=True)
            belief = torch.einsum("ndk,dkj->ndj", posterior, transitions)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("kwargs", [dict(), dict(domain=1), dict(tagged=False)])
def test_sampling_draws_the_same_tokens_as_the_multinomial_implementation(kwargs):
    oracle = MixtureHMMOracle(n_domains=3, n_states=16, n_vocab=24, seed=3)
    new_gen, old_gen = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    new = oracle.sample(50, 20, generator=new_gen, **kwargs)
    old = old_sample(oracle, 50, 20, generator=old_gen, **kwargs)
    assert torch.equal(new, old)
    assert torch.equal(new_gen.get_state(), old_gen.get_state())  # callers drawing next see the same stream


def test_forward_algorithm_equals_the_previous_implementation():
    oracle = MixtureHMMOracle(n_domains=3, n_states=16, n_vocab=24, seed=3)
    tokens = oracle.sample(40, 30, generator=torch.Generator().manual_seed(0))
    tokens[::3, 0] = oracle.bos
    for dtype in (torch.float64, torch.float32):
        assert torch.equal(oracle.next_token_logprobs(tokens, dtype), old_next_token_logprobs(oracle, tokens, dtype))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_oracle_matches_the_cpu_oracle():
    cpu = MixtureHMMOracle(n_domains=2, n_states=8, n_vocab=6, seed=4)
    gpu = MixtureHMMOracle(n_domains=2, n_states=8, n_vocab=6, seed=4, device="cuda")
    assert torch.equal(gpu.emissions.cpu(), cpu.emissions) and gpu.spec() == cpu.spec()
    # the forward algorithm: the same numbers on either device, on the same tokens
    tokens = cpu.sample(256, 24, generator=torch.Generator().manual_seed(0))
    a = cpu.next_token_logprobs(tokens, torch.float64)
    b = gpu.next_token_logprobs(tokens.cuda(), torch.float64)
    assert b.device.type == "cuda" and torch.allclose(a, b.cpu(), rtol=0, atol=1e-10)
    # sampling: reproducible on the GPU for a seed, and the same distribution as on the CPU
    n = 40_000
    g = gpu.sample(n, 2, generator=torch.Generator().manual_seed(1))
    assert g.device.type == "cuda" and torch.equal(g, gpu.sample(n, 2, generator=torch.Generator().manual_seed(1)))
    c = cpu.sample(n, 2, generator=torch.Generator().manual_seed(1))
    index = lambda t: (t[:, 0] - cpu.n_vocab) * 36 + t[:, 1] * 6 + t[:, 2]  # (domain, x1, x2) cells
    pc = torch.bincount(index(c), minlength=72).double() / n
    pg = torch.bincount(index(g.cpu()), minlength=72).double() / n
    se = ((pc * (1 - pc) + pg * (1 - pg)) / n).sqrt()
    assert ((pc - pg).abs() <= 5 * se + 1e-4).all()


def brute_force_next_token(oracle, first, prefix):
    """p(x = v | first, prefix) for every content token v, by enumeration: a list of V floats."""
    joint = [brute_force_prob(oracle, first, [*prefix, v]) for v in range(oracle.n_vocab)]
    return [p / sum(joint) for p in joint]


def test_sparsity_stats_match_brute_force():
    oracle = tiny()
    stats = oracle.sparsity_stats(n_seq=6, seq_len=3, seed=5)
    tokens = oracle.sample(6, 3, generator=torch.Generator().manual_seed(5)).tolist()
    entropies, top1s, n90s = [], [], []
    for seq in tokens:
        for t in range(3):  # the distribution of x_{t+1} given the tag and x_1 .. x_t
            p = sorted(brute_force_next_token(oracle, seq[0], seq[1:t + 1]), reverse=True)
            entropies.append(-sum(q * math.log(q) for q in p))
            top1s.append(p[0])
            n90s.append(next(i + 1 for i in range(len(p)) if sum(p[:i + 1]) >= 0.9))
    assert math.isclose(stats["entropy"], sum(entropies) / 18, rel_tol=1e-9)
    assert math.isclose(stats["top1"], sum(top1s) / 18, rel_tol=1e-9)
    assert math.isclose(stats["n90"], sum(n90s) / 18, rel_tol=1e-9)


def test_scaled_concentrations_keep_a_larger_world_sparse():
    small = MixtureHMMOracle(n_domains=2, n_states=16, n_vocab=16, seed=0, scale_concentration=True)
    assert "scale_concentration" not in MixtureHMMOracle(seed=0).spec()  # the cpu world's spec is unchanged
    assert MixtureHMMOracle.from_spec(small.spec()).spec() == small.spec()
    big = dict(n_domains=2, n_states=128, n_vocab=256, seed=0)
    plain = MixtureHMMOracle(**big).sparsity_stats(32, 16)
    scaled = MixtureHMMOracle(**big, scale_concentration=True).sparsity_stats(32, 16)
    reference = MixtureHMMOracle(n_domains=2, seed=0).sparsity_stats(32, 16)
    assert scaled["entropy"] < plain["entropy"] - 1.0 and scaled["n90"] < plain["n90"] / 3
    assert abs(scaled["entropy"] - reference["entropy"]) < 0.5
