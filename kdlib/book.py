"""What a chapter shows: plot style, method source, claim tables and the one interval formatter, glued numbers."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

from . import results



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
    """'+1.23 ± 0.45 points [+0.80, +1.66] (98.3%, n=5)' for a decided claim: its decided interval.

    The one formatter of an effect in prose, tables and the scoreboard (protocol v2): the interval
    shown is always the one the verdict was decided on (Holm-adjusted for paper claims).
    """
    if "ci_holm" not in c:
        raise ValueError(f"fmt_ours: give a decided claim (from a results file), not {sorted(c)[:4]}...: "
                         "the interval shown must be the one its verdict was decided on")
    ours = c["ours"]
    lo, hi = c["ci_holm"]
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
    """The claims of a results dict in five columns: claim, paper, ours (decided interval), delta, verdict.

    A hypothesis is marked in the claim cell; delta shows its value and source (the justification is
    in the pre-registration table above it); p and Holm's p are in the results file.
    """
    import pandas as pd

    def delta(c):
        if c.get("delta") is None:
            return "not fixed"
        unit = f" {c['unit']}" if c.get("unit") else ""
        source = {"paper": "paper", "book": "book rule"}.get(c.get("delta_source"), "")
        return f"{c['delta']:g}{unit}" + (f" ({source})" if source else "") + (", exact" if c.get("exact") else "")

    rows = [
        {
            "claim": c["text"] + (" (hypothesis)" if c.get("kind") == "hypothesis" else ""),
            "paper": c["paper"],
            "ours: mean ± std [decided interval]": fmt_ours(c, digits),
            "delta": delta(c),
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
