"""Pre-registered claims as data: what a chapter fixes before its confirmatory run.

A chapter writes its claims as a list of `Claim` specs in a visible cell (the reader sees every
claim, its kind, direction and delta before any result), runs a pilot on its own seeds, takes the
number of confirmatory seeds from the pilot (`kdlib.results.pilot_record`), and builds the claims
from a tidy frame of per-seed metrics. One frame row per (seed, configuration).

    CLAIMS = [Claim("dkd_beats_kd", "DKD beats KD on test accuracy", paper="73.33 → 76.32",
                    a="DKD", b="KD", delta=0.5, delta_source="paper", paper_effect=1.03,
                    delta_why="below the smallest DKD − KD gain of the README's table (1.03, resnet110→32)")]
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
    delta_source: str = ""  # 'paper' (bounded by paper_effect) or 'book' (delta_rule names a rule)
    paper_effect: float | None = None  # the smallest verified effect of this comparison in the paper
    delta_rule: str = ""  # one of kdlib.results.DELTA_RULES when delta_source == 'book'
    exact: bool = False  # a deterministic quantity: the same difference for every seed

    def __post_init__(self):
        results._check(self.id, self.kind, self.direction, self.delta, self.delta_why)
        results._check_delta_source(self.id, float(self.delta), self.delta_source, self.paper_effect,
                                    self.delta_rule or None)


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
                                 delta_why=s.delta_why, metric=_metric(s), unit=s.unit,
                                 delta_source=s.delta_source, paper_effect=s.paper_effect,
                                 delta_rule=s.delta_rule or None, exact=s.exact))
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


def seed_plan(pilot_record: dict, min_seeds: int, max_seeds: int, seconds_per_seed: float | None = None) -> list[int]:
    """The confirmatory seeds 0, 1, ..., n - 1: the n the pilot asks for, at least `min_seeds` and at
    most `max_seeds` (the profile's budget). Prints the plan; when the budget caps it, prints each
    capped claim's n and, given `seconds_per_seed` (e.g. the pilot's time per seed), the cpu time
    that n would take here."""
    n = min(max(pilot_record["n"], min_seeds), max_seeds)
    capped = f" (capped by seeds = {max_seeds})" if pilot_record["n"] > max_seeds else ""
    print(f"the pilot asks for {pilot_record['n']} seeds; the confirmatory run trains {n}: "
          f"seeds 0–{n - 1}{capped}")
    for cid, need in pilot_record.get("n_needed", {}).items():
        if need > max_seeds:
            cost = f", about {need * seconds_per_seed / 60:.0f} cpu minutes here" if seconds_per_seed else ""
            print(f"  {cid} needs {need} seeds{cost}; one-GPU time not measured (the paper profile's job)")
    return list(range(n))


def table(specs):
    """The pre-registration as a table: what is claimed, by whom, in which direction, with which delta."""
    import pandas as pd

    rows = [{"claim (measured as)": f"{s.text} ({_metric(s)})", "kind": s.kind, "direction": s.direction,
             "delta": f"{s.delta:g} {s.unit}".strip() + (" (exact)" if s.exact else ""),
             "why this delta": f"{_source(s)}: {s.delta_why}"} for s in specs]
    return pd.DataFrame(rows).style.hide(axis="index")


def _source(s: Claim) -> str:
    return f"paper ({s.paper_effect:g} {s.unit})".replace(" )", ")") if s.delta_source == "paper" else f"book rule '{s.delta_rule}'"


def as_dicts(specs) -> list[dict]:
    return [asdict(s) for s in specs]
