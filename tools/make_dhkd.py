"""Author the Dual-Head KD chapter notebook (run once: python tools/make_dhkd.py)."""
from nbgen import write

cells = [
("md", r"""
# Dual-Head Knowledge Distillation (Yang et al., 2024)

## Claim

Softmax KD compares *probabilities*, and the softmax forgets part of the logits: $[2, 3, 4]$ and
$[-2, -1, 0]$ give the same distribution. Yang, Zong, Huang, Feng and An {cite}`yang2025dhkd`
add a *logit-level* loss, **BinaryKL**, which treats every class as its own binary problem
through a sigmoid. Their surprise: putting it on the same linear classifier as the
cross-entropy makes the student *worse* than either loss alone. Their analysis, based on neural
collapse, says the two gradients conflict inside the linear head but not in the backbone. The fix,
**Dual-Head KD (DHKD)**, gives the logit-level loss its own auxiliary head on the shared features
(dropped at inference), and optionally projects away the part of the KD gradient that conflicts
with the CE gradient (*gradient alignment*, GA).

| claim | paper's evidence |
|---|---|
| CE + BinaryKL on **one** head does worse than CE alone and than BinaryKL alone (the head collapses) | Fig. 1(b), CIFAR-100: the CE + BinaryKL bar is marked collapsed, below both single losses [verify values] |
| A separate auxiliary head recovers the gain: DHKD beats the shared head and the CE-trained student | Fig. 1(b): DHKD highest; Tables 1–4 (CIFAR-100, ImageNet) against KD, DKD, DIST [verify values] |
| Gradient alignment adds to the dual head | ablation [verify table] |

Reviewers of an earlier version noted that the gains over DKD/DIST are small (often +0.1–0.2
points) [second-hand]. The paper's per-pair numbers have not been checked here and are not quoted.

**What this chapter checks.** On the cpu profile: digits, a 64-256-10 MLP teacher and a
64-32-10 MLP student trained on the full training split with an SGD schedule long enough to
reach 100 % training accuracy well before the end (the *terminal phase* in which neural collapse
is defined); five students per seed: CE, BinaryKL alone, CE + BinaryKL on one shared head, two
heads, two heads with GA. On the paper profile: CIFAR-100, resnet32x4 → resnet8x4, CRD protocol.

**Pre-registered expectations** (the paper's directions): the shared head is *below* CE and
*below* BinaryKL alone; two heads with GA are *above* the shared head and *above* CE; GA is
*above* two heads without it. On 360 digits test images the gaps may be within noise; an
inconclusive verdict will be reported as such.
"""),
("code", r"""
profile = "cpu"              # smoke | cpu | paper (set by `kdlib run`)
dataset = "digits"           # "digits" (cpu) or "cifar100" (paper, CRD protocol)
data_root = ""               # folder holding cifar-100-python/ (empty: the kdlib cache)
max_train = 0                # keep this many training images (0: all; smoke runs)
seeds = 8                    # students per variant, paired by seed
teacher_arch = "mlp"         # digits teacher: MLP 64-256-10 with dropout
teacher_hidden = [256]       # hidden widths, MLP teachers only
teacher_dropout = 0.2        # dropout of the MLP teacher
teacher_epochs = 60          # teacher training epochs
student_arch = "mlp"         # digits student: MLP 64-32-10
student_hidden = [32]        # hidden widths, MLP students only
epochs = 120                 # student training epochs, long into the terminal phase
batch_size = 64              # minibatch size (CRD: 64)
optimizer = "sgd"            # SGD with momentum 0.9, as the official code
lr = 0.05                    # learning rate (CRD: 0.05)
weight_decay = 0.0005        # CRD: 5e-4
lr_milestones = []           # x0.1 at these epochs; empty: the CRD milestones scaled to `epochs`
temperature = 2.0            # BinaryKL temperature (README: --BinaryKL_T 2)
gamma = 1.0                  # weight of CE on head 1 (README: -r 1)
alpha = 1.0                  # weight of the logit-level loss (README: -a 1)
nonlinear = True             # auxiliary head Linear-200, Dropout, BN, ReLU, Linear (README: --nonlinear)
single_head_loss = "binary_kl"     # logit-level loss of the one-head runs (the paper's Fig. 1)
dual_head_loss = "binary_kl_norm"  # logit-level loss of the two-head runs (DHKD's)
""", ["parameters"]),
("code", r"""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from tqdm.auto import tqdm

from kdlib import book, data, repro, results, zoo
from kdlib.losses import binary_kl, binary_kl_norm
from kdlib.methods.base import CE
from kdlib.methods.dhkd import DHKD, aux_head, classifier_of
from kdlib.tasks import load_task, make_model, teacher_spec
from kdlib.train import evaluate, predict_logits, train

KEY = "dhkd"
# small MLPs gain nothing from intra-op threads; one thread is faster on a shared machine
repro.set_threads(1 if dataset == "digits" else None)
book.set_style()
task = load_task(dataset, data_root=data_root, max_train=max_train)
seed_list = list(range(seeds))


def recipe_for(n_epochs):
    # the CRD schedule: x0.1 at 150/180/210 of 240 epochs, scaled when no milestones are given
    milestones = lr_milestones or [round(f * n_epochs / 240) for f in (150, 180, 210)]
    return dict(epochs=n_epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
                weight_decay=weight_decay, lr_milestones=milestones)


recipe = recipe_for(epochs)
# the nonlinear aux head has a BatchNorm: never hand it a last minibatch of one sample
drop_last = len(task.train[0]) % batch_size == 1



timer = repro.Timer()
print(f"{dataset}: {len(task.train[0])} train / {len(task.test[0])} test, seeds {seed_list}; schedule {recipe}")
"""),
("md", r"""
## Method

With $\sigma$ the sigmoid and temperature $T$, BinaryKL compares each class's logit as an
independent Bernoulli, and BinaryKL-Norm (the loss DHKD trains with) compares the *gap* between
student and teacher logits with a fair coin:

$$
\mathcal{L}_{\text{BinaryKL}} = \frac{T^2}{N}\sum_{n}\sum_{c} \mathrm{KL}\Big(\mathrm{Bern}\big(\sigma(z^t_{n,c}/T)\big)\,\Big\|\,\mathrm{Bern}\big(\sigma(z^s_{n,c}/T)\big)\Big)
\qquad
\mathcal{L}_{\text{BinaryKL-Norm}} = \frac{T^2}{N}\sum_{n}\sum_{c} \mathrm{KL}\Big(\mathrm{Bern}(\tfrac12)\,\Big\|\,\mathrm{Bern}\big(\sigma((z^s_{n,c}-z^t_{n,c})/T)\big)\Big)
$$

The second equals $\frac{T^2}{N}\sum \log\cosh\frac{z^s - z^t}{2T}$: a robust logit matching,
quadratic for small gaps and linear for large ones. Writing $h$ for the student's penultimate
feature, $W_1$ for its classifier and $g$ for the auxiliary head, DHKD minimises

$$
\mathcal{L} = \gamma\,\mathrm{CE}\big(y, W_1 h\big) + \alpha\,\mathcal{L}_{\text{BinaryKL-Norm}}\big(g(h), z^t\big),
$$

and predicts with $W_1 h$ only. With gradient alignment, if $\langle g_{KD}, g_{CE}\rangle < 0$ the
KD gradient is replaced by $g_{KD} - \frac{\langle g_{KD}, g_{CE}\rangle}{\|g_{CE}\|^2} g_{CE}$ before the
two are added (PCGrad). The library code, shown rather than retyped:
"""),
("code", r"""
book.show_source(binary_kl, binary_kl_norm, aux_head, DHKD)
"""),
("md", r"""
## Experiment

**Teacher.** Trained once on the full training split and cached in the teacher zoo.
"""),
("code", r"""
spec = teacher_spec(dataset, teacher_arch, task.num_classes, recipe_for(teacher_epochs), hidden=teacher_hidden, dropout=teacher_dropout,
                    data_root=data_root, max_train=max_train)
with timer("teacher"):
    teacher = zoo.get(spec).to(task.device)
teacher_metrics = evaluate(teacher, task.test)
print(f"teacher {teacher_arch}: test accuracy {teacher_metrics['acc']:.2f}%  (zoo key {teacher.zoo_meta['key']})")
"""),
("md", r"""
**Students.** For every seed all five variants start from the same student initialisation and
see the same minibatches; the auxiliary head is initialised from its own seed. Each student is
evaluated on its head 1, the only head used at inference. We also record the training accuracy
(has the run reached the terminal phase?), the mean norm of the test logits (a logit-level loss
pins the logits to the teacher's scale, while CE alone lets them grow), and for GA the share of
steps whose two gradients conflicted.
"""),
("code", r"""
feature_dim = classifier_of(make_model(student_arch, task.num_classes, student_hidden)).in_features


def variants():
    dh = dict(temperature=temperature, gamma=gamma, alpha=alpha, nonlinear=nonlinear)
    return {
        "CE": lambda: CE(),
        "BinaryKL alone": lambda: DHKD(feature_dim, task.num_classes, temperature=temperature, alpha=alpha,
                                       gamma=0.0, dual_head=False, gradient_alignment=False, loss=single_head_loss),
        "CE + BinaryKL, one head": lambda: DHKD(feature_dim, task.num_classes, dual_head=False,
                                                gradient_alignment=False, loss=single_head_loss, **dh),
        "two heads": lambda: DHKD(feature_dim, task.num_classes, gradient_alignment=False, loss=dual_head_loss, **dh),
        "two heads + GA": lambda: DHKD(feature_dim, task.num_classes, gradient_alignment=True, loss=dual_head_loss, **dh),
    }


rows = []
with timer("students"), tqdm(total=len(seed_list) * len(variants()), desc="students") as bar:
    for seed in seed_list:
        for name, make_method in variants().items():
            student = make_model(student_arch, task.num_classes, student_hidden, seed=seed).to(task.device)
            repro.seed_everything(seed + 10_000)  # the aux head's own initialisation
            method = make_method().to(task.device)
            train(student, method, task.train, teacher=teacher, seed=seed, augment=task.augment,
                  drop_last=drop_last, progress=False, **recipe)
            logits = predict_logits(student, task.test[0])
            rows.append({"seed": seed, "method": name, **evaluate(student, task.test, teacher),
                         "train_acc": evaluate(student, task.train)["acc"],
                         "logit_norm": float(logits.norm(dim=-1).mean()),
                         "conflict_share": (100.0 * float(method.conflicts) / method.steps
                                            if getattr(method, "steps", 0) else None)})
            bar.update()
df = pd.DataFrame(rows)
order = list(variants())
df.groupby("method", sort=False)[["acc", "train_acc", "nll", "agreement", "logit_norm"]].agg(["mean", "std"]).round(2)
"""),
("md", r"""
## Results

Each claim is a paired difference per seed, judged by the rule in {doc}`../conventions`: the 95 %
t-interval of the difference must lie wholly on the paper's side of zero to count as reproduced.
"""),
("code", r"""
def acc(method):
    return df[df.method == method].sort_values("seed")["acc"].to_numpy()


single = acc("CE + BinaryKL, one head")
claims = [
    results.paired_claim(
        "shared_head_below_ce", "CE + BinaryKL on one shared head does worse than CE alone",
        "Fig. 1(b), CIFAR-100: CE + BinaryKL marked collapsed, below CE [verify values]",
        single, acc("CE"), direction="less", unit="points", what="test accuracy, one head − CE"),
    results.paired_claim(
        "shared_head_below_binary_kl", "CE + BinaryKL on one shared head does worse than BinaryKL alone",
        "Fig. 1(b): below BinaryKL alone [verify values]",
        single, acc("BinaryKL alone"), direction="less", unit="points", what="test accuracy, one head − BinaryKL alone"),
    results.paired_claim(
        "aux_head_recovers", "A separate auxiliary head recovers the gain: two heads + GA beat the shared head",
        "Fig. 1(b): DHKD above CE + BinaryKL [verify values]",
        acc("two heads + GA"), single, direction="greater", unit="points", what="test accuracy, DHKD − one head"),
    results.paired_claim(
        "dhkd_beats_ce", "DHKD (two heads + GA) beats the CE-trained student",
        "Fig. 1(b) and Tables 1–4: DHKD above the student trained alone [verify values]",
        acc("two heads + GA"), acc("CE"), direction="greater", unit="points", what="test accuracy, DHKD − CE"),
    results.paired_claim(
        "ga_helps", "Gradient alignment adds to the dual head",
        "ablation of GA [verify table]",
        acc("two heads + GA"), acc("two heads"), direction="greater", unit="points",
        what="test accuracy, two heads with GA − without"),
]

params = {k: v for k, v in globals().items() if k in {
    "profile", "dataset", "max_train", "seeds", "teacher_arch", "teacher_hidden", "teacher_dropout", "teacher_epochs",
    "student_arch", "student_hidden", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "lr_milestones",
    "temperature", "gamma", "alpha", "nonlinear", "single_head_loss", "dual_head_loss"}}
metrics = [{**r, "teacher_acc": teacher_metrics["acc"]} for r in rows]
path = results.save(KEY, profile, params, seed_list, metrics, claims, durations=timer.durations)
res = results.load(KEY, profile)
book.claims_table(res)
"""),
("code", r"""
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
ax = axes[0]
sns.stripplot(data=df, x="method", y="acc", order=order, color="0.6", size=4, ax=ax)
sns.pointplot(data=df, x="method", y="acc", order=order, errorbar=("ci", 95), linestyle="none", capsize=0.2, ax=ax)
ax.axhline(teacher_metrics["acc"], ls="--", color="k", lw=1, label=f"teacher ({teacher_metrics['acc']:.1f}%)")
ax.set(xlabel="", ylabel="test accuracy (%)", title=f"Head 1 of each student, {len(seed_list)} seeds")
ax.legend(loc="lower right")
ax.tick_params(axis="x", rotation=20)
ax = axes[1]
sns.barplot(data=df, x="method", y="logit_norm", order=order, errorbar=("ci", 95), ax=ax, color="C2")
ax.set(xlabel="", ylabel="mean ‖z‖ of test logits", title="Logit scale of head 1")
ax.tick_params(axis="x", rotation=20)
plt.tight_layout()
plt.show()
"""),
("code", r"""
by_claim = {c["id"]: c for c in res["claims"]}
for cid, c in by_claim.items():
    book.glue(f"{cid}_ours", book.fmt_ours(c["ours"]))
    book.glue(f"{cid}_verdict", c["verdict"])
book.glue("teacher_acc", f"{teacher_metrics['acc']:.1f} %")
book.glue("min_train_acc", f"{df['train_acc'].min():.1f} %")
ga = df[df.method == "two heads + GA"]["conflict_share"]
book.glue("conflict_share", f"{ga.mean():.0f} %")
"""),
("md", r"""
**Reading the results.** The teacher reaches {glue:text}`teacher_acc`. The paper's
neural-collapse analysis assumes the terminal phase of training (zero training error); the lowest
final training accuracy among our students is {glue:text}`min_train_acc`, so the runs approach
that regime without all of them being in it. The shared head against CE is judged
**{glue:text}`shared_head_below_ce_verdict`** (one head − CE: {glue:text}`shared_head_below_ce_ours`),
and against BinaryKL alone **{glue:text}`shared_head_below_binary_kl_verdict`**
({glue:text}`shared_head_below_binary_kl_ours`). The auxiliary head against the shared head:
**{glue:text}`aux_head_recovers_verdict`** ({glue:text}`aux_head_recovers_ours`); DHKD against CE:
**{glue:text}`dhkd_beats_ce_verdict`** ({glue:text}`dhkd_beats_ce_ours`); gradient alignment:
**{glue:text}`ga_helps_verdict`** ({glue:text}`ga_helps_ours`). With GA, the KD and CE gradients
conflicted on {glue:text}`conflict_share` of the training steps.
"""),
("code", r"""
# The paper profile's numbers, beside the anchors', when a paper run exists.
paper = results.load(KEY, "paper")
if paper is None:
    print("No paper-profile run yet: `kdlib run dhkd --profile paper` on a GPU.")
else:
    pdf = results.frame(paper)
    ours = pdf.groupby("method", sort=False)["acc"].agg(["mean", "std", "count"]).round(2)
    anchors = {"CE": 72.50}  # resnet8x4 trained alone, RepDistiller; KD 73.33, DKD 76.32 (mdistiller)
    ours["anchor: resnet8x4 (RepDistiller)"] = [anchors.get(m, float("nan")) for m in ours.index]
    display(ours)
    print("Anchors for resnet32x4 → resnet8x4: student alone 72.50, KD 73.33, DKD 76.32 (anchors.md).")
"""),
("md", r"""
## Deviations

- **Data and scale.** Digits (1,078 training images, 10 classes) and MLPs (teacher 64-256-10 with
  dropout, student 64-32-10) instead of CIFAR-100/ImageNet CNNs; the paper profile uses
  resnet32x4 → resnet8x4 under the CRD protocol (the README's example pairs resnet32x4 with
  ShuffleNetV2).
- **Schedule.** The CRD schedule shape (SGD 0.05, momentum 0.9, wd 5 × 10⁻⁴, batch 64, ×0.1 at
  62.5 / 75 / 87.5 % of training) compressed to 120 epochs on digits; the teacher uses the same
  schedule over its own epochs.
- **Losses of the one-head runs.** "BinaryKL alone" and "CE + BinaryKL, one head" use plain
  BinaryKL, as the paper's Fig. 1 does; the two-head runs use BinaryKL-Norm, as DHKD and the
  official code do. The comparison "two heads + GA vs one head" therefore changes the head *and*
  the loss, as the paper's own Fig. 1(b) comparison does.
- **The one-head runs are not in the official code.** There, `--single_head --distill dhkd` would
  index the single logits tensor with `[1]` (a row, not a head); we build those baselines with
  the same method class (`dual_head=False`).
- **Numerical stability.** The official losses take `log(clamp(sigmoid(·), 1e-8, 1 − 1e-8))` in
  float32, where 1 − 10⁻⁸ rounds to 1: a logit gap above about 17·T makes the loss infinite. Our
  digits teacher has logits of that size, so `kdlib` computes the same quantity with log-sigmoid
  (identical wherever the official value is finite; tested against it).
- **Gradient alignment** follows `OptimGradAlign`: the inner product is over all parameters, and
  the projection subtracts a multiple of the *whole* CE gradient, so it also rescales the CE
  head's gradient (where the KD gradient is zero), not only the shared backbone's.
- **Reporting.** Test accuracy at the last epoch (the official script saves the best-epoch
  checkpoint and reports best accuracy).
"""),
("md", r"""
## Exercises

1. **Why does one head collapse?** For a single linear head, compute on one batch the cosine
   between the CE gradient and the BinaryKL gradient restricted to the head's weights, and the
   same cosine restricted to the backbone. The paper predicts conflict in the head, agreement in
   the backbone.
2. **Logit-level vs probability-level.** Show numerically that `kd_loss` is unchanged when the
   student's logits are shifted by a constant, while `binary_kl` is not. What information does
   BinaryKL see that softmax KD cannot?
3. **A linear auxiliary head.** Rerun with `-p nonlinear=false`. Does the auxiliary head need its
   own hidden layer on digits?
"""),
("code", r"""
# Solution to 1: gradient cosines of CE and BinaryKL on a single head, for one batch.
student = make_model(student_arch, task.num_classes, student_hidden, seed=0).to(task.device)
x, y = task.train[0][:256].to(task.device), task.train[1][:256].to(task.device)
with torch.no_grad():
    teacher_logits = teacher(x)
logits = student(x)
head = list(classifier_of(student).parameters())
body = [p for p in student.parameters() if all(p is not q for q in head)]
losses = {"ce": torch.nn.functional.cross_entropy(logits, y), "bkl": binary_kl(logits, teacher_logits, temperature)}
for part, params in (("head", head), ("backbone", body)):
    g = {k: torch.cat([t.flatten() for t in torch.autograd.grad(v, params, retain_graph=True)]) for k, v in losses.items()}
    print(f"{part:>8}: cos(g_CE, g_BinaryKL) = {torch.nn.functional.cosine_similarity(g['ce'], g['bkl'], dim=0):+.3f}")
print("(at initialisation; the paper's argument concerns the terminal phase, so repeat after training)")
""", ["hide-input", "solution"]),
("code", r"""
# Solution to 2: a constant shift of the logits.
from kdlib.losses import kd_loss

z = torch.randn(4, task.num_classes)
print(f"kd_loss(z + 3, z) = {kd_loss(z + 3, z, 4.0):.2e}   (softmax is shift-invariant)")
print(f"binary_kl(z + 3, z) = {binary_kl(z + 3, z, 2.0):.3f}   (each sigmoid sees the absolute logit)")
""", ["hide-input", "solution"]),
]

write("notebooks/dhkd.ipynb", cells)
