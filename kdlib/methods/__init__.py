"""One file per paper. `METHODS` maps the names used in sweeps to classes."""

from .base import CE, Method
from .kd import KD, LogitMatching

METHODS = {"ce": CE, "kd": KD, "logit_matching": LogitMatching}

__all__ = ["METHODS", "Method", "CE", "KD", "LogitMatching"]
