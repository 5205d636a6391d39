"""Claims, statistics and the verdict rule; results files."""

import json
import math

import pytest

from kdlib import book, results


def test_summarize_matches_a_t_interval():
    s = results.summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert s["mean"] == 3.0 and s["n"] == 5
    assert s["std"] == pytest.approx(math.sqrt(2.5))
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)  # t_{0.975, 4}
    assert s["ci"] == pytest.approx([3.0 - half, 3.0 + half])


@pytest.mark.parametrize(
    "ci, direction, margin, expected",
    [
        ((0.5, 1.5), "greater", 0.0, results.REPRODUCED),
        ((-1.5, -0.5), "greater", 0.0, results.NOT_REPRODUCED),
        ((-0.5, 1.5), "greater", 0.0, results.INCONCLUSIVE),
        ((-1.5, -0.5), "less", 0.0, results.REPRODUCED),
        ((0.5, 1.5), "less", 0.0, results.NOT_REPRODUCED),
        ((-0.2, 0.3), "greater", 0.5, results.NOT_REPRODUCED),  # inside the equivalence margin
        ((-0.2, 0.8), "greater", 0.5, results.INCONCLUSIVE),
        ((math.nan, math.nan), "greater", 0.0, results.INCONCLUSIVE),
    ],
)
def test_verdict_rule(ci, direction, margin, expected):
    assert results.verdict(ci, direction, margin) == expected


def test_paired_claim_pairs_by_seed():
    a = [71.0, 72.0, 73.0, 74.0]
    b = [70.0, 71.2, 71.9, 73.1]  # a beats b on every seed, though their spreads overlap
    claim = results.paired_claim("x", "a beats b", "paper: +1", a, b, unit="points")
    assert claim["verdict"] == results.REPRODUCED
    assert claim["ours"]["mean"] == pytest.approx(0.95)
    assert claim["ours"]["n"] == 4
    one_sample = results.paired_claim("y", "above chance", "", [50, 60, 55], 10.0)
    assert one_sample["verdict"] == results.REPRODUCED


def test_single_seed_is_inconclusive():
    assert results.paired_claim("x", "", "", [2.0], [1.0])["verdict"] == results.INCONCLUSIVE


def test_save_and_load_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_RESULTS_DIR", str(tmp_path))
    claim = results.paired_claim("c", "text", "paper", [2.0, 2.1, 1.9], [0, 0, 0])
    path = results.save("demo", "smoke", {"lr": 0.1}, [0, 1, 2], [{"seed": 0, "acc": 1.5}], [claim], {"all": 1.0})
    assert path.parent.parent == tmp_path / "demo" and path.parent.name.startswith("smoke-")  # never book/
    res = results.read(path)
    assert res["claims"][0]["verdict"] == results.REPRODUCED
    assert res["params"] == {"lr": 0.1} and res["metrics"][0]["acc"] == 1.5
    prov = res["provenance"]
    assert {"git", "packages", "hardware", "durations", "created"} <= set(prov)
    assert "torch" in prov["packages"]
    assert results.load("demo", "paper", root=tmp_path) is None


def test_typed_verdicts_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_RESULTS_DIR", str(tmp_path))
    fake = {"id": "c", "verdict": "looks good"}
    with pytest.raises(ValueError, match="verdict"):
        results.save("demo", "smoke", {}, [0], [], [fake])


def _save_as(monkeypatch, root, key, profile, *args):
    monkeypatch.setenv("KDLIB_RESULTS_PATH", str(root / key / f"{profile}.json"))
    return results.save(key, profile, *args)


def test_scoreboard_lists_every_claim(tmp_path, monkeypatch):
    root = tmp_path / "_results"
    _save_as(monkeypatch, root, "alpha", "cpu", {}, [0, 1, 2], [], [results.paired_claim("c1", "alpha helps", "p", [2.0, 2.1, 1.9], 0)])
    _save_as(monkeypatch, root, "beta", "cpu", {}, [0, 1], [], [results.paired_claim("c2", "beta | helps", "p", [1, -2], 0)])
    _save_as(monkeypatch, root, "beta", "smoke", {}, [0, 1], [], [results.paired_claim("c3", "smoke only", "p", [1, 1], 0)])
    path = book.write_scoreboard(results_root=root, toc_keys=["alpha", "beta"])
    text = path.read_text()
    assert path == tmp_path / "scoreboard.md"
    assert "alpha helps" in text and "beta \\| helps" in text and "smoke only" not in text
    assert "**2 claims:** 1 reproduced, 0 not reproduced, 1 inconclusive." in text


def test_committed_scoreboard_is_generated_from_committed_results():
    from kdlib.repro import REPO_ROOT
    from kdlib.run import toc_keys

    expected = book.scoreboard_markdown(REPO_ROOT / "book" / "_results", toc_keys())
    assert (REPO_ROOT / "book" / "scoreboard.md").read_text() == expected


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
