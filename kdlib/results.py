"""Results files, claims, the statistical protocol and its verdicts.

Every chapter run writes ``book/_results/<key>/<profile>.json``::

    {"key", "profile", "params", "seeds",
     "metrics":  [ {"seed": 0, "method": "kd", "acc": 91.2, ...}, ... ],   # tidy, one row per run
     "claims":   [ {"id", "text", "paper", "kind", "direction", "metric", "unit", "delta", "delta_why",
                    "ours": {mean, std, n, p, ci, unit, what},
                    "p", "p_holm", "level", "ci_holm", "n", "verdict", "negligible", "underpowered", "rule"} ],
     "pilot":    {"seeds", "diffs", "deltas", "m", "n_needed", "n", "lines"}   # when the chapter ran one
     "provenance": {git, packages, hardware, durations, input_hash, created}}

The protocol (book/conventions.md): `claim` computes the raw statistics of one claim from its
per-seed paired differences; `decide` (called by `save`) Holm-adjusts the chapter's `paper`
claims and derives each verdict from its interval. A verdict is never typed.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
from scipy import stats

from . import chapters, repro
from .paths import envelope  # noqa: F401  (the runner's part of a results file; re-exported)
from .repro import atomic_write_bytes

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
KINDS = ("paper", "hypothesis")
DIRECTIONS = ("greater", "less", "equivalent")
ALPHA = 0.05  # family-wise error rate of a chapter's paper claims
CONFIDENCE = 1 - ALPHA
RULE = (
    "95% t-interval of the per-seed paired difference (ours minus baseline): "
    "reproduced if it lies wholly on the paper's side of 0; not reproduced if it lies wholly "
    "on the other side, or wholly inside the stated margin of practical equivalence; otherwise inconclusive"
)  # the rule of the deprecated `paired_claim` when judged alone; kept for old results files


def results_dir() -> Path:
    """The book's results: book/_results of this repository (runs outside the book: `kdlib.chapters`)."""
    return repro.REPO_ROOT / "book" / "_results"


def summarize(values, confidence: float = CONFIDENCE) -> dict:
    """Mean, sample std, t-interval and n of a list of per-seed values."""
    v = np.asarray(values, dtype=float)
    n = int(v.size)
    mean = float(v.mean()) if n else math.nan
    if n < 2:
        return {"mean": mean, "std": math.nan, "ci": [math.nan, math.nan], "n": n}
    std = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci": [mean - half, mean + half], "n": n}


def _interval(ours: dict, level: float) -> list[float]:
    """The two-sided t-interval at `level` of a claim's mean paired difference."""
    n, mean, std = ours["n"], ours["mean"], ours["std"]
    if std == 0:  # every seed gave the same difference (an `exact` claim): the interval is that value
        return [mean, mean]
    if n < 2 or std is None or math.isnan(std):
        return [math.nan, math.nan]
    half = float(stats.t.ppf(0.5 + level / 2, df=n - 1)) * std / math.sqrt(n)
    return [mean - half, mean + half]


def _p_value(ours: dict, direction: str, delta) -> float:
    """Two-sided t-test of mean = 0; for 'equivalent', the TOST p (max of the two one-sided p)."""
    n, mean, std = ours["n"], ours["mean"], ours["std"]
    if std != 0 and (n < 2 or math.isnan(std)):
        return math.nan
    se = std / math.sqrt(n)
    if direction == "equivalent":
        if se == 0:
            return 0.0 if abs(mean) < delta else 1.0
        p_low = float(stats.t.sf((mean + delta) / se, df=n - 1))  # H0: mean <= -delta
        p_high = float(stats.t.cdf((mean - delta) / se, df=n - 1))  # H0: mean >= +delta
        return max(p_low, p_high)
    if se == 0:  # every seed gave the same difference
        return 0.0 if mean != 0 else 1.0
    return float(2 * stats.t.sf(abs(mean) / se, df=n - 1))


DELTA_SOURCES = ("paper", "book")
# The book's rules for a delta that no verified paper effect bounds (book/conventions.md lists them):
# a claim with delta_source="book" names one of these as delta_rule and states its numbers in delta_why.
DELTA_RULES = {
    "test-examples": "a number of test examples the prediction must change on: k of MNIST-1D's 1,000 test "
                     "signals is k/10 points; 5 (0.5 points) for one comparison, 10 (1 point) for a "
                     "method-level gain or a margin a user would notice",
    "nats": "a per-token (or per-character) likelihood ratio e^delta: 0.02 nats is 2 %, about 1 % of the "
            "oracle world's entropy rate; 0.01 in a world whose distances are that fine",
    "fraction-of-scale": "a stated fraction of the quantity's own scale: its range, its grid step, the gap "
                         "between the two outcomes the claim tells apart, or a baseline's value",
    "relative-cost": "a relative saving of time or memory below which no one would choose a method for its cost",
    "correlation": "Cohen's conventions for a correlation coefficient: 0.1 small, 0.3 medium, 0.5 large",
    "calibration": "points of expected calibration error (15 bins), against the spread of one method's seeds",
}


def _check_delta_source(id, delta, delta_source, paper_effect, delta_rule):
    if delta_source not in DELTA_SOURCES:
        raise ValueError(f"claim {id!r}: delta_source must be 'paper' (with paper_effect) or 'book' "
                         f"(with delta_rule), got {delta_source!r}")
    if delta_source == "paper":
        if not (isinstance(paper_effect, (int, float, np.number)) and math.isfinite(paper_effect) and paper_effect > 0):
            raise ValueError(f"claim {id!r}: delta_source='paper' needs paper_effect, the smallest verified effect "
                             f"of this comparison in the paper (> 0, in the metric's unit), got {paper_effect!r}")
        if delta > paper_effect:
            raise ValueError(f"claim {id!r}: delta {delta:g} exceeds the paper's verified effect {paper_effect:g}; "
                             "a paper-sourced delta never does")
    elif delta_rule not in DELTA_RULES:
        raise ValueError(f"claim {id!r}: delta_source='book' needs delta_rule, one of {', '.join(DELTA_RULES)}; "
                         f"got {delta_rule!r}")


def _check(id, kind, direction, delta, delta_why):
    if kind not in KINDS:
        raise ValueError(f"claim {id!r}: kind must be 'paper' or 'hypothesis', got {kind!r}")
    if direction not in DIRECTIONS:
        raise ValueError(f"claim {id!r}: direction must be one of {DIRECTIONS}, got {direction!r}")
    if delta is None or not (isinstance(delta, (int, float, np.number)) and math.isfinite(delta) and delta > 0):
        raise ValueError(f"claim {id!r}: delta (smallest effect of interest) must be a number > 0, got {delta!r}")
    if not str(delta_why or "").strip():
        raise ValueError(f"claim {id!r}: delta_why must justify delta in one line")


def claim(id, text, paper, a, b, *, kind, direction, delta, delta_why, metric, unit="", delta_source=None,
          paper_effect=None, delta_rule=None, exact=False) -> dict:
    """One claim and the raw statistics of its per-seed paired differences ``a - b``.

    text: the claim, self-contained ("DKD (β=8) beats KD (T=4) on test accuracy").
    paper: what the paper reports, as text.
    a, b: per-seed values, paired by seed (same index = same seed); `b` may be a scalar.
    kind: 'paper' (the paper says it) or 'hypothesis' (the book's own).
    direction: 'greater' (a > b), 'less' (a < b) or 'equivalent' (|a - b| < delta).
    delta: smallest effect of interest, in the metric's unit, > 0, fixed before the confirmatory run.
    delta_why: one line justifying delta (never larger than the paper's own reported effect).
    metric: what is differenced, e.g. 'test accuracy, DKD − KD'.
    delta_source: 'paper' (delta is bounded by `paper_effect`, the smallest verified effect of this
        comparison in the paper, cited in delta_why) or 'book' (`delta_rule` names one of DELTA_RULES).
        Required by `save`; None only for old results files.
    exact: the difference is a deterministic quantity (the same for every seed); `save` refuses
        a claim whose paired differences are all equal unless it is declared exact.

    Returns the claim with ``ours = {mean, std, n, p, ci, unit, what}``: p is the two-sided t-test
    of mean = 0 (for 'equivalent', the TOST p against ±delta) and ci the raw 95 % interval. The
    verdict is added by `decide`, over all the claims of the chapter (`save` calls it).
    """
    _check(id, kind, direction, delta, delta_why)
    if delta_source is not None:
        _check_delta_source(id, float(delta), delta_source, paper_effect, delta_rule)
    a = np.asarray(a, dtype=float).ravel()
    if a.size == 0:
        raise ValueError(f"claim {id!r}: no values")
    try:
        b = np.broadcast_to(np.asarray(b, dtype=float), a.shape)
    except ValueError:
        raise ValueError(f"claim {id!r}: a has {a.size} values but b has shape {np.shape(b)}") from None
    d = a - b
    ours = summarize(d)
    if exact and d.size == 1:  # one deterministic value: its interval is the value itself
        ours.update(std=0.0, ci=[ours["mean"], ours["mean"]])
    ours["p"] = _p_value(ours, direction, float(delta))
    ours.update(unit=unit, what=metric)
    out = {"id": id, "text": text, "paper": paper, "kind": kind, "direction": direction, "metric": metric,
           "unit": unit, "delta": float(delta), "delta_why": delta_why, "ours": ours,
           "all_equal": bool(d.size >= 2 and np.all(d == d[0]))}
    if delta_source is not None:
        out.update(delta_source=delta_source, paper_effect=None if paper_effect is None else float(paper_effect),
                   delta_rule=delta_rule)
    if exact:
        out["exact"] = True
    return out


def paired_claim(id, text, paper, a, b, direction="greater", unit="", margin=0.0, what=None) -> dict:
    """Deprecated: use `claim` (kind, delta and delta_why are required there).

    A 'paper' claim that `a` beats `b` (per-seed values, paired by seed), judged alone; `save`
    re-judges it with the chapter's other claims. `margin` becomes delta when given; otherwise
    delta is None ("not fixed"), so the claim can be neither negligible nor underpowered.
    """
    if direction not in ("greater", "less"):
        raise ValueError(f"claim {id!r}: direction must be 'greater' or 'less', got {direction!r}")
    c = claim(id, text, paper, a, b, kind="paper", direction=direction, delta=margin or 1.0,
              delta_why="-", metric=what or "paired difference over seeds", unit=unit)
    if not margin:
        c["delta"] = None
    c["delta_why"] = "not fixed: made with the deprecated results.paired_claim"
    c["deprecated"] = True
    return decide([c])[0]


def verdict(ci, direction: str, delta=None) -> tuple[str, bool]:
    """The verdict of an interval `ci` of (a - b) and whether it is 'negligible'.

    'greater'/'less', in this order (protocol v2): not reproduced (negligible) if `ci` lies inside
    (-delta, +delta), whatever its sign; reproduced if it excludes 0 on the paper's side; not
    reproduced if it excludes 0 on the other side; else inconclusive.
    'equivalent': reproduced if `ci` lies inside (-delta, +delta); not reproduced if it lies wholly
    outside it (|effect| >= delta); else inconclusive.
    """
    lo, hi = ci
    if direction not in DIRECTIONS:
        raise ValueError(f"verdict: direction must be one of {DIRECTIONS}, got {direction!r}")
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return INCONCLUSIVE, False
    if direction == "equivalent":
        if -delta < lo and hi < delta:
            return REPRODUCED, False
        if lo >= delta or hi <= -delta:
            return NOT_REPRODUCED, False
        return INCONCLUSIVE, False
    if direction == "less":
        lo, hi = -hi, -lo
    if delta and -delta < lo and hi < delta:  # tested first: an effect inside ±delta is negligible, whatever its sign
        return NOT_REPRODUCED, True
    if lo > 0:
        return REPRODUCED, False
    if hi < 0:
        return NOT_REPRODUCED, False
    return INCONCLUSIVE, False


def holm_levels(pvalues, alpha: float = ALPHA) -> tuple[list[float], list[float]]:
    """Holm-adjusted p-values and the per-claim alpha of Holm's step-down, in input order.

    The claim with the k-th smallest p among m gets alpha/(m - k + 1). Holm stops at the first
    claim it cannot reject: that claim and every later one keep its alpha, so a claim's interval
    at level 1 - alpha_k excludes the null exactly when p_holm <= alpha. NaN p counts as 1.
    """
    p = np.array([1.0 if (x is None or math.isnan(x)) else float(x) for x in pvalues])
    m = len(p)
    order = np.argsort(p, kind="stable")
    p_holm, alphas = np.empty(m), np.empty(m)
    running, stopped = 0.0, None
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        p_holm[i] = running
        step = alpha / (m - k)
        if stopped is None and p[i] > step:
            stopped = step
        alphas[i] = stopped if stopped is not None else step
    return p_holm.tolist(), alphas.tolist()


def decide(claims, alpha: float = ALPHA) -> list[dict]:
    """The verdicts of one chapter's claims (new dicts; the input is not changed).

    `paper` claims are Holm-adjusted together: the claim with the k-th smallest p among the m
    paper claims is judged on its interval at level 1 - alpha/(m - k + 1) (two-sided t; for an
    'equivalent' claim the TOST interval, level 1 - 2·alpha_k), and once Holm stops, later claims
    keep the level where it stopped. `hypothesis` claims use the plain 95 % interval (TOST: 90 %)
    and p_holm = p. A claim is `underpowered` when the half-width of its interval exceeds delta.
    """
    claims = [dict(c, ours=dict(c["ours"])) for c in claims]
    paper = [c for c in claims if c.get("kind", "paper") == "paper"]
    p_holm, alphas = holm_levels([c["ours"].get("p", math.nan) for c in paper], alpha)
    adjusted = {id(c): (ph, a) for c, ph, a in zip(paper, p_holm, alphas)}
    for c in claims:
        o, delta, direction = c["ours"], c.get("delta"), c.get("direction", "greater")
        p = o.get("p", math.nan)
        ph, a = adjusted.get(id(c), (p, alpha))
        level = 1 - 2 * a if direction == "equivalent" else 1 - a
        ci = _interval(o, level)
        v, negligible = verdict(ci, direction, delta)
        half = (ci[1] - ci[0]) / 2
        underpowered = None if not delta else bool(math.isnan(half) or half > delta)
        tests = "TOST interval" if direction == "equivalent" else "t-interval"
        held = "Holm-adjusted over the chapter's paper claims" if id(c) in adjusted else "unadjusted"
        rule = f"{level:.1%} {tests} of the per-seed paired difference ({held}); "
        if direction == "equivalent":
            rule += f"reproduced if it lies inside ±{delta:g}; not reproduced if wholly outside"
        else:
            if delta:
                rule += f"not reproduced (negligible) if it lies inside ±{delta:g}; else "
            rule += f"reproduced if it lies {'above' if direction == 'greater' else 'below'} 0; "
            rule += "not reproduced if on the other side"
        rule += "; otherwise inconclusive."
        if underpowered:
            rule += f" Underpowered: half-width {half:.3g} > delta {delta:g}, too few seeds to decide every outcome."
        c.update(p=p, p_holm=ph, level=level, ci_holm=ci, n=o["n"], verdict=v, negligible=negligible,
                 underpowered=underpowered, rule=rule)
    return claims


# --------------------------------------------------------------------------- power by design


PILOT_MIN_SEEDS = 4  # protocol v2: a pilot of fewer seeds cannot estimate a spread worth planning on
SPREAD_BOUND = 0.80  # plan from this one-sided upper confidence bound of the pilot's std


def _pilot_std(pilot_diffs) -> tuple[float, int]:
    d = np.asarray(pilot_diffs, dtype=float).ravel()
    if d.size < 2:
        raise ValueError(f"pilot_diffs: need at least 2 pilot seeds, got {d.size}")
    return float(d.std(ddof=1)), int(d.size)


def spread_upper(s: float, n: int, bound: float = SPREAD_BOUND) -> float:
    """The one-sided `bound` upper confidence limit of a std s measured on n seeds:
    s · sqrt((n − 1) / χ²_{1−bound, n−1}) (a pilot's s underestimates the spread more often than not)."""
    return float(s * math.sqrt((n - 1) / stats.chi2.ppf(1 - bound, df=n - 1)))


def seeds_needed(pilot_diffs, delta, m=1, target=None, n_min=5, n_max=200) -> int:
    """Smallest n in [n_min, n_max] with t_{n-1, 1-α'/2} · s_up / √n ≤ target.

    s_up is the 80 % upper confidence bound of the pilot's sample std of the paired differences
    (`spread_upper`), α' = 0.05/m (Holm's strictest level over m paper claims) and target
    defaults to delta/2. Returns n_max when even n_max misses the target (`power_line` says so).
    """
    if not (delta and delta > 0):
        raise ValueError(f"seeds_needed: delta must be > 0, got {delta!r}")
    s = spread_upper(*_pilot_std(pilot_diffs))
    target = delta / 2 if target is None else target
    a = ALPHA / m
    for n in range(max(n_min, 2), n_max + 1):
        if stats.t.ppf(1 - a / 2, df=n - 1) * s / math.sqrt(n) <= target:
            return n
    return n_max


def power_line(pilot_diffs, delta, m=1, target=None, n_min=5, n_max=200, unit="") -> str:
    """One line a chapter can print: the pilot's spread and the seeds it asks for."""
    s, n_pilot = _pilot_std(pilot_diffs)
    s_up = spread_upper(s, n_pilot)
    target = delta / 2 if target is None else target
    n = seeds_needed(pilot_diffs, delta, m, target, n_min, n_max)
    u = f" {unit}" if unit else ""
    half = stats.t.ppf(1 - ALPHA / m / 2, df=n - 1) * s_up / math.sqrt(n)
    line = (f"pilot: s = {s:.3g}{u} over {n_pilot} seeds ({SPREAD_BOUND:.0%} upper bound {s_up:.3g}{u}); "
            f"delta = {delta:g}{u}; at level {1 - ALPHA / m:.1%} (m = {m}) {n} seeds give an expected "
            f"half-width of at most {half:.3g}{u}")
    if half > target:
        return line + f", above the target {target:.3g}{u}: not reachable within {n_max} seeds."
    return line + f" ≤ {target:.3g}{u}."


def plan_seeds(pilot: dict, deltas: dict, m: int, target=None, n_min=5, n_max=200) -> int:
    """Seeds for the confirmatory run: the largest `seeds_needed` over the claims of `pilot`.

    pilot: claim id -> that claim's pilot paired differences; deltas: claim id -> delta.
    """
    missing = sorted(set(pilot) - set(deltas))
    if missing:
        raise ValueError(f"plan_seeds: no delta for claim(s) {', '.join(missing)}")
    return max(seeds_needed(d, deltas[k], m, target, n_min, n_max) for k, d in pilot.items())


def pilot_record(seeds, diffs: dict, deltas: dict, m: int, units=None, target=None, n_min=5, n_max=200) -> dict:
    """The `pilot` entry of a results file: its seeds, diffs, and the seeds each claim needs."""
    units = units or {}
    missing = sorted(set(diffs) - set(deltas))
    if missing:
        raise ValueError(f"pilot_record: no delta for claim(s) {', '.join(missing)}")
    n_needed = {k: seeds_needed(d, deltas[k], m, target, n_min, n_max) for k, d in diffs.items()}
    return {"seeds": [int(s) for s in seeds], "diffs": {k: list(map(float, d)) for k, d in diffs.items()},
            "deltas": dict(deltas), "m": m, "n_needed": n_needed, "n": max(n_needed.values()),
            "spread_bound": SPREAD_BOUND,
            "lines": {k: power_line(d, deltas[k], m, target, n_min, n_max, units.get(k, "")) for k, d in diffs.items()}}


def check_pilot(pilot_seeds, seeds) -> None:
    """Refuse confirmatory seeds that the pilot already used (a pilot seed is never reused)."""
    reused = sorted(set(int(s) for s in pilot_seeds) & set(int(s) for s in seeds))
    if reused:
        raise ValueError(f"seeds: confirmatory seeds reuse pilot seeds {reused}; choose seeds the pilot never used")


# --------------------------------------------------------------------------- results files


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if math.isnan(float(obj)) else float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:  # 0-d tensors
        return obj.item()
    return obj


def _check_saved_claim(c: dict, profile: str) -> None:
    cid = c.get("id")
    if not isinstance(c.get("ours"), dict) or not {"mean", "std", "n", "p"} <= set(c["ours"]):
        raise ValueError(f"claim {cid!r}: build it with kdlib.results.claim (verdicts are computed, never typed)")
    if c.get("deprecated"):
        return
    if c.get("kind") is None or c.get("delta") is None:
        raise ValueError(f"claim {cid!r}: kind and delta are required (kdlib.results.claim); no verdict without them")
    _check(cid, c["kind"], c.get("direction"), c["delta"], c.get("delta_why"))
    _check_delta_source(cid, c["delta"], c.get("delta_source"), c.get("paper_effect"), c.get("delta_rule"))
    if c.get("all_equal") and not c.get("exact") and profile != "smoke":  # smoke's tiny runs may tie by chance
        raise ValueError(f"claim {cid!r}: every seed gives the same paired difference ({c['ours']['mean']:g}); "
                         "a verdict needs spread. Redesign the claim, or declare exact=True for a deterministic "
                         "quantity and say so on the page")


def save(key, profile, seeds, metrics, claims, durations=None, pilot=None, params=None) -> Path:
    """Decide the chapter's claims (`decide`) and write the run's science atomically; returns the path.

    The kernel writes the science: seeds, per-seed metrics, decided claims, the pilot, and how it
    ran (hardware, timed sections). Under `kdlib run` (``KDLIB_RESULTS_PATH`` set) that is all:
    the runner, which resolved the parameters and hashed the inputs, wraps it in the envelope
    (`envelope`: key, profile, parameters, input hash, git state, package versions). Run any other
    way (plain papermill, a notebook), the kernel writes the whole file itself under
    ``_runs/KEY/PROFILE-<params hash>/``, reading `params` from the chapter's parameters cell
    when they are not given.

    pilot: the `pilot_record` of the run that fixed the number of seeds, if any; its seeds must
    not reappear among `seeds`.
    """
    for c in claims:
        _check_saved_claim(c, profile)
    ids = [c["id"] for c in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"claims: duplicate ids {sorted({i for i in ids if ids.count(i) > 1})}")
    if pilot is not None:
        if "seeds" not in pilot:
            raise ValueError("pilot: needs its 'seeds' (use kdlib.results.pilot_record)")
        if len(pilot["seeds"]) < PILOT_MIN_SEEDS and profile not in ("smoke", "class"):
            raise ValueError(f"pilot: {len(pilot['seeds'])} seeds; a pilot needs at least {PILOT_MIN_SEEDS} "
                             "(set pilot_seeds)")
        check_pilot(pilot["seeds"], seeds)
    science = {
        "seeds": list(seeds),
        "metrics": metrics,
        "claims": decide(claims),
        **({"pilot": pilot} if pilot is not None else {}),
        "ran": {"hardware": repro.hardware(), "durations": durations or {}},
    }
    if os.environ.get("KDLIB_RESULTS_PATH"):  # under the runner: the science only
        path = Path(os.environ["KDLIB_RESULTS_PATH"])
        atomic_write_bytes(path, (json.dumps(_jsonable(science), indent=1) + "\n").encode())
        return path
    if params is None:  # a notebook run by hand: its parameters, read from the kernel's namespace
        import __main__

        params = chapters.chapter_parameters(key, vars(__main__))
    path = chapters.results_path(key, profile, params)
    record = envelope(key, profile, params, science, input_hash=None)
    atomic_write_bytes(path, (json.dumps(_jsonable(record), indent=1) + "\n").encode())
    print(f"results written to {path} (outside the book)")
    return path


def read(path) -> dict:
    """A results file by path (what `save` returned)."""
    return json.loads(Path(path).read_text())


def load(key, profile, root=None) -> dict | None:
    """The results of `key` at `profile`, or None if that run does not exist."""
    path = Path(root or results_dir()) / key / f"{profile}.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"results file {path} is not valid JSON: {err}") from None


def frame(res):
    """The tidy per-seed metrics of a results dict as a pandas DataFrame."""
    import pandas as pd

    return pd.DataFrame(res["metrics"])
