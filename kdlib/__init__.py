"""kdlib: the small shared library behind *Knowledge Distillation, Reproduced*.

Layers, lowest first (a module imports only from the rows above it):

* losses (pure functions), models, cohort (networks trained together as one module), hooks,
  adapters, augment, data, repro, deps;
* method (the `Method` base and CE), train (the one loop), batched (K seeds as one computation);
* methods (one file per paper, `Method` subclasses only), lm (language-model world and methods);
* experiments (training drivers and closed-form experiments a chapter needs beyond a Method),
  tasks, zoo (cached teachers);
* prereg, results (claims and verdicts), book (notebook glue), chapters, run, cli.

Where new code goes: a loss shared by two papers or a core divergence in ``losses/<family>.py``
(else beside its method); a method in ``methods/<key>.py``; an LM method in ``lm/<key>.py``; a
training driver (rounds, generations, a teacher fit) in ``experiments/<key>.py``.
"""

__version__ = "0.1.0"
