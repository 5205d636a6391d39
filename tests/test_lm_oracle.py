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
