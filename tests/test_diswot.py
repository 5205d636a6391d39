"""DisWOT: relation / semantic distances (zero at equality, scale invariance, brute force against the official
README's formulas), the K×K variant, the closed-form fc gradient against autograd, NASWOT on hand-made
activation codes, FLOPs of known models, the search space."""

import math

import pytest
import torch
import torch.nn.functional as F

from kdlib.experiments.diswot import (_features_and_fc_grad, build_candidate, class_similarity_distance, count_flops,
                                      count_params, diswot_score, naswot_kernel, naswot_score, relation_distance,
                                      search_space, semantic_distance)
from kdlib.models import CNN1D, MLP


def feats():
    g = torch.Generator().manual_seed(0)
    return torch.randn(12, 125, generator=g), torch.randn(12, 32, generator=g)


def test_relation_distance_zero_at_equality_and_positive_otherwise():
    t, s = feats()
    assert relation_distance(t, t).item() == pytest.approx(0.0, abs=1e-12)
    assert relation_distance(t, s).item() > 1e-3


def test_relation_distance_is_invariant_to_scaling_either_feature_map():
    t, s = feats()
    d = relation_distance(t, s).item()
    assert relation_distance(5.0 * t, s).item() == pytest.approx(d, rel=1e-5)
    assert relation_distance(t, 0.01 * s).item() == pytest.approx(d, rel=1e-5)
    assert relation_distance(t, 3.0 * t).item() == pytest.approx(0.0, abs=1e-12)


def test_relation_distance_matches_the_readme_by_loops():
    """README's batch_similarity: G = F Fᵀ, each row / its L2 norm, sum of squared differences / B²."""
    t, s = feats()
    b = t.shape[0]

    def norm_gram(f):
        g = [[float(f[i] @ f[j]) for j in range(b)] for i in range(b)]
        return [[v / math.sqrt(sum(w * w for w in row)) for v in row] for row in g]

    gt, gs = norm_gram(t), norm_gram(s)
    brute = sum((gt[i][j] - gs[i][j]) ** 2 for i in range(b) for j in range(b)) / b**2
    assert relation_distance(t, s).item() == pytest.approx(brute, rel=1e-5)


def test_golden_values_on_seeded_tensors():
    t, s = feats()
    assert relation_distance(t, s).item() == pytest.approx(0.0250106, rel=1e-4)
    g = torch.Generator().manual_seed(1)
    gt, gs = torch.randn(10, 125, generator=g), torch.randn(10, 16, generator=g)
    assert class_similarity_distance(gt, gs).item() == pytest.approx(0.0469166, rel=1e-4)


def test_relation_distance_rejects_mismatched_batches():
    t, s = feats()
    with pytest.raises(ValueError, match="batch sizes differ"):
        relation_distance(t, s[:5])


@pytest.mark.parametrize("distance", [class_similarity_distance, semantic_distance])
def test_semantic_distances_are_zero_at_equality_and_scale_free_at_any_widths(distance):
    g = torch.Generator().manual_seed(1)
    gt, gs = torch.randn(10, 125, generator=g), torch.randn(10, 16, generator=g)
    assert distance(gt, gt).item() == pytest.approx(0.0, abs=1e-12)
    assert distance(gt, gs).item() > 1e-3
    assert distance(2 * gt, gs).item() == pytest.approx(distance(gt, gs).item(), rel=1e-5)


def test_class_similarity_distance_rejects_mismatched_classes():
    g = torch.Generator().manual_seed(1)
    gt, gs = torch.randn(10, 125, generator=g), torch.randn(10, 16, generator=g)
    with pytest.raises(ValueError, match="gradients"):
        class_similarity_distance(gt, gs[:9])


def _readme_channel_similarity(f_t, f_s):
    """The official README's channel_similarity, by loops: per row k (class), the C×C matrix
    g_k g_kᵀ with each row divided by its L2 norm; squared differences summed, / (C·K)."""
    k, c = f_s.shape
    total = 0.0
    for r in range(k):
        mats = []
        for f in (f_t, f_s):
            m = [[float(f[r, i] * f[r, j]) for j in range(c)] for i in range(c)]
            mats.append([[v / max(math.sqrt(sum(w * w for w in row)), 1e-12) for v in row] for row in m])
        total += sum((mats[0][i][j] - mats[1][i][j]) ** 2 for i in range(c) for j in range(c))
    return total / (c * k)


def test_semantic_distance_is_the_readmes_channel_similarity_at_equal_widths():
    g = torch.Generator().manual_seed(2)
    gt, gs = torch.randn(10, 12, generator=g), torch.randn(10, 12, generator=g)
    assert semantic_distance(gt, gs).item() == pytest.approx(_readme_channel_similarity(gt, gs), rel=1e-5)
    # per class, norm(g gᵀ)[i, j] = sign(g_i) g_j / |g|: the distance is 2 − 2 (sign·sign)(ĝ_t·ĝ_s) / C per class, / K
    per_class = [2 * 12 - 2 * float((gt[r].sign() @ gs[r].sign()) * (F.normalize(gt[r], dim=0) @ F.normalize(gs[r], dim=0)))
                 for r in range(10)]
    assert semantic_distance(gt, gs).item() == pytest.approx(sum(per_class) / (12 * 10), rel=1e-5)


def test_semantic_distance_is_scale_free_in_the_student_and_pools_the_wider_gradient():
    g = torch.Generator().manual_seed(1)
    gt, gs = torch.randn(10, 125, generator=g), torch.randn(10, 16, generator=g)
    assert semantic_distance(gt, 0.1 * gs).item() == pytest.approx(semantic_distance(gt, gs).item(), rel=1e-5)
    # unequal widths: the wider side is averaged over consecutive channels to the narrower width
    wide = torch.randn(10, 48, generator=g)
    pooled = wide.reshape(10, 16, 3).mean(-1)
    assert semantic_distance(wide, gs).item() == pytest.approx(_readme_channel_similarity(pooled, gs), rel=1e-5)
    assert semantic_distance(gs, wide).item() == pytest.approx(semantic_distance(wide, gs).item(), rel=1e-6)
    assert semantic_distance(gt, gs).item() == pytest.approx(1.9042724, rel=1e-4)  # golden value (regression)
    with pytest.raises(ValueError, match="gradients"):
        semantic_distance(gt, gs[:9])


def test_the_kxk_variant_is_not_the_official_term():
    g = torch.Generator().manual_seed(3)
    gt, gs = torch.randn(10, 16, generator=g), torch.randn(10, 16, generator=g)
    assert semantic_distance(gt, gs).item() != pytest.approx(class_similarity_distance(gt, gs).item(), rel=1e-2)


def test_closed_form_fc_gradient_matches_autograd():
    model = build_candidate({"family": "mlp", "depth": 2, "width": 16}, seed=0)
    x, y = torch.randn(20, 40), torch.randint(0, 10, (20,))
    feat, grad = _features_and_fc_grad(model, x, y, "features")
    F.cross_entropy(model(x), y).backward()
    assert feat.shape == (20, 16)
    assert torch.allclose(grad, model.fc.weight.grad, atol=1e-6)


def test_diswot_score_is_minus_the_sum_and_leaves_the_models_alone():
    teacher = build_candidate({"family": "cnn1d", "width": 25}, seed=3)
    teacher.requires_grad_(False)  # like a zoo teacher
    student = build_candidate({"family": "mlp", "depth": 1, "width": 32}, seed=4)
    before = [p.clone() for p in student.parameters()]
    x, y = torch.randn(30, 40), torch.randint(0, 10, (30,))
    d = diswot_score(teacher, student, x, y)
    assert d["score"] == pytest.approx(-(d["relation"] + d["semantic"]))
    assert d["score_kxk"] == pytest.approx(-(d["relation"] + d["semantic_kxk"]))
    assert d["relation"] >= 0 and d["semantic"] >= 0 and d["semantic_kxk"] >= 0
    assert all(p.grad is None for p in student.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, student.parameters()))
    same = diswot_score(teacher, teacher, x, y)
    assert same["score"] == pytest.approx(0.0, abs=1e-10)


def test_naswot_kernel_on_known_codes():
    # three inputs, one layer of 4 units: codes 1100, 1100, 0011
    codes = [torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]])]
    k = naswot_kernel(codes)
    assert k.tolist() == [[4, 4, 0], [4, 4, 0], [0, 0, 4]]  # agreements = units − Hamming distance
    codes = [torch.tensor([[1, 0], [0, 1]]), torch.tensor([[1, 1, 1], [1, 1, 0]])]
    assert naswot_kernel(codes).tolist() == [[5, 2], [2, 5]]


def test_naswot_score_on_a_known_activation_pattern():
    # an MLP 2-2-10 whose first layer is the identity: the codes are the signs of the inputs
    model = MLP(in_dim=2, hidden=[2], num_classes=10)
    with torch.no_grad():
        model.features[0].weight.copy_(torch.eye(2))
        model.features[0].bias.zero_()
    x = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])  # codes 10 and 01: K = [[2, 0], [0, 2]]
    assert naswot_score(model, x) == pytest.approx(math.log(4.0))
    x = torch.tensor([[1.0, -1.0], [2.0, -3.0]])  # identical codes: K singular
    assert naswot_score(model, x) == float("-inf")


def test_count_flops_of_known_models():
    mlp = MLP(in_dim=40, hidden=[100, 50], num_classes=10)
    assert count_flops(mlp, (40,)) == 40 * 100 + 100 * 50 + 50 * 10
    # CNN1D, 40 -> 19 -> 10 -> 5 positions: 25*19*1*5 + 25*10*25*3 + 25*5*25*3 + 125*10
    assert count_flops(CNN1D(channels=25), (40,)) == 25 * 19 * 5 + 25 * 10 * 25 * 3 + 25 * 5 * 25 * 3 + 125 * 10
    assert count_params(mlp) == 40 * 100 + 100 + 100 * 50 + 50 + 50 * 10 + 10
    assert count_params(CNN1D()) == 5210  # the published ConvNet's count (kdlib.models.small)


def test_search_space_and_seeded_candidates():
    space = search_space([1, 2], [8, 16], [4])
    assert [c["name"] for c in space] == ["mlp-1x8", "mlp-1x16", "mlp-2x8", "mlp-2x16", "cnn-4"]
    for c in space:
        a, b = build_candidate(c, seed=7), build_candidate(c, seed=7)
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
        assert a(torch.randn(3, 40)).shape == (3, 10)
    assert build_candidate(space[2], seed=0).features[2].out_features == 8
    with pytest.raises(ValueError, match="family"):
        build_candidate({"family": "vit", "width": 1}, seed=0)


def test_short_run_of_the_scores_on_mnist1d_shapes():
    teacher = CNN1D()
    x, y = torch.randn(50, 40), torch.randint(0, 10, (50,))
    scores = [diswot_score(teacher, build_candidate(c, 0), x, y)["score"] for c in search_space([1], [8, 64], [4])]
    assert len(scores) == 3 and all(math.isfinite(s) and s <= 0 for s in scores)
