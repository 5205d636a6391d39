"""BD-KD: Balancing the Divergences for Online Knowledge Distillation (Amara et al., 2022)."""

from __future__ import annotations

import math

from torch import nn

from ..cohort import Cohort
from ..losses import bdkd_loss, cross_entropy, entropy_gap_weights
from ..method import Method

DIVERGENCES = ("reverse", "fixed", "bdkd")  # DML, w = 0 both ways, is `kdlib.methods.dml.DML`


def online_pair(large: nn.Module, small: nn.Module) -> Cohort:
    """A large and a small network trained together from scratch: a `Cohort` named ("small", "large").

    Its forward is the *small* network's (`kdlib.train.evaluate` scores the model that is deployed);
    ``pair["large"]`` is the large one. Trained by `OnlineKD`, or by `kdlib.methods.dml.DML` for DML.
    """
    return Cohort([small, large], names=("small", "large"), scored=0)


class OnlineKD(Method):
    """Online distillation of an `online_pair`: both networks learn from the labels and from each other.

    small: CE(y, p_s) + kl_weight * [(1 - w_i) KL(p_l || p_s) + w_i KL(p_s || p_l)]   (p_l detached)
    large: CE(y, p_l) + kl_weight * KL(p_l || p_s)   (p_s detached; BD-KD's reverse-KL regulariser on
           the large network, our reading of the paper's Sec. 3); large_divergence='forward' makes
           it KL(p_s || p_l)

    divergence sets the small network's per-sample reverse weight w_i: 'reverse' 1, 'fixed' 1/2,
      'bdkd' from the entropy gap (`entropy_gap_weights`: 1 where the small network is less
      confident than the large one, 0 where it is more; `sharpness` < inf softens the switch).
    w = 0 with forward KL on both networks is Deep Mutual Learning: `kdlib.methods.dml.DML` (T = 1,
    t_squared=False for this file's no-T^2 convention). T = 1 and kl_weight = 1 as in DML.
    Needs an `online_pair` student and no teacher.
    """

    needs_teacher = False

    def __init__(self, divergence="bdkd", kl_weight=1.0, temperature=1.0, sharpness=math.inf,
                 large_divergence=None):
        super().__init__()
        if divergence not in DIVERGENCES:
            raise ValueError(f"OnlineKD: divergence must be one of {DIVERGENCES}, got {divergence!r}")
        if large_divergence not in (None, "forward", "reverse"):
            raise ValueError(f"OnlineKD: large_divergence must be None, 'forward' or 'reverse', got {large_divergence!r}")
        if kl_weight < 0 or temperature <= 0:
            raise ValueError(f"OnlineKD: kl_weight must be >= 0 and temperature > 0, got {kl_weight}, {temperature}")
        self.divergence, self.kl_weight, self.temperature, self.sharpness = divergence, kl_weight, temperature, sharpness
        self.large_divergence = large_divergence or "reverse"

    def reverse_weight(self, small_logits, large_logits):
        """w_i of the small network's term: a number, or (N,) weights for 'bdkd'."""
        if self.divergence == "bdkd":
            return entropy_gap_weights(small_logits, large_logits, self.sharpness, self.temperature)
        return {"reverse": 1.0, "fixed": 0.5}[self.divergence]

    def forward(self, student, teacher, batch):
        if not (isinstance(student, Cohort) and set(student.names) == {"large", "small"}):
            raise TypeError(f"OnlineKD: the student must be an online_pair(large, small), got {type(student).__name__}")
        x, y = batch[0], batch[1]
        large_logits, small_logits = student["large"](x), student["small"](x)
        w_small = self.reverse_weight(small_logits, large_logits)
        w_large = 0.0 if self.large_divergence == "forward" else 1.0
        t, k = self.temperature, self.kl_weight
        return {
            "ce_small": cross_entropy(small_logits, y),
            "kl_small": k * bdkd_loss(small_logits, large_logits.detach(), w_small, t),
            "ce_large": cross_entropy(large_logits, y),
            "kl_large": k * bdkd_loss(large_logits, small_logits.detach(), w_large, t),
        }
