"""Claims, statistics and the verdict rule; results files."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from conftest import save_in
from kdlib import book, results


def claim(id, a, b=0.0, kind="paper", direction="greater", delta=0.5):
    return results.claim(id, f"claim {id}", "the paper says so", a, b, kind=kind, direction=direction, delta=delta,
                         delta_why="half the paper's gain", metric="test accuracy, A − B", unit="points",
                         delta_source="book", delta_rule="test-examples")


def test_summarize_matches_a_t_interval():
    s = results.summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert s["mean"] == 3.0 and s["n"] == 5
    assert s["std"] == pytest.approx(math.sqrt(2.5))
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)  # t_{0.975, 4}
    assert s["ci"] == pytest.approx([3.0 - half, 3.0 + half])


@pytest.mark.parametrize(
    "ci, direction, delta, expected, negligible",
    [
        ((0.5, 1.5), "greater", 0.1, results.REPRODUCED, False),
        ((-1.5, -0.5), "greater", 0.1, results.NOT_REPRODUCED, False),
        ((-0.5, 1.5), "greater", 0.1, results.INCONCLUSIVE, False),
        ((-1.5, -0.5), "less", 0.1, results.REPRODUCED, False),
        ((0.5, 1.5), "less", 0.1, results.NOT_REPRODUCED, False),
        ((-0.2, 0.3), "greater", 0.5, results.NOT_REPRODUCED, True),  # inside (-delta, delta): negligible
        ((-0.2, 0.8), "greater", 0.5, results.INCONCLUSIVE, False),
        ((-0.2, 0.3), "greater", None, results.INCONCLUSIVE, False),  # deprecated claims: no delta
        ((-0.2, 0.3), "equivalent", 0.5, results.REPRODUCED, False),
        ((0.6, 0.9), "equivalent", 0.5, results.NOT_REPRODUCED, False),  # wholly outside: |effect| >= delta
        ((-0.9, -0.5), "equivalent", 0.5, results.NOT_REPRODUCED, False),
        ((0.2, 0.7), "equivalent", 0.5, results.INCONCLUSIVE, False),
        ((math.nan, math.nan), "greater", 0.5, results.INCONCLUSIVE, False),
    ],
)
def test_verdict_rule(ci, direction, delta, expected, negligible):
    assert results.verdict(ci, direction, delta) == (expected, negligible)


def test_verdict_refuses_an_unknown_direction():
    with pytest.raises(ValueError, match="direction"):
        results.verdict((0, 1), "bigger", 0.5)


def test_claim_stores_raw_statistics_matching_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 8), rng.normal(0.5, 1.0, 8)
    c = claim("x", a, b)
    assert c["kind"] == "paper" and c["delta"] == 0.5 and c["metric"] == "test accuracy, A − B"
    assert c["ours"]["p"] == pytest.approx(stats.ttest_1samp(a - b, 0.0).pvalue)
    assert c["ours"]["ci"] == pytest.approx(list(stats.t.interval(0.95, 7, np.mean(a - b), stats.sem(a - b))))
    assert "verdict" not in c  # decided with the chapter's other claims, by `decide`
    d = rng.normal(0.1, 0.2, 8)
    eq = claim("e", d, direction="equivalent")
    tost = max(stats.ttest_1samp(d, -0.5, alternative="greater").pvalue,
               stats.ttest_1samp(d, 0.5, alternative="less").pvalue)
    assert eq["ours"]["p"] == pytest.approx(tost)


@pytest.mark.parametrize("kw, match", [
    ({"delta": 0}, "delta"), ({"delta": None}, "delta"), ({"delta": math.nan}, "delta"),
    ({"kind": "guess"}, "kind"), ({"direction": "up"}, "direction"), ({"delta_why": ""}, "delta_why"),
])
def test_claim_refuses_bad_protocol_fields(kw, match):
    args = dict(kind="paper", direction="greater", delta=0.5, delta_why="why", metric="m", delta_source="book",
                delta_rule="test-examples")
    with pytest.raises(ValueError, match=match):
        results.claim("x", "t", "p", [1.0, 2.0], 0.0, **{**args, **kw})


def test_holm_on_known_p_values():
    p_holm, alphas = results.holm_levels([0.01, 0.04, 0.03, 0.005])
    # by hand: sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, max(2*0.03, 1*0.04)
    assert p_holm == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # 0.005 <= 0.05/4 and 0.01 <= 0.05/3 are rejected; 0.03 > 0.05/2 stops Holm: 0.04 keeps 0.05/2
    assert alphas == pytest.approx([0.05 / 3, 0.025, 0.025, 0.0125])


def test_decide_intervals_agree_with_holm_adjusted_p():
    rng = np.random.default_rng(1)
    claims = [claim(f"c{i}", rng.normal(mu, 1.0, 10)) for i, mu in enumerate([2.0, 0.9, 0.7, 0.6, 0.0])]
    claims.append(claim("h", rng.normal(0.8, 1.0, 10), kind="hypothesis"))
    decided = {c["id"]: c for c in results.decide(claims)}
    paper = [decided[f"c{i}"] for i in range(5)]
    p_holm, alphas = results.holm_levels([c["p"] for c in paper])
    for c, ph, a in zip(paper, p_holm, alphas):
        assert c["p_holm"] == pytest.approx(ph) and c["level"] == pytest.approx(1 - a)
        lo, hi = c["ci_holm"]
        assert (lo > 0 or hi < 0) == (c["p_holm"] <= 0.05)
        se = c["ours"]["std"] / math.sqrt(10)
        assert c["ci_holm"] == pytest.approx(list(stats.t.interval(1 - a, 9, c["ours"]["mean"], se)))
    h = decided["h"]
    assert h["p_holm"] == h["p"] and h["level"] == pytest.approx(0.95)
    assert h["ci_holm"] == pytest.approx(h["ours"]["ci"])
    assert {c["verdict"] for c in paper} == {results.REPRODUCED, results.INCONCLUSIVE}
    assert claims[0].get("verdict") is None  # the input is not changed


@pytest.mark.parametrize("diffs, direction, delta, expected, negligible", [
    ([1.0, 1.2, 0.9, 1.1, 1.0], "greater", 0.5, results.REPRODUCED, False),
    ([-1.0, -1.2, -0.9, -1.1, -1.0], "greater", 0.5, results.NOT_REPRODUCED, False),
    ([0.01, -0.02, 0.0, 0.02, -0.01], "greater", 0.5, results.NOT_REPRODUCED, True),
    ([1.0, -1.2, 0.9, -1.1, 0.3], "greater", 0.5, results.INCONCLUSIVE, False),
    ([0.01, -0.02, 0.0, 0.02, -0.01], "equivalent", 0.5, results.REPRODUCED, False),
    ([1.0, 1.2, 0.9, 1.1, 1.0], "equivalent", 0.5, results.NOT_REPRODUCED, False),
    ([0.4, 0.6, 0.3, 0.7, 0.5], "equivalent", 0.5, results.INCONCLUSIVE, False),
])
def test_decided_verdicts(diffs, direction, delta, expected, negligible):
    c = results.decide([claim("x", diffs, direction=direction, delta=delta)])[0]
    assert (c["verdict"], c["negligible"]) == (expected, negligible)
    assert c["n"] == 5 and c["delta"] == delta and c["kind"] == "paper" and c["rule"]


def test_underpowered_when_the_interval_is_wider_than_delta():
    wide = results.decide([claim("w", [1.0, -1.2, 0.9, -1.1, 0.3], delta=0.5)])[0]
    assert wide["underpowered"] and "Underpowered" in wide["rule"]
    narrow = results.decide([claim("n", [1.0, 1.2, 0.9, 1.1, 1.0], delta=0.5)])[0]
    assert narrow["underpowered"] is False and "Underpowered" not in narrow["rule"]


def test_seeds_needed_matches_a_hand_computation():
    pilot = [1.0, 2.0, 3.0, 4.0, 5.0]  # s = sqrt(2.5)
    s = math.sqrt(2.5)
    s_up = s * math.sqrt(4 / 1.6487766180659264)  # chi2_{0.20, 4} = 1.6488: the 80 % upper bound of s
    assert results.spread_upper(s, 5) == pytest.approx(s_up)
    assert 2.0638985616280245 * s_up / math.sqrt(25) > 1.0  # t_{0.975, 24}: 25 seeds miss half-width 1
    assert 2.0595385527532972 * s_up / math.sqrt(26) <= 1.0  # t_{0.975, 25}: 26 seeds reach it
    assert results.seeds_needed(pilot, delta=2.0) == 26
    assert results.seeds_needed(pilot, delta=2.0, m=3) > 26  # Holm's strictest level needs more
    assert results.seeds_needed(pilot, delta=100.0) == 5  # n_min
    assert results.seeds_needed(pilot, delta=0.01, n_max=50) == 50
    assert "not reachable within 50 seeds" in results.power_line(pilot, 0.01, n_max=50)
    assert "26 seeds" in results.power_line(pilot, 2.0, unit="points")


def test_seeds_needed_is_monotone_in_delta():
    pilot = [0.3, -0.4, 1.1, 0.2, 0.9, -0.1]
    needs = [results.seeds_needed(pilot, d, m=2) for d in (0.2, 0.3, 0.5, 0.8, 1.3, 2.0)]
    assert needs == sorted(needs, reverse=True) and needs[0] > needs[-1]
    assert results.plan_seeds({"a": pilot, "b": [1.0, 1.1]}, {"a": 0.5, "b": 0.5}, m=2) == \
        results.seeds_needed(pilot, 0.5, m=2)
    with pytest.raises(ValueError, match="pilot"):
        results.seeds_needed([1.0], 0.5)


def test_pilot_seeds_are_never_reused(tmp_path, monkeypatch):
    root = tmp_path
    pilot = results.pilot_record([100, 101, 102], {"c": [1.0, 1.4, 0.8]}, {"c": 0.5}, m=1, units={"c": "points"})
    c = claim("c", [2.0, 2.1, 1.9, 2.2, 2.0])
    with pytest.raises(ValueError, match=r"reuse pilot seeds \[101\]"):
        save_in(root, "demo", "smoke", {}, [0, 1, 101, 3, 4], [], [c], pilot=pilot)
    save_in(root, "demo", "smoke", {}, [0, 1, 2, 3, 4], [], [c], pilot=pilot)
    saved = results.load("demo", "smoke", root)["pilot"]
    assert saved["seeds"] == [100, 101, 102] and saved["n"] == saved["n_needed"]["c"] >= 5
    assert "points" in saved["lines"]["c"]


def test_save_refuses_a_claim_without_delta_or_kind(tmp_path, monkeypatch):
    root = tmp_path
    for field in ("delta", "kind"):
        c = claim("c", [2.0, 2.1, 1.9])
        del c[field]
        with pytest.raises(ValueError, match="kind and delta are required"):
            save_in(root, "demo", "smoke", {}, [0, 1, 2], [], [c])
    with pytest.raises(ValueError, match="duplicate"):
        save_in(root, "demo", "smoke", {}, [0, 1, 2], [], [claim("c", [1, 2, 3]), claim("c", [1, 2, 3])])


def test_save_writes_the_decided_protocol_fields(tmp_path, monkeypatch):
    root = tmp_path
    claims = [claim("a", [2.0, 2.1, 1.9, 2.2]), claim("b", [0.1, -0.2, 0.3, 0.0]),
              claim("h", [0.0, 0.1, -0.1, 0.05], kind="hypothesis", direction="equivalent")]
    save_in(root, "demo", "cpu", {}, [0, 1, 2, 3], [], claims)
    saved = {c["id"]: c for c in results.load("demo", "cpu", root)["claims"]}
    for c in saved.values():
        assert {"kind", "delta", "delta_why", "p", "p_holm", "ci_holm", "level", "n", "verdict", "negligible",
                "underpowered", "rule", "metric"} <= set(c)
    assert saved["a"]["p_holm"] == pytest.approx(min(1.0, 2 * saved["a"]["p"]))  # the smaller p of m = 2
    assert saved["h"]["p_holm"] == saved["h"]["p"] and saved["h"]["level"] == pytest.approx(0.90)


def test_paired_claim_pairs_by_seed():
    a = [71.0, 72.0, 73.0, 74.0]
    b = [70.0, 71.2, 71.9, 73.1]  # a beats b on every seed, though their spreads overlap
    claim = results.paired_claim("x", "a beats b", "paper: +1", a, b, unit="points")
    assert claim["verdict"] == results.REPRODUCED
    assert claim["ours"]["mean"] == pytest.approx(0.95)
    assert claim["ours"]["n"] == 4
    one_sample = results.paired_claim("y", "above chance", "", [50, 60, 55], 10.0)
    assert one_sample["verdict"] == results.REPRODUCED
    assert claim["kind"] == "paper" and claim["delta"] is None and claim["deprecated"]
    assert results.paired_claim("z", "", "", [0.1, -0.1, 0.0], 0.0, margin=0.5)["negligible"]


def test_single_seed_is_inconclusive():
    assert results.paired_claim("x", "", "", [2.0], [1.0])["verdict"] == results.INCONCLUSIVE


def test_save_and_load_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_RESULTS_DIR", str(tmp_path))
    claim = results.paired_claim("c", "text", "paper", [2.0, 2.1, 1.9], [0, 0, 0])
    path = results.save("demo", "smoke", [0, 1, 2], [{"seed": 0, "acc": 1.5}], [claim], {"all": 1.0}, params={"lr": 0.1})
    assert path.parent.parent == tmp_path / "demo" and path.parent.name.startswith("smoke-")  # never book/
    res = results.read(path)
    assert res["claims"][0]["verdict"] == results.REPRODUCED
    assert res["params"] == {"lr": 0.1} and res["metrics"][0]["acc"] == 1.5
    prov = res["provenance"]
    assert {"git", "packages", "hardware", "durations", "created"} <= set(prov)
    assert "torch" in prov["packages"]
    assert results.load("demo", "paper", root=tmp_path) is None


def test_typed_verdicts_are_refused(tmp_path, monkeypatch):
    root = tmp_path
    fake = {"id": "c", "verdict": "looks good"}
    with pytest.raises(ValueError, match="never typed"):
        save_in(root, "demo", "smoke", {}, [0], [], [fake])
    # a computed claim whose verdict was overwritten by hand is decided again on save
    c = dict(claim("c", [2.0, 2.1, 1.9]), verdict="not reproduced")
    path = save_in(root, "demo", "smoke", {}, [0, 1, 2], [], [c])
    assert results.read(path)["claims"][0]["verdict"] == results.REPRODUCED


def test_committed_results_files_are_well_formed():
    from kdlib.repro import REPO_ROOT

    files = sorted((REPO_ROOT / "book" / "_results").glob("*/cpu.json"))
    assert files, "no committed cpu-profile results"
    for path in files:
        res = json.loads(path.read_text())
        assert {"params", "seeds", "metrics", "claims", "provenance"} <= set(res), path
        assert len(res["seeds"]) >= 3, path
        for claim in res["claims"]:
            assert claim["verdict"] in results.VERDICTS
            assert claim["ours"]["n"] >= 3 and claim["rule"]


def test_seed_plan_takes_what_the_pilot_asks_within_the_budget(capsys):
    from kdlib import prereg

    assert prereg.seed_plan({"n": 7}, 5, 20) == list(range(7))
    assert prereg.seed_plan({"n": 2}, 5, 20) == list(range(5))  # at least min_seeds
    assert prereg.seed_plan({"n": 90}, 5, 20) == list(range(20))  # the budget caps it, and says so
    assert "capped by seeds = 20" in capsys.readouterr().out.splitlines()[-1]


# --------------------------------------------------------------------------- protocol v2


def test_negligible_is_tested_before_reproduced():
    # selfdistill_krr's old case: the whole interval [−0.163, −0.075] inside ±1 was called reproduced
    assert results.verdict([-0.163, -0.075], "less", 1.0) == (results.NOT_REPRODUCED, True)
    assert results.verdict([0.2, 0.4], "greater", 0.5) == (results.NOT_REPRODUCED, True)
    assert results.verdict([0.2, 0.6], "greater", 0.5) == (results.REPRODUCED, False)  # excludes 0, not inside ±δ
    assert results.verdict([-0.6, -0.2], "greater", 0.5) == (results.NOT_REPRODUCED, False)
    assert results.verdict([-0.2, 0.6], "greater", 0.5) == (results.INCONCLUSIVE, False)


def test_delta_source_is_required_and_a_paper_delta_is_bounded_by_the_paper():
    args = dict(kind="paper", direction="greater", delta=0.5, delta_why="why", metric="m")
    results.claim("p", "t", "p", [1.0, 2.0], 0.0, **args, delta_source="paper", paper_effect=0.72)
    with pytest.raises(ValueError, match="exceeds the paper's verified effect 0.4"):
        results.claim("p", "t", "p", [1.0, 2.0], 0.0, **args, delta_source="paper", paper_effect=0.4)
    with pytest.raises(ValueError, match="needs paper_effect"):
        results.claim("p", "t", "p", [1.0, 2.0], 0.0, **args, delta_source="paper")
    with pytest.raises(ValueError, match="needs delta_rule, one of test-examples"):
        results.claim("p", "t", "p", [1.0, 2.0], 0.0, **args, delta_source="book", delta_rule="my taste")
    unsourced = results.claim("p", "t", "p", [1.0, 2.0], 0.0, **args)
    with pytest.raises(ValueError, match="delta_source must be 'paper'"):
        save_in(Path("/nonexistent"), "demo", "cpu", {}, [0, 1], [], [unsourced])


def test_prereg_claim_checks_its_delta_source_when_written():
    from kdlib import prereg

    prereg.Claim("c", "t", "p", a="A", b="B", delta=0.5, delta_why="w", delta_source="book", delta_rule="nats")
    with pytest.raises(ValueError, match="claim 'c': delta_source"):
        prereg.Claim("c", "t", "p", a="A", b="B", delta=0.5, delta_why="w")


def test_all_equal_differences_are_refused_unless_exact(tmp_path):
    tied = claim("tied", [0.0, 0.0, 0.0, 0.0])  # diswot's old [0, 0] "negligible"
    with pytest.raises(ValueError, match="every seed gives the same paired difference"):
        save_in(tmp_path, "demo", "cpu", {}, [0, 1, 2, 3], [], [tied])
    save_in(tmp_path, "demo", "smoke", {}, [0, 1, 2, 3], [], [tied])  # tiny smoke runs may tie by chance
    exact = results.claim("e", "t", "p", [0.3], 0.0, kind="paper", direction="greater", delta=0.1, delta_why="w",
                          metric="m", delta_source="book", delta_rule="fraction-of-scale", exact=True)
    save_in(tmp_path, "demo", "cpu", {}, [0], [], [exact])
    saved = results.load("demo", "cpu", tmp_path)["claims"][0]
    assert saved["exact"] and saved["ci_holm"] == [0.3, 0.3] and saved["verdict"] == results.REPRODUCED


def test_a_pilot_needs_four_seeds(tmp_path):
    c = claim("c", [2.0, 2.1, 1.9, 2.2, 2.0])
    small = results.pilot_record([100, 101, 102], {"c": [1.0, 1.4, 0.8]}, {"c": 0.5}, m=1)
    with pytest.raises(ValueError, match="a pilot needs at least 4"):
        save_in(tmp_path, "demo", "cpu", {}, [0, 1, 2, 3, 4], [], [c], pilot=small)
    enough = results.pilot_record([100, 101, 102, 103], {"c": [1.0, 1.4, 0.8, 1.1]}, {"c": 0.5}, m=1)
    save_in(tmp_path, "demo", "cpu", {}, [0, 1, 2, 3, 4], [], [c], pilot=enough)
    assert "80% upper bound" in enough["lines"]["c"]
