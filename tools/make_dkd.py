"""Author the Decoupled KD chapter notebook (run once: python tools/make_dkd.py)."""
from nbgen import write

cells = [
("md", r"""
# Decoupled Knowledge Distillation (Zhao, Cui, Song, Qiu & Liang, CVPR 2022)

## Claim

Zhao et al. {cite}`zhao2022dkd` rewrite the classical KD loss {cite}`hinton2015distilling` for one
sample as the sum of two parts: **TCKD**, a binary KL divergence between teacher and student on
"target class vs. everything else", and **NCKD**, a KL divergence between their distributions over
the *non-target* classes only, renormalised. In KD the second part is multiplied by
$1 - p^{\mathcal{T}}_{t}$, the teacher's probability of *not* predicting the label, so the better
the teacher knows a sample, the less its non-target knowledge is used. DKD decouples the two and
weights them by free constants $\alpha$ and $\beta$. Their claims, with their numbers:

| claim | paper's evidence |
|---|---|
| NCKD is "the prominent reason why logit distillation works"; TCKD transfers knowledge about the "difficulty" of samples | abstract, and the TCKD/NCKD ablation of Sec. 3 on CIFAR-100 (the ablation's numbers are not checked against the paper here) |
| The $(1 - p^{\mathcal{T}}_{t})$ factor suppresses NCKD exactly on the samples the teacher is sure of | Sec. 3.2, Eq. 7 |
| DKD beats KD | CIFAR-100, resnet32x4 → resnet8x4: KD **73.33** → DKD **76.32**; wrn40_2 → wrn16_2: 74.92 → 76.23; resnet56 → resnet20: 70.66 → 71.97; vgg13 → vgg8: 72.98 → 74.68 (mdistiller README, mean of 5 runs, best epoch) |

This chapter checks, on scikit-learn's 8 × 8 digits with the book's shared MLP teacher and a
data-starved MLP student (cpu profile), three pre-registered claims, each as a paired difference
of test accuracy over seeds:

1. **NCKD carries the gain**: a student trained with CE + NCKD alone beats one trained with
   CE + TCKD alone (expected: *greater*), and beats CE alone (expected: *greater*);
2. **DKD ≥ KD**: DKD at the paper's defaults (α = 1, β = 8, T = 4, 20-epoch warm-up) beats KD at the
   CRD defaults (T = 4, soft weight 0.9) (expected: *greater*).

A sweep over β ∈ {1, 2, 4, 8} and a look at the teacher's confidence show *why* β matters. The
paper profile runs resnet32x4 → resnet8x4 on CIFAR-100 under the CRD protocol.
"""),
("code", r"""
profile = "cpu"              # smoke | cpu | paper (set by `kdlib run`)
dataset = "digits"           # "digits" (cpu) or "cifar100" (paper, CRD protocol)
data_root = ""               # folder holding cifar-100-python/ (empty: the kdlib cache)
max_train = 0                # keep this many training images (0: all; smoke runs)
seeds = 10                   # students per configuration, paired by seed
teacher_arch = "mlp"         # digits teacher: MLP 64-512-512-10 with dropout (shared with hinton2015_kd)
teacher_hidden = [512, 512]  # hidden widths (MLP teachers only)
teacher_dropout = 0.2        # dropout of the MLP teacher
teacher_epochs = 60          # teacher training epochs
student_arch = "mlp"         # digits student: MLP 64-32-10
student_hidden = [32]        # hidden widths (MLP students only)
student_subset = 0.25        # fraction of the training split the student sees (data-starved)
epochs = 200                 # student training epochs
batch_size = 64              # minibatch size (CRD: 64)
optimizer = "adam"           # "adam" (digits) or "sgd" (CRD)
lr = 0.003                   # learning rate (CRD: 0.05)
weight_decay = 0.0           # CRD: 5e-4
lr_milestones = []           # epochs at which lr is multiplied by 0.1 (CRD: [150, 180, 210])
temperature = 4.0            # T of KD and DKD (CRD and mdistiller: 4)
kd_alpha = 0.9               # KD baseline: weight of the soft term, CE gets the rest (CRD: 0.9)
alpha = 1.0                  # DKD weight of TCKD (mdistiller cfg.DKD.ALPHA)
beta = 8.0                   # DKD weight of NCKD for the claim (mdistiller default for resnet32x4 pairs)
ce_weight = 1.0              # DKD weight of cross-entropy (mdistiller cfg.DKD.CE_WEIGHT)
warmup_epochs = 20           # linear warm-up of the DKD part over the first epochs (mdistiller: 20)
betas = [1, 2, 4, 8]         # NCKD weights swept at alpha fixed
ablation = True              # also train the TCKD-only and NCKD-only students
ablation_weight = 1.0        # weight of the single kept term in the ablation students
train_ce = True              # also train the no-teacher CE student
""", ["parameters"]),
("code", r"""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from tqdm.auto import tqdm

from kdlib import book, data, repro, results, zoo
from kdlib.losses import dkd_loss, dkd_terms, kd_loss
from kdlib.methods import CE, KD
from kdlib.methods.dkd import DKD
from kdlib.tasks import load_task, make_model, teacher_spec
from kdlib.train import evaluate, train

KEY = "dkd"
repro.set_threads()
book.set_style()
task = load_task(dataset, data_root=data_root, max_train=max_train)
seed_list = list(range(seeds))
recipe = dict(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
              weight_decay=weight_decay, lr_milestones=lr_milestones or None)
beta_list = sorted({float(b) for b in betas} | {float(beta)})



def dkd_name(b):
    return f"DKD β={b:g}"


timer = repro.Timer()
print(f"{dataset}: {len(task.train[0])} train / {len(task.test[0])} test, seeds {seed_list}")
"""),
("md", r"""
## Method

Write $p = \mathrm{softmax}(z/T)$ for a sample whose label is $t$, $b = [p_t,\ 1 - p_t]$ for the
binary "target vs. rest" distribution and $\hat p_i = p_i / (1 - p_t)$, $i \ne t$, for the
distribution over the non-target classes. Then, for teacher $\mathcal{T}$ and student $\mathcal{S}$,

$$
\mathrm{KL}\big(p^{\mathcal{T}} \,\|\, p^{\mathcal{S}}\big)
= \underbrace{\mathrm{KL}\big(b^{\mathcal{T}} \,\|\, b^{\mathcal{S}}\big)}_{\text{TCKD}}
+ \big(1 - p^{\mathcal{T}}_{t}\big)\,
\underbrace{\mathrm{KL}\big(\hat p^{\mathcal{T}} \,\|\, \hat p^{\mathcal{S}}\big)}_{\text{NCKD}}
\tag{Eq. 7}
$$

an identity, not an approximation. DKD replaces the sample-dependent weight by constants:

$$
\mathcal{L}_{\text{DKD}} = w_{\text{CE}}\,\mathrm{CE}(y, p^{\mathcal{S}}_{T=1})
+ \lambda(e)\,T^2\big(\alpha\,\text{TCKD} + \beta\,\text{NCKD}\big),
\qquad \lambda(e) = \min\!\big(e / 20,\ 1\big)
\tag{Eq. 8}
$$

with $e$ the (1-based) epoch: the official code ramps the distillation part up linearly over the
first 20 epochs (`mdistiller/distillers/DKD.py`; the paper does not show it in Eq. 8). The book's
loop counts epochs from 0, so the method uses $(e_0 + 1)/20$: the same factor, epoch for epoch. The
loss and the method, as the library has them:
"""),
("code", r"""
book.show_source(dkd_terms, dkd_loss, DKD)
"""),
("md", r"""
A numerical check of Eq. 7 on random logits, per sample:
"""),
("code", r"""
g = torch.Generator().manual_seed(0)
zs, zt = torch.randn(6, 10, generator=g), 3 * torch.randn(6, 10, generator=g)
y = torch.randint(0, 10, (6,), generator=g)
tckd, nckd, p_gt = dkd_terms(zs, zt, y, temperature)
lhs = kd_loss(zs, zt, temperature) / temperature**2
rhs = (tckd + (1 - p_gt) * nckd).mean()
print(f"KL(p_t || p_s) = {lhs:.6f}   TCKD + (1 - p_t,gt) NCKD = {rhs:.6f}")
"""),
("md", r"""
## Experiment

**Teacher.** The same spec as the Hinton chapter's, so the zoo trains it once for both chapters.
"""),
("code", r"""
teacher_recipe = {**recipe, "epochs": teacher_epochs}
spec = teacher_spec(dataset, teacher_arch, task.num_classes, teacher_recipe, hidden=teacher_hidden, dropout=teacher_dropout,
                    data_root=data_root, max_train=max_train)
with timer("teacher"):
    teacher = zoo.get(spec).to(task.device)
teacher_metrics = evaluate(teacher, task.test)
print(f"teacher {teacher_arch}: test accuracy {teacher_metrics['acc']:.2f}%  (zoo key {teacher.zoo_meta['key']})")
"""),
("md", r"""
**How much NCKD does KD use?** In KD the non-target term of each training sample is weighted by
$1 - p^{\mathcal{T}}_{t}$ at temperature $T$. For a teacher that fits its training set, that weight is
small on most samples; DKD gives every sample the same weight $\beta$.
"""),
("code", r"""
with torch.no_grad():
    train_logits = torch.cat([teacher(task.train[0][i:i + 1024]).float().cpu() for i in range(0, len(task.train[0]), 1024)])
p_gt_by_t = {t: train_logits.div(t).softmax(-1).gather(1, task.train[1].cpu()[:, None]).squeeze(1).numpy()
             for t in (1.0, temperature)}
pgt = pd.DataFrame([{"T": f"T={t:g}", "p_gt": float(v)} for t, vals in p_gt_by_t.items() for v in vals])
nckd_weight_kd = float((1 - p_gt_by_t[temperature]).mean())

fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
sns.histplot(data=pgt, x="p_gt", hue="T", bins=40, stat="percent", common_norm=False, element="step", ax=axes[0])
axes[0].set(xlabel="teacher probability of the label, $p^T_t$", ylabel="% of training samples",
            title="The teacher is confident")
w = np.sort(1 - p_gt_by_t[temperature])
axes[1].plot(np.linspace(0, 100, len(w)), w, label=f"KD: $1 - p^T_t$ (T={temperature:g})")
axes[1].axhline(beta, color="C1", ls="--", label=f"DKD: β = {beta:g}")
axes[1].set(yscale="log", xlabel="training samples, sorted (%)", ylabel="weight of NCKD",
            title="Effective weight of the non-target term")
axes[1].legend()
plt.show()
print(f"mean weight of NCKD in KD at T={temperature:g}: {nckd_weight_kd:.3f}; in DKD: {beta:g}")
"""),
("md", r"""
**Students.** For every seed, each student sees the same class-balanced `student_subset` of the
training split and starts from the same initialisation, so the methods are compared *paired by
seed*: CE on labels; KD (T = 4, soft weight 0.9); the two halves of Eq. 7 on their own (CE +
TCKD, CE + NCKD, each with unit weight: the ablation); and DKD at each β of the sweep.
"""),
("code", r"""
methods = {}
if train_ce:
    methods["CE"] = CE()
methods["KD"] = KD(temperature=temperature, alpha=kd_alpha)
if ablation:
    methods["TCKD only"] = DKD(alpha=ablation_weight, beta=0.0, temperature=temperature,
                               ce_weight=ce_weight, warmup_epochs=warmup_epochs)
    methods["NCKD only"] = DKD(alpha=0.0, beta=ablation_weight, temperature=temperature,
                               ce_weight=ce_weight, warmup_epochs=warmup_epochs)
for b in beta_list:
    methods[dkd_name(b)] = DKD(alpha=alpha, beta=b, temperature=temperature,
                               ce_weight=ce_weight, warmup_epochs=warmup_epochs)

rows = []
with timer("students"), tqdm(total=len(seed_list) * len(methods), desc="students") as bar:
    for seed in seed_list:
        subset = data.stratified_subset(task.train, student_subset, seed=seed) if student_subset < 1 else task.train
        for name, method in methods.items():
            student = make_model(student_arch, task.num_classes, student_hidden, seed=seed).to(task.device)
            train(student, method, subset, teacher=teacher, seed=seed, augment=task.augment,
                  progress=False, **recipe)
            rows.append({"seed": seed, "method": name, "beta": getattr(method, "beta", None),
                         **evaluate(student, task.test, teacher)})
            bar.update()
df = pd.DataFrame(rows)
df.groupby("method", sort=False)[["acc", "nll", "ece", "agreement"]].agg(["mean", "std"]).round(2)
"""),
("md", r"""
## Results

Verdicts follow the rule in {doc}`../conventions`: the 95 % t-interval of the per-seed paired
difference must lie on the paper's side of zero to count as reproduced.
"""),
("code", r"""
def acc(method):
    return df[df.method == method].sort_values("seed")["acc"].to_numpy()


claims = []
if ablation:
    claims.append(results.paired_claim(
        "nckd_beats_tckd", "NCKD carries the gain: a student trained with CE + NCKD beats one trained with CE + TCKD",
        "abstract: NCKD is 'the prominent reason why logit distillation works' (Sec. 3 ablation, numbers not checked here)",
        acc("NCKD only"), acc("TCKD only"), direction="greater", unit="points",
        what="test accuracy, NCKD only − TCKD only"))
    if train_ce:
        claims.append(results.paired_claim(
            "nckd_beats_ce", "NCKD alone helps: CE + NCKD beats CE alone",
            "abstract: NCKD is 'the prominent reason why logit distillation works' (ablation numbers not checked here)",
            acc("NCKD only"), acc("CE"), direction="greater", unit="points",
            what="test accuracy, NCKD only − CE"))
claims.append(results.paired_claim(
    "dkd_beats_kd", f"DKD (α={alpha:g}, β={beta:g}, T={temperature:g}) beats KD (T={temperature:g})",
    "CIFAR-100 resnet32x4 → resnet8x4: KD 73.33 vs DKD 76.32 (mdistiller README)",
    acc(dkd_name(beta)), acc("KD"), direction="greater", unit="points", what="test accuracy, DKD − KD"))

params = {k: v for k, v in globals().items() if k in {
    "profile", "dataset", "max_train", "seeds", "teacher_arch", "teacher_hidden", "teacher_dropout", "teacher_epochs",
    "student_arch", "student_hidden", "student_subset", "epochs", "batch_size", "optimizer", "lr", "weight_decay",
    "lr_milestones", "temperature", "kd_alpha", "alpha", "beta", "ce_weight", "warmup_epochs", "betas", "ablation",
    "ablation_weight", "train_ce"}}
metrics = [{**r, "teacher_acc": teacher_metrics["acc"], "nckd_weight_kd": nckd_weight_kd} for r in rows]
path = results.save(KEY, profile, params, seed_list, metrics, claims, durations=timer.durations)
res = results.load(KEY, profile)
book.claims_table(res)
"""),
("code", r"""
fig, ax = plt.subplots(figsize=(9, 3.6))
order = list(methods)
sns.stripplot(data=df, x="method", y="acc", order=order, color="0.6", size=4, ax=ax)
sns.pointplot(data=df, x="method", y="acc", order=order, errorbar=("ci", 95), linestyle="none", capsize=0.2, ax=ax)
ax.axhline(teacher_metrics["acc"], ls="--", color="k", lw=1, label=f"teacher ({teacher_metrics['acc']:.1f}%)")
ax.set(xlabel="", ylabel="test accuracy (%)", title=f"Student on {student_subset:.0%} of the training split, {len(seed_list)} seeds")
ax.legend(loc="lower right")
plt.xticks(rotation=20)
plt.show()
"""),
("code", r"""
# The beta sweep as paired gains over KD, seed by seed
kd_acc = df[df.method == "KD"].set_index("seed")["acc"]
sweep = df[df.method.str.startswith("DKD")].copy()
sweep["gain over KD"] = sweep["acc"].to_numpy() - kd_acc.loc[sweep["seed"]].to_numpy()
fig, ax = plt.subplots(figsize=(5.5, 3.4))
sns.pointplot(data=sweep, x="beta", y="gain over KD", errorbar=("ci", 95), capsize=0.15, ax=ax)
ax.axhline(0, color="k", lw=1)
ax.set(xlabel="β (weight of NCKD), α = %g" % alpha, ylabel="DKD − KD (points)", title="The β sweep, paired by seed")
plt.show()
"""),
("code", r"""
by_claim = {c["id"]: c for c in res["claims"]}
for cid in ("nckd_beats_tckd", "nckd_beats_ce", "dkd_beats_kd"):
    c = by_claim.get(cid)
    book.glue(f"{cid}_ours", book.fmt_ours(c["ours"]) if c else "not run")
    book.glue(f"{cid}_verdict", c["verdict"] if c else "not run")
book.glue("teacher_acc", f"{teacher_metrics['acc']:.1f} %")
book.glue("nckd_weight_kd", f"{nckd_weight_kd:.3f}")
book.glue("median_pgt", f"{np.median(p_gt_by_t[temperature]):.3f}")
best = sweep.groupby("beta")["gain over KD"].mean()
book.glue("best_beta", f"{best.idxmax():g}")
"""),
("md", r"""
**Reading the results.** The teacher reaches {glue:text}`teacher_acc` on the test split. At
T = 4 its median probability of the label on the training samples is {glue:text}`median_pgt`, so
KD weights the non-target term by {glue:text}`nckd_weight_kd` on average, against β = 8 in DKD: the
suppression of Eq. 7 is strong even on this small problem.

The pre-registered claims: NCKD alone against TCKD alone is judged
**{glue:text}`nckd_beats_tckd_verdict`** ({glue:text}`nckd_beats_tckd_ours`); NCKD alone against
CE is judged **{glue:text}`nckd_beats_ce_verdict`** ({glue:text}`nckd_beats_ce_ours`); DKD against
KD is judged **{glue:text}`dkd_beats_kd_verdict`** ({glue:text}`dkd_beats_kd_ours`). In the sweep the
largest mean gain over KD is at β = {glue:text}`best_beta`; the sweep is descriptive (no claim
was registered on it, and β was not tuned on the test split).
"""),
("code", r"""
# The paper profile's numbers, beside the anchors', when a paper run exists.
paper = results.load(KEY, "paper")
if paper is None:
    print("No paper-profile run yet: `kdlib run dkd --profile paper` on a GPU.")
else:
    pdf = results.frame(paper)
    ours = pdf.groupby("method")["acc"].agg(["mean", "std", "count"]).round(2)
    b = paper["params"]["beta"]
    anchors = {"CE": 72.50, "KD": 73.33, f"DKD β={b:g}": 76.32 if b == 8 else float("nan")}
    ours["anchor: resnet32x4 → resnet8x4 (RepDistiller / mdistiller)"] = [anchors.get(m, float("nan")) for m in ours.index]
    display(ours)
    display(book.claims_table(paper))
"""),
("md", r"""
## Deviations

- **Data and models.** 8 × 8 digits (1,797 images; fixed 60/20/20 stratified split) instead of
  CIFAR-100; the book's shared MLP teacher (64-512-512-10, dropout) and a 64-32-10 student on a 25 %
  class-balanced subset, so that the student is data-starved and a teacher can help it.
- **Optimiser and schedule.** Adam (lr 3 × 10⁻³, 200 epochs, batch 64) at the cpu profile; the
  20-epoch warm-up is kept in epochs, so it covers 10 % of training instead of 20 / 240 ≈ 8 %. The
  paper profile uses the CRD recipe (SGD 0.05, momentum 0.9, wd 5 × 10⁻⁴, 240 epochs, decays at
  150/180/210).
- **Baselines as in the paper's comparison.** KD uses the CRD weights (CE 0.1, soft 0.9) and no
  warm-up, DKD mdistiller's (CE 1.0, warm-up 20): the two rows of the paper's table come from two
  code bases with these settings, and we compare the same two recipes.
- **The ablation.** The TCKD-only and NCKD-only students keep CE (weight 1) and one term with unit
  weight, T = 4, and the warm-up. This is our reading of the paper's ablation; its table's numbers are
  not quoted here because we could not check them against the paper's text.
- **β.** β = 8 (mdistiller's default and its value for resnet32x4 → resnet8x4) is the pre-registered
  value for the claim on digits; the paper tunes β per CIFAR pair (2 for the ResNet56/110 pairs, 6 for
  the WRN and VGG pairs).
- **Reporting.** Test accuracy at the last epoch, over 10 seeds (cpu) with paired intervals;
  mdistiller reports the best test accuracy over epochs, averaged over 5 runs.
"""),
("md", r"""
## Exercises

1. **The warm-up.** Rerun with `kdlib run dkd -p warmup_epochs=0`. Does DKD at β = 8 still beat KD?
   Plot the first epochs' training loss of one DKD student with and without the warm-up.
2. **KD is DKD with a per-sample β.** Show numerically that α = 1 and β = 1 − p_t,gt (per sample)
   gives back the KD loss, and explain why a confident teacher makes KD ignore its own dark knowledge.
3. **Temperature and suppression.** How does the mean weight $1 - p^{\mathcal{T}}_t$ change with T?
   At which temperature does KD weight NCKD as much as DKD with β = 1 would?
"""),
("code", r"""
# Solution to 1 (sketch): one seed, DKD at beta with and without the warm-up; the loss history shows the ramp.
subset = data.stratified_subset(task.train, student_subset, seed=0) if student_subset < 1 else task.train
for w in ((warmup_epochs, 0) if dataset == "digits" else ()):  # two extra full runs: digits only
    student = make_model(student_arch, task.num_classes, student_hidden, seed=0).to(task.device)
    hist = train(student, DKD(alpha=alpha, beta=beta, temperature=temperature, ce_weight=ce_weight, warmup_epochs=w),
                 subset, teacher=teacher, seed=0, augment=task.augment, progress=False, **recipe)
    print(f"warm-up {w:>2}: first losses {np.round(hist['loss'][:3], 3)}, test accuracy {evaluate(student, task.test)['acc']:.2f}%")
""", ["hide-input", "solution"]),
("code", r"""
# Solution to 2: T^2 mean(TCKD + (1 - p_gt) NCKD) is exactly KD's soft term.
x, y = task.train[0][:256], task.train[1][:256]
student = make_model(student_arch, task.num_classes, student_hidden, seed=0).to(task.device)
with torch.no_grad():
    zs, zt = student(x), teacher(x)
tckd, nckd, p_gt = dkd_terms(zs, zt, y, temperature)
print(f"KD soft term {kd_loss(zs, zt, temperature):.6f} = DKD with per-sample beta "
      f"{temperature**2 * (tckd + (1 - p_gt) * nckd).mean():.6f}")
""", ["hide-input", "solution"]),
("code", r"""
# Solution to 3: the mean non-target weight 1 - p_gt of KD as a function of T.
for t in (1, 2, 4, 8, 16, 32):
    p = train_logits.div(t).softmax(-1).gather(1, task.train[1].cpu()[:, None]).squeeze(1)
    print(f"T={t:>2}: mean 1 - p_gt = {float((1 - p).mean()):.3f}")
""", ["hide-input", "solution"]),
]

write("notebooks/dkd.ipynb", cells)
