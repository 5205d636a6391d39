"""The KV-cached sampler: same tokens as re-running the prefix, and the filters do what they say."""

import pytest
import torch

from kdlib.lm.models import build_lm
from kdlib.lm.sampling import filter_logits, sample


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request):
    torch.manual_seed(0)
    m = build_lm(request.param, vocab_size=12, n_layer=2, n_embd=32, n_head=2, seed=3).eval()
    with torch.no_grad():  # sharpen the random init so that the samples are not uniform noise
        m.lm_head.weight.mul_(4.0)
    return m


@pytest.mark.parametrize("kwargs", [{}, {"sample_temperature": 0.7, "top_k": 5}, {"top_p": 0.8}])
def test_cached_and_uncached_give_the_same_tokens(model, kwargs):
    prompt = torch.randint(0, 10, (8, 3), generator=torch.Generator().manual_seed(1))
    runs = [sample(model, prompt, 20, n_vocab=10, generator=torch.Generator().manual_seed(7),
                   use_cache=use_cache, **kwargs) for use_cache in (True, False)]
    assert runs[0].shape == (8, 23)
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(runs[0][:, :3], prompt)
    assert runs[0].max() < 10  # only content tokens are sampled


def test_seed_controls_the_samples(model):
    prompt = torch.zeros(16, 1, dtype=torch.long)
    a = sample(model, prompt, 10, generator=torch.Generator().manual_seed(0))
    b = sample(model, prompt, 10, generator=torch.Generator().manual_seed(0))
    c = sample(model, prompt, 10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_filters():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0]])
    top2 = filter_logits(logits, top_k=2)
    assert torch.isfinite(top2).tolist() == [[True, True, False, False, False]]
    probs = logits.softmax(-1)[0]  # about [.64, .23, .09, .03, .01]
    kept = torch.isfinite(filter_logits(logits, top_p=0.7))[0].tolist()
    assert kept == [True, True, False, False, False]  # .64 < .7, so the second token is needed
    assert torch.isfinite(filter_logits(logits, top_p=float(probs[0]) - 1e-3))[0].sum() == 1
    assert torch.allclose(filter_logits(logits, sample_temperature=2.0), logits / 2)


def test_low_temperature_is_greedy(model):
    prompt = torch.randint(0, 10, (4, 2), generator=torch.Generator().manual_seed(2))
    out = sample(model, prompt, 6, n_vocab=10, sample_temperature=1e-4,
                 generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        greedy = prompt
        for _ in range(6):
            nxt = model(greedy).logits[:, -1, :10].argmax(-1, keepdim=True)
            greedy = torch.cat([greedy, nxt], 1)
    assert torch.equal(out, greedy)


def test_empirical_frequencies_follow_the_model():
    torch.manual_seed(0)
    m = build_lm("gpt2", vocab_size=4, n_layer=1, n_embd=16, n_head=1, seed=0).eval()
    prompt = torch.zeros(20_000, 1, dtype=torch.long)
    out = sample(m, prompt, 1, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(out[:, 1], minlength=4).float() / len(out)
    with torch.no_grad():
        probs = m(prompt[:1]).logits[0, -1].softmax(-1)
    assert (freq - probs).abs().max() < 0.015
