"""One file per paper, `Method` subclasses only. `METHODS` maps the names used in sweeps to classes.

Import a method from here (`from kdlib.methods import DKD`) or from its file
(`from kdlib.methods.dkd import DKD`); both are the same class. Nothing is imported
eagerly: a name is looked up in `_WHERE` and its file imported on first use, so
`import kdlib.methods.kd` loads kd.py and what it needs, not every paper of the book.
Training drivers that are not methods (federated rounds, BAN generations, teacher
fits) live in `kdlib.experiments`; closed-form chapters keep their functions there too.
"""

from importlib import import_module

from ..method import CE, Method

# class name -> the file (module of this package) that defines it
_WHERE = {
    "BornAgain": "ban", "CWTM": "ban", "DKPP": "ban",
    "OnlineKD": "bdkd",
    "DHKD": "dhkd",
    "DKD": "dkd",
    "ProxyKD": "edgefd",
    "HARD": "hard",
    "KD": "kd", "LogitMatching": "kd",
    "KD3": "kd3",
    "IntermediateMatch": "layer_selection",
    "LELP": "lelp", "EmbeddingMSE": "lelp", "SubclassKD": "lelp",
    "LuminetKD": "luminet",
    "MixupCE": "mixup_kd", "MixupKD": "mixup_kd",
    "OFA": "ofa", "FitNet": "ofa",
    "ORC": "orc",
    "DML": "dml",
    "PESF": "pesf",
    "ActiveKD": "rad",
    "RandomTeacherDistill": "random_teachers",
    "RKD": "rkd",
    "TCN": "tcn",
    "TGeoKD": "tgeo", "WLSKD": "tgeo",
    "TRG": "trg",
}

# sweep name -> class name
_NAMES = {
    "ce": "CE", "kd": "KD", "logit_matching": "LogitMatching", "dkd": "DKD",
    "ban": "BornAgain", "cwtm": "CWTM", "dkpp": "DKPP", "luminet": "LuminetKD", "dhkd": "DHKD",
    "lelp": "LELP", "subclass_kd": "SubclassKD", "embedding_mse": "EmbeddingMSE",
    "mixup_kd": "MixupKD", "mixup_ce": "MixupCE", "random_teachers": "RandomTeacherDistill",
    "tgeo": "TGeoKD", "wls": "WLSKD", "intermediate_match": "IntermediateMatch", "rkd": "RKD",
    "pesf": "PESF", "dml": "DML", "bdkd": "OnlineKD", "tcn": "TCN", "hard": "HARD", "trg": "TRG",
    "ofa": "OFA", "fitnet": "FitNet", "kd3": "KD3", "edgefd": "ProxyKD", "orc": "ORC",
    "rad": "ActiveKD",
}

__all__ = ["METHODS", "Method", "CE", *sorted(_WHERE)]


def __getattr__(name):
    """`kdlib.methods.KD` and `from kdlib.methods import KD`: import kd.py on first use."""
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    if name == "METHODS":  # every method of the book: imports every file, so only when asked
        return {key: (CE if cls == "CE" else __getattr__(cls)) for key, cls in _NAMES.items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
