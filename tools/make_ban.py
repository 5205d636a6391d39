"""Author the Born-Again Networks chapter notebook (run once: python tools/make_ban.py)."""
from nbgen import write

cells = [
("md", r"""
# Born-Again Neural Networks (Furlanello et al., 2018)

## Claim

Furlanello et al. {cite}`furlanello2018born` distil a network into a student of **the same
architecture**: generation 0 is trained on labels, and each later generation is trained, from a
fresh initialisation, to match the softmax output of the one before. The students — *born-again
networks* (BANs) — beat their teachers. Two ablations ask which part of the teacher's output
does the work: **CWTM** keeps only the teacher's *confidence* (as a per-sample weight on the label
loss), **DKPP** keeps the teacher's top prediction and confidence but *permutes* the rest of its
output, destroying the class similarities. Both still beat the teacher in the paper.

| claim | paper's evidence (CIFAR-100 test error, %) |
|---|---|
| A born-again student beats its identical teacher | DenseNet-112-33: teacher 18.25 → BAN-1 17.61 [verify] |
| More generations keep helping, with diminishing returns | BAN-1 17.61 → BAN-2 17.22 → BAN-3 16.59; DenseNet-80-80: 17.16 → BAN-3 15.50 [verify] |
| The ensemble of the born-again generations is better still | BAN ensemble 15.68 [verify] |
| Confidence alone (CWTM) still beats the teacher | 17.84 vs 18.25 on DenseNet-112-33 [verify] |
| Permuted dark knowledge (DKPP) still beats the teacher | 17.84 / 17.43 / 16.84 / 16.34 on four DenseNets, each below its teacher [verify] |

The numbers are quoted from a secondary summary of the paper's Tables 1–2 and are marked
[verify] until checked against the paper; on CIFAR-10 the paper's gains are smaller and not
always positive.

**What this chapter checks.** On the cpu profile: an MLP 64-128-10 trained on a data-starved 30 %
class-balanced subset of the digits training split, generation 0 on labels, generations 1–3 by
the BAN loss, CWTM and DKPP taught by generation 0, and the BAN ensemble — over many seeds, each
seed one chain with its own subset. On the paper profile: resnet56 → resnet56 on CIFAR-100 under
the CRD protocol, with generation 0 a zoo resnet56.

**Pre-registered expectations.** Every claim is tested in the paper's direction (student or
ensemble *better* than generation 0; BAN-3 better than BAN-1). On digits we expect effects of
about half a point at most — one test image is 0.28 points — so a null result is a likely and
acceptable outcome, and will be reported as such.
"""),
("code", r"""
profile = "cpu"              # smoke | cpu | paper (set by `kdlib run`)
dataset = "digits"           # "digits" (cpu) or "cifar100" (paper, CRD protocol)
data_root = ""               # folder holding cifar-100-python/ (empty: the kdlib cache)
max_train = 0                # keep this many training images (0: all; smoke runs)
seeds = 20                   # born-again chains, each with its own subset and inits
arch = "mlp"                 # architecture of every generation (teacher and student are identical)
hidden = [128]               # hidden widths, MLP only: 64-128-10
subset = 0.3                 # fraction of the training split every generation sees (data-starved)
generations = 3              # born-again generations after generation 0
teacher_epochs = 200         # epochs of generation 0 (trained on labels, by the zoo)
epochs = 200                 # epochs of every later generation and of CWTM and DKPP
batch_size = 64              # minibatch size (CRD: 64)
optimizer = "adam"           # "adam" (digits) or "sgd" (CRD)
lr = 0.003                   # learning rate (CRD: 0.05)
weight_decay = 0.0           # CRD: 5e-4
lr_milestones = []           # epochs at which lr is multiplied by 0.1 (CRD: [150, 180, 210])
temperature = 1.0            # softmax temperature of the BAN and DKPP targets (paper: 1)
""", ["parameters"]),
("code", r"""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from tqdm.auto import tqdm

from kdlib import book, data, repro, results, zoo
from kdlib.losses import cwtm_weights, dkpp_permute, soft_cross_entropy
from kdlib.methods import ban
from kdlib.methods.ban import CWTM, DKPP, BornAgain
from kdlib.models import build
from kdlib.tasks import load_task
from kdlib.train import evaluate, metrics_from_logits, predict_logits, train

KEY = "ban"
# a 64-128-10 MLP is too small for intra-op parallelism: one thread is faster on a shared machine
repro.set_threads(1 if dataset == "digits" else None)
book.set_style()
task = load_task(dataset, data_root=data_root, max_train=max_train)
seed_list = list(range(seeds))
recipe = dict(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
              weight_decay=weight_decay, lr_milestones=lr_milestones or None)
arch_kwargs = {"hidden": hidden} if arch == "mlp" else {}


def make_model(init_seed):
    repro.seed_everything(init_seed)
    return build(arch, num_classes=task.num_classes, **arch_kwargs)


def generation0_spec(seed):
    # the zoo trains generation 0 on labels, on the same subset the later generations see
    spec = {"data": dataset, "arch": arch, "seed": seed, "recipe": {**recipe, "epochs": teacher_epochs},
            "arch_kwargs": arch_kwargs | {"num_classes": task.num_classes},
            "data_root": data_root, "max_train": max_train}
    if subset < 1:
        spec["subset"] = subset
    return spec


timer = repro.Timer()
print(f"{dataset}: {len(task.train[0])} train / {len(task.test[0])} test; every generation sees "
      f"{subset:.0%} of the training split; seeds {seed_list}")
"""),
("md", r"""
## Method

Let $f(x;\theta)$ be the network and $p(x;\theta) = \mathrm{softmax}(f(x;\theta))$. Generation 0
minimises the label cross-entropy. Generation $k \ge 1$ starts from a fresh initialisation and
minimises the cross-entropy to the previous generation's output (Sec. 3, the *BAN* objective; the
paper's "BAN+L" variant adds the label term, which we do not use):

$$
\theta_k^\star = \arg\min_{\theta}\; \frac{1}{N}\sum_{s} -\sum_c p_c(x_s;\theta_{k-1}^\star)\,\log p_c(x_s;\theta)
\qquad\text{(BAN loss, Sec. 3)}
$$

and the **BAN ensemble** averages the generations' probabilities,
$\bar p(x) = \frac{1}{K}\sum_{k=1}^{K} p(x;\theta_k^\star)$. The paper's analysis (Sec. 3.2) splits
the KD gradient for sample $s$ into a label term weighted by the teacher's confidence on the true
class and a *dark-knowledge* term on the other classes. The two ablations isolate each part:

$$
\textbf{CWTM:}\quad \mathcal{L} = \sum_{s} \frac{\max_c p_{t,c}(x_s)}{\sum_{u} \max_c p_{t,c}(x_u)}\;\mathrm{CE}(y_s, p_s(x_s))
\qquad\qquad
\textbf{DKPP:}\quad \mathcal{L} = \frac{1}{N}\sum_s -\sum_c \phi_s(p_t(x_s))_c \log p_{s,c}(x_s)
$$

where the sum over $u$ runs over the minibatch and $\phi_s$ keeps the teacher's argmax entry in
place and randomly permutes the other $C-1$ entries. CWTM uses only how sure the teacher is;
DKPP keeps the *values* of the dark knowledge but not *which classes* they belong to. The library
code, shown rather than retyped:
"""),
("code", r"""
book.show_source(soft_cross_entropy, BornAgain, cwtm_weights, CWTM, dkpp_permute, DKPP,
                 ban.generations, ban.ensemble_logits)
"""),
("md", r"""
## Experiment

For each seed: one class-balanced subset of the training split; **generation 0** trained on
labels by the teacher zoo (cached: a second run loads it); then generations $1, \dots, K$, each
from a fresh initialisation (seeded by seed and generation) and taught by the one before; then a
CWTM and a DKPP student taught by generation 0, **starting from generation 1's initialisation**,
so that BAN-1, CWTM and DKPP differ only in their loss. Every run sees the same minibatch order.
"""),
("code", r"""
rows, chains = [], {}
with tqdm(total=len(seed_list) * (generations + 3), desc="runs") as bar:
    for seed in seed_list:
        train_split = data.stratified_subset(task.train, subset, seed=seed) if subset < 1 else task.train
        with timer("generation 0"):
            gen0 = zoo.get(generation0_spec(seed), progress=False).to(task.device)
        bar.update()
        fit = dict(seed=seed, augment=task.augment, progress=False, **recipe)
        with timer("students"):
            chain = ban.generations(gen0, lambda k: make_model(seed + 1000 * k).to(task.device), train_split,
                                    generations, method=BornAgain(temperature=temperature), **fit)
            bar.update(generations)
            ablations = {}
            for name, method in {"CWTM": CWTM(), "DKPP": DKPP(temperature=temperature)}.items():
                student = make_model(seed + 1000).to(task.device)  # generation 1's initialisation
                train(student, method, train_split, teacher=gen0, **fit)
                ablations[name] = student
                bar.update()
        chains[seed] = chain
        gen0_logits = predict_logits(gen0, task.test[0])
        for k, model in enumerate(chain):
            rows.append({"seed": seed, "method": "generation 0" if k == 0 else f"BAN-{k}", "generation": k,
                         **evaluate(model, task.test, gen0)})
        if generations >= 1:
            ens = ban.ensemble_logits(chain[1:], task.test[0])
            rows.append({"seed": seed, "method": "BAN ensemble", "generation": None,
                         **metrics_from_logits(ens, task.test[1].cpu(), gen0_logits)})
        for name, student in ablations.items():
            rows.append({"seed": seed, "method": name, "generation": 1, **evaluate(student, task.test, gen0)})
df = pd.DataFrame(rows)
order = list(dict.fromkeys(df.method))
df.groupby("method", sort=False)[["acc", "nll", "ece", "agreement"]].agg(["mean", "std"]).round(2)
"""),
("md", r"""
## Results

Each claim is a paired difference per seed (same subset, same minibatch order; BAN-1, CWTM and DKPP
also share their initialisation), judged by the rule in {doc}`../conventions`: reproduced if the
95 % t-interval of the difference lies wholly on the paper's side of zero. *Agreement* is the
share of test inputs on which a model predicts the same class as its seed's generation 0.
"""),
("code", r"""
def acc(method):
    return df[df.method == method].sort_values("seed")["acc"].to_numpy()


teacher = acc("generation 0")
claims = []
if generations >= 1:
    claims.append(results.paired_claim(
        "born_again_beats_teacher", "The born-again student (BAN-1) beats its identical teacher (generation 0)",
        "CIFAR-100 test error, DenseNet-112-33: 18.25 → 17.61 [verify]",
        acc("BAN-1"), teacher, direction="greater", unit="points", what="test accuracy, BAN-1 − generation 0"))
if generations >= 2:
    claims.append(results.paired_claim(
        "later_generations_help", f"Later generations keep improving: BAN-{generations} beats BAN-1",
        "DenseNet-112-33: BAN-1 17.61 → BAN-3 16.59 test error [verify]",
        acc(f"BAN-{generations}"), acc("BAN-1"), direction="greater", unit="points",
        what=f"test accuracy, BAN-{generations} − BAN-1"))
    claims.append(results.paired_claim(
        "ensemble_beats_teacher", "The BAN ensemble beats the teacher",
        "DenseNet-112-33: BAN ensemble 15.68 vs teacher 18.25 test error [verify]",
        acc("BAN ensemble"), teacher, direction="greater", unit="points",
        what="test accuracy, ensemble of generations 1..K − generation 0"))
claims.append(results.paired_claim(
    "cwtm_beats_teacher", "Confidence alone still helps: the CWTM student beats the teacher",
    "DenseNet-112-33: CWTM 17.84 vs teacher 18.25 test error [verify]",
    acc("CWTM"), teacher, direction="greater", unit="points", what="test accuracy, CWTM − generation 0"))
claims.append(results.paired_claim(
    "dkpp_beats_teacher", "Permuted dark knowledge still helps: the DKPP student beats the teacher",
    "DKPP below its teacher's error on all four DenseNets, e.g. 17.84 vs 18.25 [verify]",
    acc("DKPP"), teacher, direction="greater", unit="points", what="test accuracy, DKPP − generation 0"))

params = {k: v for k, v in globals().items() if k in {
    "profile", "dataset", "max_train", "seeds", "arch", "hidden", "subset", "generations", "teacher_epochs",
    "epochs", "batch_size", "optimizer", "lr", "weight_decay", "lr_milestones", "temperature"}}
path = results.save(KEY, profile, params, seed_list, rows, claims, durations=timer.durations)
res = results.load(KEY, profile)
book.claims_table(res)
"""),
("code", r"""
# paired differences to generation 0, one point per seed
wide = df.pivot(index="seed", columns="method", values="acc")
diff = wide.drop(columns="generation 0").sub(wide["generation 0"], axis=0)
long = diff.melt(var_name="method", value_name="delta").dropna()
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1.4, 1]})
ax = axes[0]
methods_shown = [m for m in order if m != "generation 0"]
sns.stripplot(data=long, x="method", y="delta", order=methods_shown, color="0.6", size=4, ax=ax)
sns.pointplot(data=long, x="method", y="delta", order=methods_shown, errorbar=("ci", 95),
              linestyle="none", capsize=0.2, ax=ax)
ax.axhline(0, ls="--", color="k", lw=1)
ax.set(xlabel="", ylabel="test accuracy − generation 0 (points)",
       title=f"Paired by seed ({len(seed_list)} seeds), 95 % CI")
ax = axes[1]
gens = df[df.method.str.startswith("BAN-") | (df.method == "generation 0")]
sns.lineplot(data=gens, x="generation", y="acc", units="seed", estimator=None, color="0.8", lw=0.8, ax=ax)
sns.pointplot(data=gens, x="generation", y="acc", errorbar=("ci", 95), native_scale=True, ax=ax, color="C0")
ax.set(xlabel="generation", ylabel="test accuracy (%)", title="Accuracy along the born-again chain")
ax.set_xticks(range(generations + 1))
plt.tight_layout()
plt.show()
"""),
("code", r"""
by_claim = {c["id"]: c for c in res["claims"]}
for cid, c in by_claim.items():
    book.glue(f"{cid}_ours", book.fmt_ours(c["ours"]))
    book.glue(f"{cid}_verdict", c["verdict"])
book.glue("teacher_acc", f"{teacher.mean():.1f} %")
book.glue("n_seeds", f"{len(seed_list)}")
book.glue("ban1_agreement", f"{df[df.method == 'BAN-1']['agreement'].mean():.1f} %")
"""),
("md", r"""
**Reading the results.** Over {glue:text}`n_seeds` seeds, generation 0 reaches
{glue:text}`teacher_acc` test accuracy on average, and its born-again student predicts the same
class on {glue:text}`ban1_agreement` of the test inputs. The pre-registered claim that BAN-1 beats
its teacher is judged **{glue:text}`born_again_beats_teacher_verdict`** (BAN-1 − generation 0:
{glue:text}`born_again_beats_teacher_ours`); later generations against BAN-1:
**{glue:text}`later_generations_help_verdict`** ({glue:text}`later_generations_help_ours`); the BAN
ensemble against the teacher: **{glue:text}`ensemble_beats_teacher_verdict`**
({glue:text}`ensemble_beats_teacher_ours`). The two ablations: CWTM
**{glue:text}`cwtm_beats_teacher_verdict`** ({glue:text}`cwtm_beats_teacher_ours`), DKPP
**{glue:text}`dkpp_beats_teacher_verdict`** ({glue:text}`dkpp_beats_teacher_ours`).

An *inconclusive* verdict here means the interval straddles zero: at this number of seeds the data
cannot tell a gain of a fraction of a point from no gain. A generation-0 MLP that fits its small
training subset almost perfectly is nearly one-hot on it, so its born-again target carries little
dark knowledge; that is one reason to expect small effects on digits.
"""),
("code", r"""
# The paper profile's numbers, beside the paper's (DenseNets) and the anchors' resnet56, when a paper run exists.
paper = results.load(KEY, "paper")
if paper is None:
    print("No paper-profile run yet: `kdlib run ban --profile paper` on a GPU.")
else:
    pdf = results.frame(paper)
    ours = pdf.groupby("method", sort=False)["acc"].agg(["mean", "std", "count"]).round(2)
    ours["test error (%)"] = (100 - ours["mean"]).round(2)
    paper_error = {"generation 0": 18.25, "BAN-1": 17.61, "BAN-2": 17.22, "BAN-3": 16.59,
                   "BAN ensemble": 15.68, "CWTM": 17.84, "DKPP": 17.84}
    ours["paper: DenseNet-112-33 error [verify]"] = [paper_error.get(m, float("nan")) for m in ours.index]
    ours["anchor: resnet56 alone (RepDistiller)"] = [72.34 if m == "generation 0" else float("nan") for m in ours.index]
    display(ours)
"""),
("md", r"""
## Deviations

- **Architecture and data.** The paper's headline uses DenseNets (and Wide-ResNets) on CIFAR-100;
  the cpu profile uses an MLP 64-128-10 on a 30 % class-balanced subset of the digits training
  split (about 320 images), chosen to be data-starved before any run; the paper profile uses
  resnet56 → resnet56, the CRD-protocol architecture closest in size to the paper's smaller
  networks, so its numbers are compared with the anchors' resnet56 (72.34 %), not with DenseNets.
- **Optimiser.** The book's digits recipe (Adam, lr 3 × 10⁻³, batch 64, 200 epochs, no weight
  decay) for every generation on the cpu profile; the CRD recipe (SGD 0.05, momentum 0.9,
  wd 5 × 10⁻⁴, 240 epochs, ×0.1 at 150/180/210) on the paper profile. The paper trained DenseNets
  with their own schedule.
- **Objective.** The plain BAN loss (cross-entropy to the previous generation's softmax at T = 1,
  no label term); the paper's BAN+L column (with labels) is not run. The unofficial
  `nocotan/born_again_neuralnet` mixes labels and KD with α = 0.2, T = 20: that is not the paper's
  objective and is not used.
- **Ensemble.** The BAN ensemble averages the probabilities of generations 1..K (not generation 0);
  which generations the paper's ensemble includes is to be checked [verify].
- **DKPP.** A fresh random permutation of the non-argmax entries for every sample at every step;
  the paper does not say (in the summary we work from) whether one permutation per sample is kept
  fixed for the whole run [verify].
- **CWTM and DKPP** are taught by generation 0 only (one generation), and start from generation 1's
  initialisation so that the comparison with BAN-1 is paired.
- **Initialisation.** Every generation starts from a fresh initialisation (seeded by seed and
  generation), as in the paper; generation 0 comes from the teacher zoo.
- **Reporting.** Test accuracy at the last epoch (no validation-based selection), in percent; the
  paper reports test error.
"""),
("md", r"""
## Exercises

1. **BAN+L.** The paper also trains born-again students with the label loss added. Train BAN-1
   with `BornAgain(label_weight=1.0)` on a few seeds and compare it with the plain BAN-1 above.
2. **How much dark knowledge is left?** Generation 0 fits its small training subset almost
   perfectly. Measure its mean top probability and the entropy of its output on the *training*
   subset, at T = 1 and at T = 4. What does that predict for the BAN gain at `temperature = 4`?
3. **Permute everything.** If DKPP also moved the argmax entry, what would the student learn?
   Relate your answer to label noise.
"""),
("code", r"""
# Solution to 1: BAN+L on the first two seeds (generation-1 init, same minibatches as BAN-1).
for seed in seed_list[:2]:
    train_split = data.stratified_subset(task.train, subset, seed=seed) if subset < 1 else task.train
    student = make_model(seed + 1000).to(task.device)
    train(student, BornAgain(temperature=temperature, label_weight=1.0), train_split, teacher=chains[seed][0],
          seed=seed, augment=task.augment, progress=False, **recipe)
    plain = df[(df.seed == seed) & (df.method == "BAN-1")]["acc"].item()
    print(f"seed {seed}: BAN+L {evaluate(student, task.test)['acc']:.2f}%  vs  BAN-1 {plain:.2f}%")
""", ["hide-input", "solution"]),
("code", r"""
# Solution to 2: generation 0 of seed 0 on its own training subset.
seed = seed_list[0]
train_split = data.stratified_subset(task.train, subset, seed=seed) if subset < 1 else task.train
logits = predict_logits(chains[seed][0], train_split[0])
for t in (1.0, 4.0):
    p = torch.softmax(logits / t, -1)
    entropy = -(p * p.clamp_min(1e-12).log()).sum(-1).mean()
    print(f"T={t:g}: mean top probability {p.amax(-1).mean():.4f}, mean entropy {entropy:.4f} nats "
          f"(uniform: {np.log(task.num_classes):.2f})")
""", ["hide-input", "solution"]),
]

write("notebooks/ban.ipynb", cells)
