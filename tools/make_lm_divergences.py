"""Author the lm_divergences chapter notebook (run from the repo root: python tools/make_lm_divergences.py)."""
import nbformat as nbf
nb = nbf.v4.new_notebook()
C = []
def md(s): C.append(nbf.v4.new_markdown_cell(s.strip("\n")))
def code(s, tags=None):
    c = nbf.v4.new_code_cell(s.strip("\n"))
    if tags: c.metadata["tags"] = tags
    C.append(c)

md(r"""
# Which divergence? Forward KL, reverse KL, JSD, TVD and skew KL for language models

## Claim

Three LM-distillation papers replace the forward KL of word-level KD, $\mathrm{KL}(p_T\,\|\,q_S)$, by
another token-level divergence, each with an argument about *what the student ends up fitting*:

| paper | divergence | claim | headline evidence (paper) |
|---|---|---|---|
| MiniLLM (Gu et al., ICLR 2024) | reverse KL $\mathrm{KL}(q_S\,\|\,p_T)$ | forward KL makes a small student *mode-averaging*: it spreads mass over regions the teacher finds unlikely; reverse KL is *mode-seeking*, giving more precise generations at the price of coverage | higher Rouge-L / GPT-4 scores than KD and SeqKD on instruction following (GPT-2, OPT, LLaMA families) |
| GKD (Agarwal et al., ICLR 2024) | generalized JSD($\beta$) | interpolates between forward ($\beta\to0$) and reverse ($\beta\to1$) KL; the best $\beta$ is task-dependent | T5 summarisation / translation / GSM8K |
| DistiLLM (Ko et al., ICML 2024) | skew forward / reverse KL, $\alpha = 0.1$ | mixing a little of one distribution into the other bounds the gradient and makes training more stable and faster than plain KL | better Rouge-L than KD, MiniLLM and GKD at lower training cost |
| SinKD (Cui et al., 2024) | Sinkhorn distance | every KL-type divergence has a failure mode: forward KL mode-averages, reverse KL mode-collapses | GLUE / SuperGLUE |

Part V's synthetic world (a mixture of hidden-Markov domains with **exact** next-token
probabilities) lets us measure these claims on the quantities they are about, not on proxies:

* **(a) An exact 1-D toy.** A bimodal teacher and a unimodal student, fit by each divergence: what does each find?
* **(b) The zoo.** One teacher from the zoo, one student per divergence at a matched token budget, and a
  student trained on the same sequences with hard labels. Measured with the oracle: **precision**
  (sequence-level reverse KL to the oracle on the student's own samples) and **coverage**
  (sequence-level forward KL on oracle samples), plus the training's gradient-norm stability.
* **(c) Real text.** The same comparison on Tiny Shakespeare (characters), where the golden metric is held-out NLL.

Pre-registered directions (fixed before any run): RKL has better precision and worse coverage than FKL;
skew KL has a steadier gradient norm than plain KL; distillation beats hard samples at the same token budget.
""")

code(r'''
profile = "cpu"              # smoke | cpu | paper (set by `kdlib run`)
seeds = 3                    # students per divergence, paired by seed
oracle_domains = 4           # hidden-Markov domains in the oracle
oracle_states = 64           # hidden states per domain
oracle_vocab = 64            # content tokens
oracle_seed = 0              # the oracle's construction seed
teacher_layers = 2           # teacher: the ladder's "small" rung, GPT-2 L2 d64
teacher_embd = 64            # teacher width
teacher_heads = 2            # teacher attention heads
teacher_tokens = 1000000     # teacher's training budget (tokens of oracle text), trained once by the zoo
student_layers = 1           # student: GPT-2 L1 d32 ("xs")
student_embd = 32            # student width
student_heads = 1            # student attention heads
steps = 200                  # student updates, the same for every objective (matched token budget)
batch_size = 32              # sequences per update
seq_len = 48                 # content tokens per training sequence (after the domain tag)
lr = 0.003                   # AdamW learning rate, cosine decay, for every objective
divergences = ["fkl", "rkl", "jsd", "tvd", "skew_fkl", "skew_rkl"]  # token-level objectives
beta = 0.5                   # GKD's beta of jsd (0: forward KL, 1: reverse KL)
alpha = 0.1                  # DistiLLM's skew (paper default)
prompt_len = 16              # oracle tokens in an evaluation prompt (after the domain tag)
response_len = 32            # tokens generated per evaluation prompt
eval_prompts = 512           # evaluation prompts (and oracle sequences)
toy_steps = 600              # Adam steps of each 1-D toy fit
shakespeare = True           # also run (c), the real-text variant
shakespeare_teacher_tokens = 1000000  # teacher budget on Tiny Shakespeare (characters)
shakespeare_steps = 150      # student updates on Tiny Shakespeare, per objective
device = "auto"              # "auto" (cuda if available), "cpu" or "cuda"
''', tags=["parameters"])

code(r'''
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from tqdm.auto import tqdm

from kdlib import book, repro, results
from kdlib.lm import metrics, toy
from kdlib.lm.methods import SFT, TokenKD, divergence
from kdlib.lm.models import build_lm, count_parameters, get_lm, oracle_stream
from kdlib.lm.oracle import MixtureHMMOracle
from kdlib.lm.shakespeare import CharCorpus
from kdlib.train import train

KEY = "lm_divergences"
repro.set_threads()
book.set_style()
dev = repro.default_device() if device == "auto" else torch.device(device)
timer = repro.Timer()
seed_list = list(range(seeds))
oracle = MixtureHMMOracle(n_domains=oracle_domains, n_states=oracle_states, n_vocab=oracle_vocab, seed=oracle_seed)
teacher_arch = dict(arch="gpt2", n_layer=teacher_layers, n_embd=teacher_embd, n_head=teacher_heads)
student_arch = dict(arch="gpt2", n_layer=student_layers, n_embd=student_embd, n_head=student_heads)
objectives = ["sft"] + list(divergences)  # "sft": the same sequences with hard labels, no teacher
# fixed evaluation data, never trained on: oracle sequences of [tag, prompt, response]
eval_tokens = oracle.sample(eval_prompts, prompt_len + response_len, generator=torch.Generator().manual_seed(10_001))
P = 1 + prompt_len  # the tag is part of the prompt
print(f"oracle: {oracle_domains} domains x {oracle_states} states, V={oracle_vocab}; "
      f"entropy rate {oracle.entropy_rate():.2f} nats/token (uniform: {np.log(oracle_vocab):.2f}); device {dev}")
''')

md(r"""
## Method

All objectives compare the teacher's next-token distribution $p_T(\cdot\mid y_{<t})$ with the
student's $q_S(\cdot\mid y_{<t})$ at every position $t$ of a training sequence and average over
positions (the book's `batchmean`). One convention for the whole book, tested in
`tests/test_lm_losses.py`:

$$
\begin{aligned}
\mathrm{FKL} &= \mathrm{KL}(p_T\,\|\,q_S) & \text{(word-level KD, Hinton Eq. 2 at } T=1)\\
\mathrm{RKL} &= \mathrm{KL}(q_S\,\|\,p_T) & \text{(MiniLLM Eq. 1, single-step term)}\\
\mathrm{JSD}_\beta &= \beta\,\mathrm{KL}(p_T\,\|\,m) + (1-\beta)\,\mathrm{KL}(q_S\,\|\,m),\quad m=\beta p_T+(1-\beta)q_S & \text{(GKD Eq. 3; } \beta=0\text{: FKL, } \beta=1\text{: RKL)}\\
\mathrm{TVD} &= \tfrac12\textstyle\sum_v |p_T(v)-q_S(v)| &\\
\mathrm{SKL}_\alpha &= \mathrm{KL}(p_T\,\|\,\alpha p_T + (1-\alpha) q_S) & \text{(DistiLLM Eq. 4)}\\
\mathrm{SRKL}_\alpha &= \mathrm{KL}(q_S\,\|\,(1-\alpha) p_T + \alpha q_S) & \text{(DistiLLM Eq. 5; both} \to \text{FKL / RKL as } \alpha\to0)
\end{aligned}
$$

The logits of a causal LM at position $t$ predict token $t+1$; that shift is done in one place,
`next_token_view`. The method's code, shown rather than retyped:
""")

code(r'''
from kdlib.lm.methods import _distill
from kdlib.lm.tokens import next_token_view

book.show_source(divergence, _distill, next_token_view)
''')

md(r"""
The two golden metrics are sequence-level and use the oracle's exact log-likelihoods
(`kdlib.lm.metrics`): for a prompt $x$ and a response $y$ of $L$ tokens,

$$
\text{precision} = \tfrac1L\,\mathbb E_{y\sim q_S}\!\left[\log q_S(y\mid x) - \log p_O(y\mid x)\right],\qquad
\text{coverage} = \tfrac1L\,\mathbb E_{y\sim p_O}\!\left[\log p_O(y\mid x) - \log q_S(y\mid x)\right],
$$

the reverse and forward KL between the student and the oracle over whole responses, in nats per
token; lower is better for both. A student that generates only what the oracle finds likely has good
precision; one that assigns probability to everything the oracle generates has good coverage.
""")

code(r'''
book.show_source(metrics.precision_rkl, metrics.coverage_fkl)
''')

md(r"""
## Experiment

### (a) The exact toy: a bimodal teacher, a unimodal student

A "vocabulary" of points on a line; the teacher puts its mass on two separated modes, the student is
a single discretised Gaussian with a learnable mean and width. Each divergence is minimised exactly
(no sampling) from the same start, slightly right of centre.
""")

code(r'''
x_grid = toy.grid()
teacher_toy = toy.bimodal_logits(x_grid)
fits = {}
with timer("toy"):
    for name in divergences:
        fits[name] = toy.fit_gaussian(teacher_toy, x_grid, name, beta=beta, alpha=alpha, steps=toy_steps)
p_teacher = teacher_toy.exp()
right = x_grid > 0
toy_table = pd.DataFrame([{
    "objective": name, "mean": f["mean"], "std": f["std"],
    "student mass on the right mode": float(f["logprobs"].exp()[right].sum()),
    "student mass where teacher < 1e-3 of its peak": float(f["logprobs"].exp()[p_teacher < 1e-3 * p_teacher.max()].sum()),
} for name, f in fits.items()]).round(3)
toy_table
''')

code(r'''
fig, axes = plt.subplots(2, 3, figsize=(11, 5), sharex=True, sharey=True)
for ax, (name, f) in zip(axes.flat, fits.items()):
    ax.fill_between(x_grid, p_teacher, color="0.8", label="teacher")
    ax.plot(x_grid, f["logprobs"].exp(), color="C3", lw=2, label="student")
    ax.set_title(f"{name}: mean {f['mean']:+.2f}, std {f['std']:.2f}", fontsize=10)
axes[0, 0].legend(loc="upper left", fontsize=8)
fig.suptitle("What each divergence fits: bimodal teacher, unimodal student (exact)")
fig.tight_layout()
plt.show()
''')

md(r"""
### (b) The zoo: one teacher, one student per objective

**Teacher.** The oracle's text trains the teacher once (a fixed token budget, not wall-clock);
the zoo caches it under a hash of its spec and the model code, so every later run loads it.
""")

code(r'''
with timer("teacher"):
    teacher = get_lm(oracle, teacher_arch, tokens=teacher_tokens, batch_size=64, seq_len=seq_len, lr=3e-3, seed=0).to(dev)
tm = teacher.zoo_meta["metrics"]
print(f"teacher GPT-2 L{teacher_layers} d{teacher_embd}: {count_parameters(teacher):,} parameters, "
      f"golden KL(O||T) {tm['golden_fkl']:.3f} nats/token, trained in {teacher.zoo_meta['train_seconds']:.0f}s "
      f"(zoo key {teacher.zoo_meta['key']})")
''')

md(r"""
**Students.** For each seed, every objective starts from the same initialisation and sees the
same stream of oracle sequences (fresh samples, the same for every objective at a given seed), for
the same number of updates: the token budget is matched. The hard-label student (`sft`) trains on
exactly those sequences without a teacher.
""")

code(r'''
def evaluate_lm(model, seed):
    """The golden and proxy metrics of one model on the fixed evaluation data."""
    prec, samples = metrics.precision_rkl(oracle, model, eval_tokens[:, :P], response_len,
                                          generator=torch.Generator().manual_seed(20_000 + seed))
    return {
        "golden_fkl": metrics.golden_token_kl(oracle, model, eval_tokens),
        "golden_rkl": metrics.golden_token_kl(oracle, model, eval_tokens, direction="reverse"),
        "precision": prec,
        "coverage": metrics.coverage_fkl(oracle, model, eval_tokens, P),
        "proxy_fkl": metrics.proxy_token_kl(teacher, model, eval_tokens, oracle.n_vocab),
        "agreement": metrics.agreement(teacher, model, eval_tokens, oracle.n_vocab),
        "distinct_2": metrics.distinct_n(samples[:, P:], 2),
    }


def grad_cv(norms):
    """Coefficient of variation of the gradient norm over the second half of training."""
    half = np.asarray(norms[len(norms) // 2:])
    return float(half.std() / half.mean())


teacher_row = {"seed": -1, "objective": "teacher", **evaluate_lm(teacher, 0)}
rows = []
data = oracle_stream(oracle, batch_size, seq_len)
with timer("students"), tqdm(total=len(seed_list) * len(objectives), desc="students") as bar:
    for seed in seed_list:
        for name in objectives:
            student = build_lm(vocab_size=oracle.vocab_size, seed=seed, **student_arch).to(dev)
            method = SFT(oracle.n_vocab) if name == "sft" else TokenKD(
                oracle.n_vocab, name, beta=beta, alpha=alpha, record_grad_norm=True)
            start = time.perf_counter()
            history = train(student, method, data, teacher=teacher, steps=steps, lr=lr, optimizer="adamw",
                            lr_schedule="cosine", seed=seed, progress=False)
            seconds = time.perf_counter() - start
            rows.append({"seed": seed, "objective": name, **evaluate_lm(student, seed),
                         "grad_cv": grad_cv(method.grad_norms) if name != "sft" else np.nan,
                         "train_seconds": seconds, "tokens_per_s": steps * batch_size * seq_len / seconds})
            bar.update()
df = pd.DataFrame(rows)
summary = df.groupby("objective", sort=False)[["golden_fkl", "precision", "coverage", "proxy_fkl", "agreement",
                                               "distinct_2", "grad_cv"]].agg(["mean", "std"])
summary.round(3)
''')

md(r"""
### (c) Real text: Tiny Shakespeare

There is no oracle for Shakespeare, so the golden metric becomes the held-out negative
log-likelihood (nats per character) on the last 10 % of the text. A character-level teacher is
trained once by the zoo; forward-KL, reverse-KL and hard-label students get the same number of
updates on the same windows.
""")

code(r'''
text_rows = []
if shakespeare:
    corpus = CharCorpus()
    with timer("shakespeare"):
        text_teacher = get_lm(corpus, teacher_arch, tokens=shakespeare_teacher_tokens, batch_size=64,
                              seq_len=64, lr=3e-3, seed=0).to(dev)
        held_out = corpus.held_out(64, max_windows=eval_prompts)
        text_data = corpus.stream(batch_size, 64)
        with tqdm(total=len(seed_list) * 3, desc="shakespeare students") as bar:
            for seed in seed_list:
                for name in ["sft", "fkl", "rkl"]:
                    student = build_lm(vocab_size=corpus.vocab_size, seed=seed, **student_arch).to(dev)
                    method = SFT(corpus.n_vocab) if name == "sft" else TokenKD(corpus.n_vocab, name)
                    train(student, method, text_data, teacher=text_teacher, steps=shakespeare_steps, lr=lr,
                          optimizer="adamw", lr_schedule="cosine", seed=seed, progress=False)
                    text_rows.append({"seed": seed, "objective": name,
                                      "heldout_nll": metrics.heldout_nll(student, held_out, corpus.n_vocab)})
                    bar.update()
    tdf = pd.DataFrame(text_rows)
    text_teacher_nll = metrics.heldout_nll(text_teacher, held_out, corpus.n_vocab)
    # reference point: a character unigram model fitted on the training split
    counts = torch.bincount(corpus.train_ids, minlength=corpus.n_vocab).float() + 1
    unigram_nll = float(-(counts / counts.sum()).log()[held_out[:, 1:]].mean())
    print(f"Shakespeare teacher: held-out NLL {text_teacher_nll:.3f} nats/char (character unigram: {unigram_nll:.3f})")
    display(tdf.groupby("objective", sort=False)["heldout_nll"].agg(["mean", "std"]).round(3))
''')

md(r"""
## Results

Each claim is judged by the rule in {doc}`../conventions`: the 95 % t-interval of the per-seed
paired difference must lie wholly on the pre-registered side of zero.
""")

code(r'''
def per_seed(objective, column, frame=None):
    frame = df if frame is None else frame
    return frame[frame.objective == objective].sort_values("seed")[column].to_numpy()


claims = []
if {"fkl", "rkl"} <= set(divergences):
    claims.append(results.paired_claim(
        "rkl_precision", "Reverse KL is mode-seeking: its student's samples are more precise (lower sequence-level "
        "KL(student || oracle) on its own samples) than the forward-KL student's",
        "MiniLLM: RKL students generate more precise, less hallucinated responses (Rouge-L, GPT-4 feedback)",
        per_seed("rkl", "precision"), per_seed("fkl", "precision"), direction="less", unit="nats/token",
        what="precision RKL(S||O) per token, RKL − FKL student"))
    claims.append(results.paired_claim(
        "rkl_coverage", "... and covers the oracle worse (higher sequence-level KL(oracle || student) on oracle samples)",
        "MiniLLM / SinKD: mode-seeking trades coverage (diversity) for precision",
        per_seed("rkl", "coverage"), per_seed("fkl", "coverage"), direction="greater", unit="nats/token",
        what="coverage FKL(O||S) per token, RKL − FKL student"))
for skew, plain in [("skew_rkl", "rkl"), ("skew_fkl", "fkl")]:
    if {skew, plain} <= set(divergences):
        claims.append(results.paired_claim(
            f"{skew}_stable", f"Skew KL trains more stably than plain KL: {skew} has a steadier gradient norm than {plain}",
            "DistiLLM Thm. 1 / Fig. 3: skew KL bounds the gradient and converges faster and more stably",
            per_seed(skew, "grad_cv"), per_seed(plain, "grad_cv"), direction="less",
            what=f"CV of the gradient norm over the second half of training, {skew} − {plain}"))
if "fkl" in divergences:
    claims.append(results.paired_claim(
        "kd_beats_hard_samples", "Distillation beats training on hard samples at the same token budget "
        "(golden token-level KL(oracle || student) on held-out oracle text)",
        "word-level KD beats SFT in every LM-KD paper's tables (e.g. MiniLLM Table 1)",
        per_seed("fkl", "golden_fkl"), per_seed("sft", "golden_fkl"), direction="less", unit="nats/token",
        what="golden KL(O||S), FKL − SFT student"))
if text_rows:
    claims.append(results.paired_claim(
        "kd_beats_hard_samples_text", "... and on real text (Tiny Shakespeare, held-out NLL)",
        "as above", per_seed("fkl", "heldout_nll", tdf), per_seed("sft", "heldout_nll", tdf),
        direction="less", unit="nats/char", what="held-out NLL, FKL − SFT student"))

params = {k: v for k, v in globals().items() if k in {
    "profile", "seeds", "oracle_domains", "oracle_states", "oracle_vocab", "oracle_seed", "teacher_layers",
    "teacher_embd", "teacher_heads", "teacher_tokens", "student_layers", "student_embd", "student_heads", "steps",
    "batch_size", "seq_len", "lr", "divergences", "beta", "alpha", "prompt_len", "response_len", "eval_prompts",
    "toy_steps", "shakespeare", "shakespeare_teacher_tokens", "shakespeare_steps"}}
metric_rows = ([{**r, "experiment": "zoo"} for r in rows] + [{**teacher_row, "experiment": "zoo"}]
               + [{**r, "experiment": "shakespeare"} for r in text_rows])
path = results.save(KEY, profile, params, seed_list, metric_rows, claims, durations=timer.durations)
res = results.load(KEY, profile)
book.claims_table(res)
''')

code(r'''
fig, ax = plt.subplots(figsize=(6.5, 4.2))
means = df.groupby("objective", sort=False)[["precision", "coverage"]].mean()
sns.scatterplot(data=df, x="coverage", y="precision", hue="objective", hue_order=objectives, alpha=0.45, ax=ax, legend=False)
for i, (name, r) in enumerate(means.iterrows()):
    ax.scatter(r.coverage, r.precision, s=90, color=sns.color_palette()[i % 10], edgecolor="k", zorder=3)
    ax.annotate(name, (r.coverage, r.precision), textcoords="offset points", xytext=(6, 4), fontsize=9)
ax.scatter(teacher_row["coverage"], teacher_row["precision"], marker="*", s=200, color="k", zorder=3)
ax.annotate("teacher", (teacher_row["coverage"], teacher_row["precision"]), textcoords="offset points", xytext=(6, -10))
ax.set(xlabel="coverage: KL(oracle || model) on oracle samples (nats/token)",
       ylabel="precision: KL(model || oracle)\non its own samples (nats/token)",
       title=f"Precision vs coverage, {len(seed_list)} seeds (lower-left is better)")
plt.show()
''')

code(r'''
long = df.melt(id_vars=["seed", "objective"], value_vars=["golden_fkl", "grad_cv"], var_name="metric")
g = sns.catplot(data=long, x="objective", y="value", col="metric", kind="point", order=objectives,
                errorbar=("ci", 95), linestyle="none", capsize=0.2, sharey=False, height=3.4, aspect=1.4)
g.axes.flat[0].axhline(tm["golden_fkl"], ls="--", color="k", lw=1)
g.axes.flat[0].set_title("golden KL(oracle || student) (dashed: teacher)")
g.axes.flat[1].set_title("gradient-norm CV, 2nd half of training")
for ax in g.axes.flat:
    ax.tick_params(axis="x", rotation=30)
plt.show()
''')

code(r'''
by_claim = {c["id"]: c for c in res["claims"]}
for cid, c in by_claim.items():
    book.glue(f"{cid}_ours", book.fmt_ours(c["ours"], 3))
    book.glue(f"{cid}_verdict", c["verdict"])
book.glue("teacher_golden", f"{tm['golden_fkl']:.3f}")
book.glue("toy_fkl", f"mean {fits['fkl']['mean']:+.2f}, std {fits['fkl']['std']:.2f}" if "fkl" in fits else "n/a")
book.glue("toy_rkl", f"mean {fits['rkl']['mean']:+.2f}, std {fits['rkl']['std']:.2f}" if "rkl" in fits else "n/a")
book.glue("toy_skew_rkl", f"mean {fits['skew_rkl']['mean']:+.2f}, std {fits['skew_rkl']['std']:.2f}" if "skew_rkl" in fits else "n/a")
book.glue("student_tps", f"{df.tokens_per_s.median():,.0f}")
book.glue("text_teacher_nll", f"{text_teacher_nll:.3f}" if text_rows else "n/a")
book.glue("unigram_nll", f"{unigram_nll:.3f}" if text_rows else "n/a")
''')

md(r"""
**Reading the results.** The toy teacher's modes sit at $\pm 2$ with width 0.6. Forward KL ends at
{glue:text}`toy_fkl` and reverse KL at {glue:text}`toy_rkl`: a wide student centred in the valley
between the modes is what *mode-averaging* (SinKD, MiniLLM) means, a narrow one on a single mode is
*mode-seeking*. Skew reverse KL at $\alpha = 0.1$ ends at {glue:text}`toy_skew_rkl`: mixing the
student's own mass into the target softens exactly the penalty that makes reverse KL mode-seeking
(exercise 2 finds where it switches).

In the zoo (teacher golden KL {glue:text}`teacher_golden` nats/token), the precision claim is judged
**{glue:text}`rkl_precision_verdict`** (RKL − FKL: {glue:text}`rkl_precision_ours`) and the coverage claim
**{glue:text}`rkl_coverage_verdict`** ({glue:text}`rkl_coverage_ours`). The stability claim is judged
**{glue:text}`skew_rkl_stable_verdict`** for skew reverse KL ({glue:text}`skew_rkl_stable_ours`) and
**{glue:text}`skew_fkl_stable_verdict`** for skew forward KL ({glue:text}`skew_fkl_stable_ours`).
Distillation against hard samples at the same budget is judged **{glue:text}`kd_beats_hard_samples_verdict`**
({glue:text}`kd_beats_hard_samples_ours`). On Tiny Shakespeare the same claim is judged
**{glue:text}`kd_beats_hard_samples_text_verdict`** ({glue:text}`kd_beats_hard_samples_text_ours`), with a
teacher whose held-out NLL is {glue:text}`text_teacher_nll` nats/char (a character unigram model:
{glue:text}`unigram_nll`) after only about 250 updates, so this row tests distillation from an
under-trained teacher with under-trained students (exercise 4). Students trained at a median
{glue:text}`student_tps` tokens/s (teacher forward included).
""")

code(r'''
paper = results.load(KEY, "paper")
if paper is None:
    print(f"No paper-profile run yet: `kdlib run {KEY} --profile paper` on a GPU.")
else:
    pdf = results.frame(paper)
    display(pdf[pdf.experiment == "zoo"].groupby("objective")[["golden_fkl", "precision", "coverage", "grad_cv"]].agg(["mean", "std"]).round(3))
''')

md(r"""
## Deviations

- **The world is synthetic.** The oracle is a mixture of hidden-Markov models, not natural
  language: its next-token distributions are sparse and multimodal by construction, which is the
  regime where forward and reverse KL differ. What this shows: the *mechanism* each paper argues
  (mode-averaging vs mode-seeking, bounded skew gradients) measured exactly against the true
  distribution. What it does not show: instruction-following quality, Rouge-L, GPT-4 judgements,
  or anything about models of billions of parameters — the paper's numbers are not checked here.
- **Scale.** A ~0.1M-parameter GPT-2 teacher and a ~20k-parameter student trained for a few hundred
  updates (cpu profile); the papers distil 1.5B–13B teachers into 120M–7B students. The paper profile
  runs the same experiment with a larger oracle and multi-million-parameter models; named hub
  models are not wired up (they would need a real-text pipeline with a shared tokenizer).
- **Token-level, teacher-forced objectives only.** MiniLLM optimises *sequence-level* reverse KL
  with a policy gradient, length normalisation, teacher-mixed sampling and PPO-style clipping; here
  only its single-step (token-level) reverse-KL term is used, on oracle sequences. GKD and
  DistiLLM also sample from the student (on-policy / adaptive off-policy); that is the subject of
  the {doc}`lm_data_sources` chapter. This chapter isolates the divergence.
- **Stability is measured as the gradient-norm coefficient of variation** over the second half of
  training — a scale-free, pre-registered stand-in for DistiLLM's loss and validation curves.
- **Real text at the cpu budget.** The Tiny Shakespeare teacher sees 1M characters (about 250 updates),
  far short of a converged character model; its held-out NLL is shown next to a unigram model's above.
  The paper profile gives it 50M characters.
- **Hard samples** are the oracle's own sequences (ground truth), the same ones the KD students see.
- **SinKD's Sinkhorn loss is not included**; its argument (both KL directions fail) is illustrated by
  the toy.
""")

md(r"""
## Exercises

1. **Where does JSD switch?** Rerun the toy for $\beta \in \{0.1, 0.3, 0.5, 0.7, 0.9\}$. At which
   $\beta$ does the fitted student jump from covering both modes to one mode? Is the switch
   continuous?
2. **Skew in the other direction.** In the toy, skew reverse KL with $\alpha = 0.1$ averaged the
   modes. Find the largest $\alpha$ at which it still seeks one mode. What does this say about
   "skew RKL is a stabilised RKL"?
3. **A bigger student.** Rerun (b) with `-p student_layers=2 -p student_embd=64 -p student_heads=2`.
   Does the precision/coverage gap between RKL and FKL shrink when the student can represent the
   teacher better? Why should it?
4. **A better real-text teacher.** Rerun with `-p shakespeare_teacher_tokens=5000000` (the zoo trains it
   once, a few minutes on 2 cores). Does distillation beat hard labels on held-out NLL once the teacher
   is clearly better than a unigram model?
""")

code(r'''
# Solution to 1: the mean of the fitted Gaussian as a function of beta.
for b in [0.1, 0.3, 0.5, 0.7, 0.9]:
    f = toy.fit_gaussian(teacher_toy, x_grid, "jsd", beta=b, steps=toy_steps)
    print(f"beta={b:.1f}: mean {f['mean']:+.2f}, std {f['std']:.2f}")
''', tags=["hide-input", "solution"])

code(r'''
# Solution to 2: the mode-seeking solution survives only for small alpha.
for a in [0.0, 0.001, 0.01, 0.05, 0.1]:
    f = toy.fit_gaussian(teacher_toy, x_grid, "skew_rkl", alpha=a, steps=toy_steps)
    print(f"alpha={a:<5}: mean {f['mean']:+.2f}, std {f['std']:.2f}")
''', tags=["hide-input", "solution"])

nb.cells = C
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
nbf.write(nb, "notebooks/lm_divergences.ipynb")
