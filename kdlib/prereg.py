"""Pre-registered claims as data: what a chapter fixes before its confirmatory run.

A chapter writes its claims as a list of `Claim` specs in a visible cell (the reader sees every
claim, its kind, direction and delta before any result), runs a pilot on its own seeds, takes the
number of confirmatory seeds from the pilot (`kdlib.results.pilot_record`), and builds the claims
from a tidy frame of per-seed metrics. One frame row per (seed, configuration).

    CLAIMS = [Claim("dkd_beats_kd", "DKD beats KD on test accuracy", paper="73.33 → 76.32",
                    a="DKD", b="KD", delta=0.5, delta_why="...")]
    pilot = prereg.pilot(CLAIMS, pilot_frame)            # seeds the pilot asks for
    claims = prereg.claims(CLAIMS, frame)                 # raw statistics; results.save decides
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import results


@dataclass(frozen=True)
class Claim:
    """One pre-registered claim: `a` minus `b`, paired by seed, on `column` of the frame.

    a, b: a configuration name (matched against the frame's `by` column), a dict of column
        filters (``{"method": "KD", "batch": 128}``), or for `b` a number (a one-sample claim).
    """

    id: str
    text: str
    paper: str
    a: object
    b: object
    delta: float
    delta_why: str
    kind: str = "paper"
    direction: str = "greater"
    column: str = "acc"
    metric: str = ""
    unit: str = "points"
    by: str = "method"


def _select(frame, where, by):
    rows = frame[frame[by] == where] if not isinstance(where, dict) else frame
    if isinstance(where, dict):
        for name, value in where.items():
            rows = rows[rows[name] == value]
    return rows


def paired_values(spec: Claim, frame) -> tuple[np.ndarray, np.ndarray | float]:
    """(a, b) per seed, aligned on the seeds both sides have; b is a float for a one-sample claim."""
    a = _select(frame, spec.a, spec.by).set_index("seed")[spec.column]
    if a.index.has_duplicates:
        raise ValueError(f"claim {spec.id!r}: several rows per seed match a={spec.a!r}")
    if isinstance(spec.b, (int, float)):
        return a.sort_index().to_numpy(float), float(spec.b)
    b = _select(frame, spec.b, spec.by).set_index("seed")[spec.column]
    if b.index.has_duplicates:
        raise ValueError(f"claim {spec.id!r}: several rows per seed match b={spec.b!r}")
    seeds = a.index.intersection(b.index).sort_values()
    if len(seeds) == 0:
        raise ValueError(f"claim {spec.id!r}: no seed has both a={spec.a!r} and b={spec.b!r}")
    return a.loc[seeds].to_numpy(float), b.loc[seeds].to_numpy(float)


def _metric(spec: Claim) -> str:
    return spec.metric or f"{spec.column}, {spec.a} − {spec.b}"


def claims(specs, frame) -> list[dict]:
    """The chapter's claims with their raw statistics (`results.save` decides the verdicts)."""
    out = []
    for s in specs:
        a, b = paired_values(s, frame)
        out.append(results.claim(s.id, s.text, s.paper, a, b, kind=s.kind, direction=s.direction, delta=s.delta,
                                 delta_why=s.delta_why, metric=_metric(s), unit=s.unit))
    return out


def pilot(specs, frame, n_min: int = 5, n_max: int = 200) -> dict:
    """The pilot record: per-claim paired differences on the pilot's seeds and the seeds they ask for.

    m (for the Holm-level power rule) is the number of `paper` claims; hypotheses use 95 %.
    """
    m = max(1, sum(s.kind == "paper" for s in specs))
    diffs, deltas, units = {}, {}, {}
    for s in specs:
        a, b = paired_values(s, frame)
        diffs[s.id], deltas[s.id], units[s.id] = a - b, s.delta, s.unit
    seeds = sorted(int(x) for x in frame["seed"].unique())
    return results.pilot_record(seeds, diffs, deltas, m, units=units, n_min=n_min, n_max=n_max)


def seed_plan(pilot_record: dict, min_seeds: int, max_seeds: int) -> list[int]:
    """The confirmatory seeds 0, 1, ..., n - 1: the n the pilot asks for, at least `min_seeds` and at
    most `max_seeds` (the profile's budget). Prints the plan, and says when the budget caps it."""
    n = min(max(pilot_record["n"], min_seeds), max_seeds)
    capped = f" (capped by seeds = {max_seeds})" if pilot_record["n"] > max_seeds else ""
    print(f"the pilot asks for {pilot_record['n']} seeds; the confirmatory run trains {n}: "
          f"seeds 0–{n - 1}{capped}")
    return list(range(n))


def table(specs):
    """The pre-registration as a table: what is claimed, by whom, in which direction, with which delta."""
    import pandas as pd

    rows = [{"claim": s.text, "kind": s.kind, "measured as": _metric(s), "direction": s.direction,
             "delta": f"{s.delta:g} {s.unit}".strip(), "why this delta": s.delta_why} for s in specs]
    return pd.DataFrame(rows).style.hide(axis="index")


def as_dicts(specs) -> list[dict]:
    return [asdict(s) for s in specs]
