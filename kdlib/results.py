"""Results files, claims and verdicts.

Every chapter run writes ``book/_results/<key>/<profile>.json``::

    {"key", "profile", "params", "seeds",
     "metrics":  [ {"seed": 0, "method": "kd", "acc": 91.2, ...}, ... ],   # tidy, one row per run
     "claims":   [ {"id", "text", "paper", "ours": {mean, std, ci, n, unit, what}, "verdict", "rule"} ],
     "provenance": {git, packages, hardware, durations, input_hash, created}}

A verdict is never typed: `paired_claim` computes it from per-seed values with
the rule in `RULE`.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy import stats

from . import chapters, repro
from .repro import atomic_write_bytes

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
CONFIDENCE = 0.95
RULE = (
    "95% t-interval of the per-seed paired difference (ours minus baseline): "
    "reproduced if it lies wholly on the paper's side of 0; not reproduced if it lies wholly "
    "on the other side, or wholly inside the stated margin of practical equivalence; otherwise inconclusive"
)


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


def verdict(ci, direction: str, margin: float = 0.0) -> str:
    """Apply RULE to an interval `ci` of (ours - baseline); direction 'greater' or 'less'."""
    lo, hi = ci
    if direction not in ("greater", "less"):
        raise ValueError(f"verdict: direction must be 'greater' or 'less', got {direction!r}")
    if math.isnan(lo) or math.isnan(hi):
        return INCONCLUSIVE
    if direction == "less":
        lo, hi = -hi, -lo
    if lo > 0:
        return REPRODUCED
    if hi < 0 or (margin > 0 and -margin < lo and hi < margin):
        return NOT_REPRODUCED
    return INCONCLUSIVE


def paired_claim(id, text, paper, a, b, direction="greater", unit="", margin=0.0, what=None) -> dict:
    """A claim that `a` beats `b` (per-seed values, paired by seed), with its computed verdict.

    paper: what the paper reports, as text (e.g. "74 vs 146 test errors (MNIST)").
    direction: 'greater' if the paper says a > b, 'less' if a < b.
    margin: half-width of practical equivalence, in the unit of a and b (0 disables).
    `b` may be a scalar (a one-sample claim against a fixed value).
    """
    a = np.asarray(a, dtype=float)
    b = np.broadcast_to(np.asarray(b, dtype=float), a.shape)
    if a.size == 0:
        raise ValueError(f"claim {id!r}: no values")
    ours = summarize(a - b)
    ours.update(unit=unit, what=what or "paired difference over seeds")
    return {
        "id": id,
        "text": text,
        "paper": paper,
        "ours": ours,
        "direction": direction,
        "margin": margin,
        "verdict": verdict(ours["ci"], direction, margin),
        "rule": RULE + (f" (margin {margin:g} {unit})" if margin else ""),
    }


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


def save(key, profile, params, seeds, metrics, claims, durations=None) -> Path:
    """Write the results file of a run atomically and return its path."""
    for claim in claims:
        if claim.get("verdict") not in VERDICTS:
            raise ValueError(f"claim {claim.get('id')!r}: verdict must come from kdlib.results")
    record = {
        "key": key,
        "profile": profile,
        "params": params,
        "seeds": list(seeds),
        "metrics": metrics,
        "claims": claims,
        "provenance": {
            **repro.provenance(),
            "durations": durations or {},
            "input_hash": os.environ.get("KDLIB_INPUT_HASH"),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    }
    path = chapters.results_path(key, profile, params)
    atomic_write_bytes(path, (json.dumps(_jsonable(record), indent=1) + "\n").encode())
    if not os.environ.get("KDLIB_RESULTS_PATH"):  # not under the runner: say where it went
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
