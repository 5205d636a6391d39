"""Networks trained together as one module: the container of online distillation.

Deep mutual learning (`kdlib.methods.dml.DML`), BD-KD's online pair and ORC's student group train
several networks from one loss in the book's one loop; the loop sees a single module whose forward
is the network that is deployed, so `kdlib.train.evaluate(cohort, ...)` scores that one.
"""

from __future__ import annotations

from torch import nn


class Cohort(nn.Module):
    """K >= 2 networks trained together (``cohort.networks``, an ``nn.ModuleList``), each with a name.

    names: one per network (default ``net1`` .. ``netK``); a method names its terms and logs after
        them, and ``cohort[name]`` (or ``cohort[i]``) is that network.
    scored: the index of the deployed network: ``forward(x)`` returns its logits.
    lr_scales: per network, a factor on the learning rate (default 1; a trained teacher fine-tuned
        beside a student learns slower). `kdlib.method.Method.param_groups` reads it through
        `lr_scale_by_parameter`; the loop's optimiser then has one group per factor.
    extras: further modules trained with the cohort but not peers of it (ORC's pivot teacher),
        set as attributes (``Cohort(students, pivot=net).pivot``; ``None`` is allowed).
    """

    def __init__(self, networks, names=None, scored: int = 0, lr_scales=None, **extras):
        super().__init__()
        k = len(networks)
        if k < 2:
            raise ValueError(f"Cohort: needs at least 2 networks, got {k}")
        names = tuple(names) if names is not None else tuple(f"net{i + 1}" for i in range(k))
        lr_scales = tuple(float(s) for s in lr_scales) if lr_scales is not None else (1.0,) * k
        if len(names) != k or len(set(names)) != k:
            raise ValueError(f"Cohort: names must be {k} distinct names, got {names}")
        if len(lr_scales) != k or any(s <= 0 for s in lr_scales):
            raise ValueError(f"Cohort: lr_scales must be {k} numbers > 0, got {lr_scales}")
        if not 0 <= scored < k:
            raise ValueError(f"Cohort: scored must index a network (0..{k - 1}), got {scored}")
        self.networks = nn.ModuleList(networks)
        self.names, self.scored, self.lr_scales = names, scored, lr_scales
        for key, module in extras.items():
            setattr(self, key, module)

    def forward(self, x):
        return self.networks[self.scored](x)

    def __getitem__(self, key):
        """One network, by name or index."""
        if isinstance(key, str):
            if key not in self.names:
                raise KeyError(f"Cohort: no network named {key!r} (names: {self.names})")
            key = self.names.index(key)
        return self.networks[key]

    def __len__(self):
        return len(self.networks)

    def lr_scale_by_parameter(self) -> dict:
        """{id(parameter): its network's lr scale} for the networks' parameters (the extras' are absent: 1)."""
        return {id(p): s for net, s in zip(self.networks, self.lr_scales) for p in net.parameters()}
