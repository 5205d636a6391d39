"""One file per paper. `METHODS` maps the names used in sweeps to classes.

Import a method from here (`from kdlib.methods import DKD`) or from its file
(`from kdlib.methods.dkd import DKD`); both are the same class.
"""

from .ban import CWTM, DKPP, BornAgain
from .base import CE, Method
from .dhkd import DHKD
from .dkd import DKD
from .kd import KD, LogitMatching
from .lelp import LELP, EmbeddingMSE, SubclassKD
from .luminet import LuminetKD

METHODS = {
    "ce": CE,
    "kd": KD,
    "logit_matching": LogitMatching,
    "dkd": DKD,
    "ban": BornAgain,
    "cwtm": CWTM,
    "dkpp": DKPP,
    "luminet": LuminetKD,
    "dhkd": DHKD,
    "lelp": LELP,
    "subclass_kd": SubclassKD,
    "embedding_mse": EmbeddingMSE,
}

__all__ = ["METHODS", "Method", *sorted({cls.__name__ for cls in METHODS.values()})]
