"""kdlib's modules form a layered graph: every module imports alone, and no import cycle exists,
not even through a function-level import or a package ``__init__`` that Python runs first.

A cycle works until someone moves an import or imports modules in another order; then
``import kdlib.train`` fails in a fresh interpreter (it did: train -> methods.base -> methods/__init__
-> edgefd -> train). The graph is `kdlib.deps.module_graph`, the same reading of the source the
runner and the zoo use.
"""

import graphlib
import multiprocessing
import os
import sys

import pytest

from kdlib import deps

GRAPH = deps.module_graph()
MODULES = sorted(GRAPH)


def test_the_graph_is_read_from_the_source():
    assert "kdlib.lm.tokens" in GRAPH["kdlib.lm.methods"]  # token_cross_entropy comes from tokens
    assert "kdlib.lm.methods" in GRAPH["kdlib.lm.models"]  # a function-level import counts
    assert "kdlib.run" in GRAPH["kdlib.cli"]
    assert "kdlib.losses" in GRAPH["kdlib.method"]  # from .losses import x runs losses/__init__


def test_kdlib_has_no_import_cycle():
    try:
        order = list(graphlib.TopologicalSorter(GRAPH).static_order())
    except graphlib.CycleError as err:
        raise AssertionError(f"import cycle in kdlib: {' -> '.join(err.args[1])}") from None
    assert order.index("kdlib.lm.tokens") < order.index("kdlib.lm.models")


def test_layers():
    """The loop and the batched engine sit below the methods and the experiments: they import
    nothing above them, and methods/ holds no training driver."""
    below = {"kdlib.train", "kdlib.batched", "kdlib.method"}
    above = ("kdlib.methods", "kdlib.experiments", "kdlib.lm", "kdlib.zoo", "kdlib.tasks", "kdlib.book")
    for name in below:
        reached = deps.files_used([name])
        bad = [p for p in reached if deps.module_name(p).startswith(above)]
        assert not bad, f"{name} reaches {bad}"
    for name in MODULES:
        if name.startswith("kdlib.methods."):
            assert not {"kdlib.train", "kdlib.batched", "kdlib.zoo"} & GRAPH[name], name


def _import_alone(name, queue):
    try:
        for mod in [m for m in sys.modules if m == "kdlib" or m.startswith("kdlib.")]:
            del sys.modules[mod]
        __import__(name)
        queue.put((name, None))
    except BaseException as err:  # noqa: BLE001 -- report any failure to the parent
        queue.put((name, f"{type(err).__name__}: {err}"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_every_module_imports_alone_in_a_fresh_interpreter():
    """Each module is imported first, in a child forked before any kdlib module was loaded there
    (torch and the other third-party packages are already imported: they are not under test)."""
    import numpy, scipy.stats, torch, transformers  # noqa: F401,E401 -- the shared, slow part, once

    ctx = multiprocessing.get_context("fork")
    failures = []
    for name in (m for m in MODULES if m != "kdlib.__main__"):  # __main__ runs the CLI
        queue = ctx.Queue()
        child = ctx.Process(target=_import_alone, args=(name, queue))
        child.start()
        child.join(60)
        result = queue.get(timeout=5) if child.exitcode == 0 else (name, f"exit code {child.exitcode}")
        if result[1]:
            failures.append(f"{name}: {result[1]}")
    assert not failures, "\n".join(failures)
