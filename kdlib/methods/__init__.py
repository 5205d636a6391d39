"""One file per paper. `METHODS` maps the names used in sweeps to classes.

Import a method from here (`from kdlib.methods import DKD`) or from its file
(`from kdlib.methods.dkd import DKD`); both are the same class.
"""

from .ban import CWTM, DKPP, BornAgain
from .base import CE, Method
from .bdkd import OnlineKD
from .dhkd import DHKD
from .dkd import DKD
from .edgefd import ProxyKD
from .hard import HARD
from .kd import KD, LogitMatching
from .kd3 import KD3
from .layer_selection import IntermediateMatch
from .lelp import LELP, EmbeddingMSE, SubclassKD
from .luminet import LuminetKD
from .mixup_kd import MixupCE, MixupKD
from .ofa import OFA, FitNet
from .orc import ORC, GroupDML
from .pesf import DML, PESF
from .rad import ActiveKD
from .random_teachers import RandomTeacherDistill
from .rkd import RKD
from .tcn import TCN
from .tgeo import TGeoKD, WLSKD
from .trg import TRG

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
    "mixup_kd": MixupKD,
    "mixup_ce": MixupCE,
    "random_teachers": RandomTeacherDistill,
    "tgeo": TGeoKD,
    "wls": WLSKD,
    "intermediate_match": IntermediateMatch,
    "rkd": RKD,
    "pesf": PESF,
    "dml": DML,
    "bdkd": OnlineKD,
    "tcn": TCN,
    "hard": HARD,
    "trg": TRG,
    "ofa": OFA,
    "fitnet": FitNet,
    "kd3": KD3,
    "edgefd": ProxyKD,
    "orc": ORC,
    "group_dml": GroupDML,
    "rad": ActiveKD,
}
# Closed-form and simulation chapters (selfdistill_krr, transfer_limits, pruning_kd) have plain
# functions in their files, no Method to register.

__all__ = ["METHODS", "Method", *sorted({cls.__name__ for cls in METHODS.values()})]
