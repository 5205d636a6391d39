"""SKD's interleaved sampler: cached == a plain uncached loop; its K limits are on-policy and teacher
sampling exactly; the method trains."""

import pytest
import torch

from kdlib.lm.models import build_lm
from kdlib.lm.sampling import _draw, filter_logits, sample
from kdlib.lm.skd import SKD, in_top_k, interleaved_sample
from kdlib.lm.tokens import response_mask
from kdlib.train import train

V = 10  # content tokens; the models have 12 outputs (2 special tokens, never sampled)


def _lm(seed, scale):
    m = build_lm("gpt2", vocab_size=12, n_layer=1, n_embd=16, n_head=2, seed=seed).eval()
    with torch.no_grad():  # sharpen the random init so that the two models disagree visibly
        m.lm_head.weight.mul_(scale)
    return m


@pytest.fixture(scope="module")
def pair():
    return _lm(1, 4.0), _lm(2, 4.0)


def _prompts(n=16, p=3):
    return torch.randint(0, V, (n, p), generator=torch.Generator().manual_seed(5))


def reference_loop(student, teacher, prompts, n_new, top_k, generator):
    """The method written out plainly: no cache, one row at a time, one step at a time."""
    student_u = torch.rand(n_new, len(prompts), 1, generator=generator)
    teacher_u = torch.rand(n_new, len(prompts), 1, generator=generator)
    rows = []
    with torch.no_grad():
        for i, row in enumerate(prompts):
            seq = row[None].clone()
            for t in range(n_new):
                s = student(seq).logits[:, -1, :V].float()
                p = teacher(seq).logits[:, -1, :V].float()
                proposal = _draw(filter_logits(s), student_u[t, i:i + 1])
                rank = int((p[0] > p[0, proposal]).sum())  # tokens the teacher ranks strictly higher
                token = proposal if rank < top_k else _draw(filter_logits(p), teacher_u[t, i:i + 1])
                seq = torch.cat([seq, token[:, None]], 1)
            rows.append(seq)
    return torch.cat(rows)


@pytest.mark.parametrize("top_k", [1, 3, 0, V])
def test_cached_equals_uncached_and_the_plain_loop(pair, top_k):
    student, teacher = pair
    prompts = _prompts()
    runs = [interleaved_sample(student, teacher, prompts, 12, top_k, V, torch.Generator().manual_seed(7),
                               use_cache=c) for c in (True, False)]
    plain = reference_loop(student, teacher, prompts, 12, top_k, torch.Generator().manual_seed(7))
    assert runs[0].shape == (16, 15) and torch.equal(runs[0][:, :3], prompts)
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(runs[0], plain)
    assert runs[0].max() < V


def test_k_equal_vocabulary_is_on_policy_sampling(pair):
    student, teacher = pair
    prompts = _prompts()
    skd, accepted = interleaved_sample(student, teacher, prompts, 12, V, V, torch.Generator().manual_seed(3),
                                       return_accepted=True)
    on_policy = sample(student, prompts, 12, n_vocab=V, generator=torch.Generator().manual_seed(3))
    assert accepted.all()
    assert torch.equal(skd, on_policy)
    # and not teacher sampling: the two models differ, so the limit is not trivially met
    assert not torch.equal(skd, sample(teacher, prompts, 12, n_vocab=V, generator=torch.Generator().manual_seed(3)))


def test_k_zero_is_teacher_sampling(pair):
    student, teacher = pair
    prompts = _prompts()
    skd, accepted = interleaved_sample(student, teacher, prompts, 12, 0, V, torch.Generator().manual_seed(3),
                                       return_accepted=True)
    g = torch.Generator().manual_seed(3)
    torch.rand(12, len(prompts), 1, generator=g)  # the student's block of uniforms, drawn first
    assert not accepted.any()
    assert torch.equal(skd, sample(teacher, prompts, 12, n_vocab=V, generator=g))


def test_a_student_outside_the_top_k_is_always_replaced():
    """A student that always proposes the teacher's least likely token, K = 1: teacher sampling."""
    teacher = _lm(2, 4.0)

    class Contrarian(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(()))
            self.config = teacher.config

        def forward(self, ids, past_key_values=None, use_cache=False):
            out = teacher(ids, past_key_values=past_key_values, use_cache=use_cache)
            out.logits = -1e4 * out.logits  # all mass on the teacher's argmin
            return out

    prompts = _prompts()
    skd, accepted = interleaved_sample(Contrarian(), teacher, prompts, 8, 1, V, torch.Generator().manual_seed(4),
                                       return_accepted=True)
    g = torch.Generator().manual_seed(4)
    torch.rand(8, len(prompts), 1, generator=g)
    assert not accepted.any()
    assert torch.equal(skd, sample(teacher, prompts, 8, n_vocab=V, generator=g))


def test_in_top_k():
    logits = torch.tensor([[3.0, 2.0, 2.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    assert in_top_k(logits, torch.tensor([1, 1]), 1).tolist() == [False, False]
    assert in_top_k(logits, torch.tensor([2, 2]), 2).tolist() == [True, True]  # a tie with the 2nd is kept
    assert in_top_k(logits, torch.tensor([3, 0]), 3).tolist() == [False, False]
    assert in_top_k(logits, torch.tensor([3, 0]), 4).all() and not in_top_k(logits, torch.tensor([0, 3]), 0).any()
    with pytest.raises(ValueError, match="top_k"):
        interleaved_sample(_lm(1, 1.0), _lm(2, 1.0), _prompts(), 2, -1, V)


def test_skd_short_run_trains_and_only_the_student_moves(pair):
    student, teacher = _lm(1, 1.0).train(), pair[1]
    teacher_before = [p.clone() for p in teacher.parameters()]
    student_before = [p.clone() for p in student.parameters()]
    method = SKD(V, prompt_len=3, top_k=2)

    def data(step, generator):
        tokens = torch.randint(0, V, (8, 10), generator=generator)
        return {"tokens": tokens, "mask": response_mask(tokens, 3), "generator": generator}

    losses = train(student, method, data, teacher=teacher, steps=15, lr=1e-2, optimizer="adamw", seed=0,
                   progress=False)
    assert all(torch.equal(a, b) for a, b in zip(teacher_before, teacher.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(student_before, student.parameters()))
    assert len(method.acceptance) == 15 and all(0.0 <= a <= 1.0 for a in method.acceptance)
    terms = method(student, teacher, data(0, torch.Generator().manual_seed(0)))
    assert set(terms) == {"fkl"} and terms["fkl"].item() >= 0.0 and terms["fkl"].requires_grad
    assert losses is not None
