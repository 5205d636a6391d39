"""Teacher hacking: the data sources, the tracker and the statistics (kdlib/lm/teacher_hacking.py)."""

import numpy as np
import pytest
import torch

from kdlib.lm import teacher_hacking as th
from kdlib.lm.metrics import golden_token_kl, proxy_token_kl
from kdlib.lm.methods import TokenKD
from kdlib.lm.models import build_lm
from kdlib.lm.oracle import MixtureHMMOracle
from kdlib.train import train

ARCH = dict(arch="gpt2", n_layer=1, n_embd=16, n_head=1)


@pytest.fixture(scope="module")
def world():
    torch.set_num_threads(1)
    oracle = MixtureHMMOracle(n_domains=2, n_states=8, n_vocab=16, seed=0)
    teacher = build_lm(vocab_size=oracle.vocab_size, max_len=13, seed=0, **ARCH).eval()
    return oracle, teacher


def pool(world, n, k=1, seed=0):
    oracle, teacher = world
    return th.teacher_pool(oracle, teacher, n, k, prompt_len=4, response_len=8, seed=seed)


def test_pool_shapes_and_determinism(world):
    p, q = pool(world, 6, k=2), pool(world, 6, k=2)
    assert p["tokens"].shape == (12, 13) and p["teacher_logits"].shape == (12, 13, 16)
    assert torch.equal(p["tokens"], q["tokens"]) and torch.equal(p["teacher_logits"], q["teacher_logits"])
    assert not torch.equal(p["tokens"], pool(world, 6, k=2, seed=1)["tokens"])
    # k completions share their prompt, and the mask covers the response only
    assert torch.equal(p["tokens"][0, :5], p["tokens"][1, :5]) and p["prompt_id"].tolist()[:4] == [0, 0, 1, 1]
    assert p["mask"][:, :5].sum() == 0 and bool(p["mask"][:, 5:].all())
    with pytest.raises(ValueError, match="n_prompts"):
        pool(world, 0)


def test_offline_pool_is_fixed_across_epochs(world):
    p = pool(world, 8)
    data = th.OfflineData(p, batch_size=4, seed=3)
    rows = torch.cat([data.indices(s) for s in range(6)])  # 3 epochs of 2 steps
    for epoch in range(3):
        assert sorted(rows[epoch * 8:(epoch + 1) * 8].tolist()) == list(range(8))  # every row once per epoch
    seen = {tuple(t) for s in range(6) for t in data(s)["tokens"].tolist()}
    assert seen == {tuple(t) for t in p["tokens"].tolist()}  # never anything outside the pool
    again = th.OfflineData(p, batch_size=4, seed=3)
    assert all(torch.equal(data(s)["tokens"], again(s)["tokens"]) for s in range(6))  # deterministic per seed
    other = th.OfflineData(p, batch_size=4, seed=4)
    assert not all(torch.equal(data.indices(s), other.indices(s)) for s in range(6))


def test_online_draws_differ_per_step(world):
    p = pool(world, 12)
    data = th.OnlineData(p, batch_size=4)
    batches = [data(s)["tokens"] for s in range(3)]
    for s, b in enumerate(batches):  # step s reads its own block of rows, each row once in the whole run
        assert torch.equal(b, p["tokens"][4 * s:4 * s + 4])
    assert not torch.equal(batches[0], batches[1]) and not torch.equal(batches[1], batches[2])
    with pytest.raises(ValueError, match="steps"):
        data(3)


def test_hacking_gap_on_constructed_curves():
    assert th.hacking_gap([3.0, 2.0, 1.0]) == 0.0                      # monotone: no hacking
    assert th.hacking_gap([3.0, 1.0, 1.5]) == pytest.approx(0.5)       # U-shape: end - min
    assert th.hacking_gap([1.0, 2.0, 3.0]) == pytest.approx(2.0)
    assert th.proxy_drop_after_min([3.0, 1.0, 1.5], [2.0, 0.5, 0.2]) == pytest.approx(0.3)
    assert th.proxy_drop_after_min([3.0, 2.0, 1.0], [2.0, 1.0, 0.5]) == 0.0
    with pytest.raises(ValueError, match="golden_curve"):
        th.hacking_gap([])
    with pytest.raises(ValueError, match="equal length"):
        th.proxy_drop_after_min([1.0, 2.0], [1.0])


def test_short_run_tracks_golden_and_proxy(world):
    oracle, teacher = world
    p, held = pool(world, 16), pool(world, 8, seed=9)
    student = build_lm(vocab_size=oracle.vocab_size, max_len=13, seed=1, **ARCH)
    tracker = th.Tracker(oracle, teacher, {"held": (held["tokens"], held["mask"])}, every=5)
    train(student, TokenKD(oracle.n_vocab), tracker.wrap(th.OfflineData(p, 8, seed=0), student), steps=20,
          lr=1e-2, optimizer="adamw", seed=0, progress=False)
    rows = tracker.finish(student, 20)
    assert [r["step"] for r in rows] == [0, 5, 10, 15, 20]
    assert rows[-1]["held_proxy"] < rows[0]["held_proxy"]  # distillation moved the student to the teacher
    # the last point is the trained student's metric, exactly
    assert rows[-1]["held_golden"] == pytest.approx(golden_token_kl(oracle, student, held["tokens"], held["mask"]))
    assert rows[-1]["held_proxy"] == pytest.approx(
        proxy_token_kl(teacher, student, held["tokens"], oracle.n_vocab, held["mask"]))
    assert np.isfinite(th.hacking_gap([r["held_golden"] for r in rows]))


def test_oracle_pool_is_the_oracle(world):
    oracle, _ = world
    p = th.oracle_pool(oracle, 5, prompt_len=4, response_len=8, seed=0)
    assert p["tokens"].shape == (5, 13) and p["teacher_logits"].shape == (5, 13, 16)
    assert torch.allclose(p["teacher_logits"], oracle.next_token_logprobs(p["tokens"]).float())
    tracker = th.Tracker(oracle, None, {"pool": (p["tokens"], p["mask"])}, every=1)
    assert set(tracker.record(build_lm(vocab_size=oracle.vocab_size, max_len=13, seed=0, **ARCH), 0)) == {
        "step", "pool_golden"}


def test_late_change_is_the_window_difference():
    steps, curve = [0, 50, 100, 150, 200], [1.0, 0.9, 0.95, 1.0, 1.2]
    assert th.late_change(curve, steps, 100) == pytest.approx(0.25)  # rose over the second half
    assert th.late_change(curve, steps, 200) == 0.0
    assert th.late_change([2.0, 1.5, 1.0], [0, 1, 2], 1) == pytest.approx(-0.5)  # a falling proxy: < 0
    with pytest.raises(ValueError):
        th.late_change(curve, steps, 75)  # not a recorded step
    with pytest.raises(ValueError):
        th.late_change(curve, steps[:-1], 100)
