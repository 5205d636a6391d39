"""Notebook glue: plot style, claim tables, glued numbers, and the scoreboard page."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

from . import results

PROFILES_ON_SCOREBOARD = ("cpu", "paper")


def set_style():
    """One plot style for the whole book."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.figsize": (7, 3.6), "figure.dpi": 100, "savefig.bbox": "tight"})


def show_source(*objects):
    """Display the source of kdlib functions/classes as highlighted code (shown, not re-typed)."""
    from IPython.display import Markdown, display

    for obj in objects:
        display(Markdown(f"```python\n{inspect.getsource(obj).rstrip()}\n```"))


def _num(x, digits):
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.{digits}f}"


def fmt_ours(c: dict, digits: int = 2) -> str:
    """'+1.23 ± 0.45 points [+0.80, +1.66] (98.3%, n=5)' for a claim, with its decided interval.

    Given a claim's ``ours`` dict alone (older chapters), the raw 95 % interval is shown.
    """
    ours = c.get("ours", c)
    lo, hi = c.get("ci_holm") or ours["ci"]
    level = f"{c['level']:.1%}, " if c.get("level") else ""
    unit = f" {ours['unit']}" if ours.get("unit") else ""
    std = ours.get("std")
    spread = "nan" if std is None or math.isnan(std) else f"{abs(std):.{digits}f}"
    interval = f"[{_num(lo, digits)}, {_num(hi, digits)}]"
    return f"{_num(ours['mean'], digits)} ± {spread}{unit} {interval} ({level}n={ours['n']})"


def verdict_text(c: dict) -> str:
    """'reproduced', 'not reproduced (negligible)', 'inconclusive (underpowered)', ..."""
    v = c["verdict"]
    if c.get("negligible"):
        return f"{v} (negligible)"
    if v == results.INCONCLUSIVE and c.get("underpowered"):
        return f"{v} (underpowered)"
    return v


def claims_table(res: dict, digits: int = 2):
    """The claims of a results dict: claim, kind, paper, ours (decided interval), delta, p, verdict."""
    import pandas as pd

    def p(x):
        return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"

    rows = [
        {
            "claim": c["text"],
            "kind": c.get("kind", "paper"),
            "paper": c["paper"],
            "ours (mean ± std [interval])": fmt_ours(c, digits),
            "measured as": c.get("metric") or c["ours"].get("what", ""),
            "delta": "not fixed" if c.get("delta") is None else f"{c['delta']:g} ({c.get('delta_why', '')})",
            "p (Holm)": f"{p(c['ours'].get('p'))} ({p(c.get('p_holm'))})",
            "verdict": verdict_text(c),
        }
        for c in res["claims"]
    ]
    return pd.DataFrame(rows).style.hide(axis="index")


GLUE_PREFIX = "application/papermill.record/"  # myst_nb.ext.glue.GLUE_PREFIX


def glue(name: str, value, display: bool = False):
    """Glue a value for `{glue:text}` in the chapter prose; a plain print outside a kernel.

    Writes exactly what `myst_nb.glue` writes (its display data, with the scrapbook metadata
    myst-nb reads at build time), without importing myst_nb: that import pulls in nbformat and
    the Sphinx toolchain, about 2 s of every chapter run. tests/test_book.py checks the output
    against myst_nb's own function."""
    from IPython import get_ipython

    if get_ipython() is None:
        print(f"{name} = {value}")
        return
    from IPython.core.formatters import format_display_data
    from IPython.display import display as ipy_display

    mimebundle, metadata = format_display_data(value)
    prefix = "" if display else GLUE_PREFIX
    metadata["scrapbook"] = dict(name=name, mime_prefix=prefix)
    ipy_display({prefix + k: v for k, v in mimebundle.items()}, raw=True, metadata=metadata)


# --------------------------------------------------------------------------- the scoreboard

VERDICT_COLOURS = {  # Okabe-Ito, readable by colour-blind readers
    "reproduced": "#009E73",
    "not reproduced": "#D55E00",
    "not reproduced: negligible": "#E69F00",
    "inconclusive": "#8C8C8C",
}
KIND_TITLES = {"paper": "Paper claims", "hypothesis": "The book's hypotheses"}


def toc_parts(toc=None) -> dict:
    """Chapter key -> caption of the `_toc.yml` part that lists ``book/chapters/KEY``, in toc order."""
    import yaml

    from .repro import REPO_ROOT

    toc = Path(toc or REPO_ROOT / "_toc.yml")
    if not toc.exists():
        return {}
    parts = {}
    for part in yaml.safe_load(toc.read_text()).get("parts", []):
        for ch in part.get("chapters", []):
            f = str(ch.get("file", ""))
            if f.startswith("book/chapters/"):
                parts[f.removeprefix("book/chapters/")] = part.get("caption", "")
    return parts


def scoreboard_rows(results_root=None, toc_keys=None, parts=None) -> list[dict]:
    """One row per claim of every chapter's cpu and paper results, ordered by part and chapter."""
    root = Path(results_root or results.results_dir())
    parts = toc_parts() if parts is None else parts
    order = {k: i for i, k in enumerate(parts)}
    keys = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []
    keys = [k for k in keys if toc_keys is None or k in toc_keys]
    keys.sort(key=lambda k: (order.get(k, len(order)), k))
    rows = []
    for key in keys:
        part = parts.get(key, "Other chapters")
        for profile in PROFILES_ON_SCOREBOARD:
            res = results.load(key, profile, root)
            for c in res["claims"] if res else []:
                ours, delta = c["ours"], c.get("delta")
                lo, hi = c.get("ci_holm") or ours["ci"]
                sign = -1.0 if c.get("direction") == "less" else 1.0
                scaled = None
                if delta and None not in (ours["mean"], lo, hi):  # oriented: the claimed side is +
                    scaled = sorted([sign * lo / delta, sign * hi / delta]), sign * ours["mean"] / delta
                rows.append({"key": key, "profile": profile, "part": part,
                             "kind": c.get("kind", "paper"), "id": c["id"], "text": c["text"], "claim": c,
                             "verdict": c["verdict"], "negligible": bool(c.get("negligible")), "scaled": scaled})
    return rows


def _colour(row) -> str:
    return VERDICT_COLOURS["not reproduced: negligible" if row["negligible"] else row["verdict"]]


def scoreboard_svg(rows) -> bytes:
    """The forest plot of `rows` (effect / delta with its decided interval), as deterministic SVG bytes."""
    import io

    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    panels = [(k, [r for r in rows if r["kind"] == k and r["scaled"]]) for k in KIND_TITLES]
    panels = [(k, rs) for k, rs in panels if rs]
    with matplotlib.rc_context():
        matplotlib.rcdefaults()  # the page looks the same whoever calls it
        matplotlib.rcParams.update({"svg.hashsalt": "kdlib", "svg.fonttype": "path", "font.size": 9})
        heights = [sum(1 for _ in rs) + len({(r["part"]) for r in rs}) + 1 for _, rs in panels] or [1]
        fig = Figure(figsize=(8.0, 1.2 + 0.24 * sum(heights)))
        axes = fig.subplots(len(heights), 1, gridspec_kw={"height_ratios": heights}, squeeze=False)[:, 0]
        if not panels:
            axes[0].text(0.5, 0.5, "no claims with a delta yet", ha="center", va="center")
            axes[0].set_axis_off()
        reach = max((abs(x) for _, rs in panels for r in rs for x in r["scaled"][0]), default=1.0)
        limit = 1.08 * min(max(reach, 2.0), 6.0)
        for ax, (kind, rs) in zip(axes, panels):
            y, ticks, labels, part = 0, [], [], None
            for r in rs:
                if r["part"] != part:
                    part = r["part"]
                    ticks.append(y)
                    labels.append(part)
                    y += 1
                (lo, hi), mid = r["scaled"]
                colour = _colour(r)
                ax.plot([max(lo, -limit), min(hi, limit)], [y, y], color=colour, lw=2.2, solid_capstyle="butt")
                if abs(mid) > limit:  # off the scale: an arrow at the edge and the value beside it
                    edge = math.copysign(limit, mid)
                    ax.plot([edge], [y], ">" if mid > 0 else "<", color=colour, ms=7)
                    ax.text(edge - math.copysign(0.25, mid), y, f"{mid:.3g}", color=colour, va="center",
                            ha="right" if mid > 0 else "left", fontsize=8)
                else:
                    ax.plot([mid], [y], "o", color=colour, ms=5)
                profile = "" if r["profile"] == "cpu" else f" ({r['profile']})"
                ticks.append(y)
                labels.append(f"{r['key']} · {r['id']}{profile}")
                y += 1
            ax.set_yticks(ticks, labels)
            for tick, label in zip(ax.get_yticklabels(), labels):
                if label in {r["part"] for r in rs}:
                    tick.set_fontweight("bold")
            ax.set_ylim(y - 0.4, -0.6)
            ax.set_xlim(-limit, limit)
            ax.axvline(0, color="black", lw=1)
            for edge in (-1, 1):
                ax.axvline(edge, color="black", lw=0.8, ls="--")
            ax.set_title(KIND_TITLES[kind], loc="left", fontsize=10, fontweight="bold")
            ax.grid(axis="x", color="0.9")
            ax.set_axisbelow(True)
        axes[-1].set_xlabel("effect / delta, oriented so the claimed direction is positive (interval as decided)")
        handles = [Line2D([], [], color=c, lw=2.2, marker="o", ms=5, label=v) for v, c in VERDICT_COLOURS.items()]
        fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False, bbox_to_anchor=(0.5, 0.0))
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def _cell(text) -> str:
    return str(text).replace("|", "\\|")


def scoreboard_markdown(results_root=None, toc_keys=None, parts=None, rows=None) -> str:
    """The scoreboard page: the forest plot, the counts and every claim, from the results files."""
    rows = scoreboard_rows(results_root, toc_keys, parts) if rows is None else rows
    lines = [
        "# Scoreboard",
        "",
        "Every claim of every chapter, decided by the protocol in [Conventions](conventions.md) and",
        "generated by `kdlib run` from the results files in `book/_results/`: nothing on this page is",
        "typed by hand. In the figure each claim is one row: its effect (the mean per-seed paired",
        "difference) divided by its *delta*, the smallest effect of interest, with the interval it was",
        "decided on (Holm-adjusted for the paper's claims), turned so that the claimed direction points",
        "right. Dashed lines at ±1 mark delta: an interval inside them is a negligible effect.",
        "",
        "![Forest plot of every claim: effect over delta with its interval, coloured by verdict]"
        "(_static/scoreboard.svg)",
        "",
    ]
    undrawn = sum(1 for r in rows if not r["scaled"])
    if undrawn:
        many = undrawn > 1
        lines += [f"{undrawn} claim{'s' if many else ''} from results files older than the protocol (no delta "
                  f"fixed) {'appear' if many else 'appears'} in the table only.", ""]
    for kind, title in KIND_TITLES.items():
        rs = [r for r in rows if r["kind"] == kind]
        counts = {v: sum(1 for r in rs if r["verdict"] == v) for v in results.VERDICTS}
        negligible = sum(1 for r in rs if r["negligible"])
        summary = ", ".join(f"{n} {v}" + (f" ({negligible} negligible)" if v == results.NOT_REPRODUCED and negligible
                                          else "") for v, n in counts.items())
        lines += [f"**{title}: {len(rs)}** — {summary}.", ""]
    lines += ["| chapter | claim | verdict | effect [interval] | n |", "|---|---|---|---|---|"]
    for r in rows:
        c = r["claim"]
        lo, hi = c.get("ci_holm") or c["ours"]["ci"]
        unit = f" {c['ours']['unit']}" if c["ours"].get("unit") else ""
        effect = f"{_num(c['ours']['mean'], 2)}{unit} [{_num(lo, 2)}, {_num(hi, 2)}]"
        chapter = f"[{r['key']}](chapters/{r['key']}.ipynb)" + ("" if r["profile"] == "cpu" else f" ({r['profile']})")
        text = _cell(r["text"]) + (" *(hypothesis)*" if r["kind"] == "hypothesis" else "")
        lines.append(f"| {chapter} | {text} | **{verdict_text(c)}** | {effect} | {c['ours']['n']} |")
    if not rows:
        lines.append("| – | no results yet | | | |")
    return "\n".join(lines) + "\n"


def write_scoreboard(path=None, results_root=None, toc_keys=None, parts=None) -> Path:
    """Write the scoreboard page and its figure `_static/scoreboard.svg` beside it (book/ for the book)."""
    from .repro import atomic_write_bytes

    results_root = Path(results_root or results.results_dir())
    path = Path(path or results_root.parent / "scoreboard.md")
    rows = scoreboard_rows(results_root, toc_keys, parts)
    for target, data in ((path.parent / "_static" / "scoreboard.svg", scoreboard_svg(rows)),
                         (path, scoreboard_markdown(rows=rows).encode())):
        if not target.exists() or target.read_bytes() != data:
            atomic_write_bytes(target, data)
    return path
