"""Distillation losses as pure functions of tensors, one module per family, every name
re-exported here (``from kdlib.losses import kd_loss``):

* `divergences`: KL both ways, JS, TVD, skew KL, logit MSE, cross-entropies;
* `logit`: the logit-distillation losses of Part I (DKD, BAN targets, LumiNet, Dual-Head KD);
* `relation`: relations between embeddings or tokens (RKD's distances and angles, TRG's token graphs);
* `feature`: intermediate features (FitNets' hint MSE) and One-for-All's eps-modulated loss;
* `online`: online (mutual) distillation between networks trained together (DML, BD-KD's balanced KL mix);
* `transport`: optimal transport (a log-domain Sinkhorn, SinKD's batch-wise loss);
* further families (sequence) get their own module as chapters add them.

Each family module lists its public functions in its own ``__all__``; this package re-exports
them, so a new loss is added in one place only.

Conventions, fixed once for the whole book and tested in tests/test_losses.py:

* Logits are ``(N, C)`` for classification or ``(N, T, V)`` for sequences; the
  class / vocabulary axis is always the last one.
* Forward KL is KL(teacher || student): the teacher's distribution is the target.
* Reduction is ``batchmean``: sum over classes, mean over the sample axis (the one before
  the classes), or over the tokens where ``mask`` is true for sequences ((N, T, V) logits with
  an (N, T) mask). Only that axis is reduced, and batch statistics (LumiNet's) are taken over
  it too, so a loss of (N, C) logits is a scalar and the same call on K stacked seeds' (K, N, C)
  logits returns (K,), each seed's own value: one code path for one seed and for K
  (`kdlib.batched`; tests/test_stacks.py checks every loss and logits-only method).
* The T^2 factor lives inside the temperature-scaled KD term (``kd_loss`` and
  ``dkd_loss``); the other divergences take a temperature but no T^2.
* Loss *weights* (alpha, beta of a method) are applied by the method, never here.
  The exceptions are DKD's alpha/beta and GKD's beta, which are part of the
  paper's definition of the loss itself.
* Everything is computed in float32, whatever the input precision.
* Sequence shift (``logits[:, :-1]`` against ``tokens[:, 1:]``) is the caller's job:
  these functions compare distributions position by position.
"""

from . import divergences, feature, logit, online, relation, transport
from .divergences import *  # noqa: F401,F403  (every public loss, listed in the module's __all__)
from .logit import *  # noqa: F401,F403
from .online import *  # noqa: F401,F403
from .relation import *  # noqa: F401,F403
from .transport import *  # noqa: F401,F403
from .feature import *  # noqa: F401,F403

__all__ = [*divergences.__all__, *feature.__all__, *logit.__all__, *online.__all__, *relation.__all__, *transport.__all__]
