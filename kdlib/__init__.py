"""kdlib: the small shared library behind *Knowledge Distillation, Reproduced*.

Modules: losses (pure functions), methods (one file per paper), train (the one loop),
batched (the seeds of a recipe as one computation),
data, models, hooks, zoo (cached teachers), results (claims and verdicts), repro,
book (notebook glue) and run (the papermill runner).
"""

__version__ = "0.1.0"
