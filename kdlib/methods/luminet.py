"""LumiNet: Perception-Driven Knowledge Distillation via Statistical Logit Calibration
(Hossain, Elahi, Ramasinghe, Cheraghian, Rahman, Mohammed & Rahman; TMLR 2025)."""

from __future__ import annotations

from ..losses import cross_entropy, luminet_loss
from ..method import Method


class LuminetKD(Method):
    """LumiNet: ce_weight * CE + warm-up * alpha^2 * KL(softmax(z~_t/T) || softmax(z~_s/T)).

    z~ standardises each class's logit over the batch (`batch_standardise`). Defaults are the
    official config for resnet32x4 -> resnet8x4 (ismail31416/LumiNet,
    configs/cifar100/luminet/res32x4_res8x4.yaml: ALPHA 33, T 4, CE_WEIGHT 2; warm-up 20 from
    `CFG.LUMINET.WARMUP`). Other pairs: vgg13 -> MobileNetV2 and ResNet50 -> MobileNetV2 alpha 70,
    T 8, CE 2; vgg13 -> vgg8 alpha 70, T 8, CE 1; wrn40_2 -> wrn40_1 alpha 75, T 8, CE 1;
    wrn40_2 -> ShuffleV1 alpha 35, T 4, CE 1.

    The KD term is scaled by alpha^2, as the official code does, not by T^2 (so alpha is a loss
    weight, not the paper's usual KD mixing coefficient). The warm-up is mdistiller's
    min(epoch / warmup, 1) with 1-based epochs, i.e. min((epoch + 1) / warmup, 1) here.
    """

    def __init__(self, alpha=33.0, temperature=4.0, ce_weight=2.0, warmup_epochs=20):
        super().__init__()
        self.alpha, self.temperature = alpha, temperature
        self.ce_weight, self.warmup_epochs = ce_weight, warmup_epochs

    def warmup(self) -> float:
        """Linear warm-up factor of the distillation term for the current (0-based) epoch."""
        if not self.warmup_epochs:
            return 1.0
        return min((self.epoch + 1) / self.warmup_epochs, 1.0)

    def terms_from_logits(self, student_logits, teacher_logits, target):
        terms = {"kd": self.warmup() * self.alpha**2 * luminet_loss(student_logits, teacher_logits, self.temperature)}
        if self.ce_weight:
            terms["ce"] = self.ce_weight * cross_entropy(student_logits, target)
        return terms
