"""Author the lm_data_sources chapter notebook (run from the repo root: python tools/make_lm_data_sources.py)."""
import nbformat as nbf
nb = nbf.v4.new_notebook()
C = []
def md(s): C.append(nbf.v4.new_markdown_cell(s.strip("\n")))
def code(s, tags=None):
    c = nbf.v4.new_code_cell(s.strip("\n"))
    if tags: c.metadata["tags"] = tags
    C.append(c)

md(r"""
# Where the training sequences come from: SeqKD, supervised KD, on-policy KD, GKD and ImitKD

## Claim

Given a prompt $x$, a token-level distillation loss needs a response $y$ on which to compare teacher and
student, position by position. Where that $y$ comes from is a method in its own right. The baselines of
Speculative KD (SKD, Xu et al., ICLR 2025) cover the options:

| method | training sequences | paper |
|---|---|---|
| supervised KD | the dataset's ground-truth $y$ | word-level KD (Hinton et al. 2015; Kim & Rush 2016) |
| SeqKD | the teacher's samples $y\sim p_T(\cdot\mid x)$, hard labels | Kim & Rush, EMNLP 2016 |
| on-policy KD | the student's own samples $y\sim q_S(\cdot\mid x)$ | GKD with $\lambda=1$ (Agarwal et al., ICLR 2024) |
| GKD, $\lambda=0.5$ | per prompt: a student sample with probability $\lambda$, else the dataset's $y$ | GKD Eq. 4; SKD's `mixed` |
| ImitKD | the dataset's $y$ with probability $\beta_i$ decaying 1 → 0, else a student sample | Lin et al., EMNLP 2020 |

Two claims, one for each side of the trade-off:

| claim | paper's evidence |
|---|---|
| **GKD:** training on the student's own samples removes the *train/inference mismatch* of supervised KD (the student is trained on prefixes it will never produce itself), so on-policy KD generates better | on-policy GKD beats supervised KD on XSum, WMT and GSM8K with T5 students (GKD Fig. 4–6) |
| **SKD:** where the student is poor, its own samples are out of the teacher's distribution, so the teacher's feedback there is worse; on-policy KD then suffers | the motivation of SKD (Sec. 1, Fig. 1), which interleaves student proposals with teacher corrections |

The second claim is about the teacher's accuracy *on the prefixes each method trains on* — unmeasurable
with real text, exactly measurable here: the oracle gives the true next-token distribution after any
prefix, so we compute the teacher's KL to the oracle there. This chapter starts from a deliberately weak
student, trains it with each data source for the same number of updates, and measures (i) the golden
sequence-level KL of the student's own samples and (ii) the teacher's golden KL on each method's prefixes.
""")

code(r'''
profile = "cpu"              # smoke | cpu | paper (set by `kdlib run`)
seeds = 3                    # weak students (one initialisation per seed), paired across methods
oracle_domains = 4           # hidden-Markov domains in the oracle
oracle_states = 64           # hidden states per domain
oracle_vocab = 64            # content tokens
oracle_seed = 0              # the oracle's construction seed
teacher_layers = 2           # teacher: the ladder's "medium" rung, GPT-2 L2 d128
teacher_embd = 128           # teacher width
teacher_heads = 4            # teacher attention heads
teacher_tokens = 1000000     # teacher's training budget (tokens of oracle text), trained once by the zoo
student_layers = 1           # student: GPT-2 L1 d32 ("xs")
student_embd = 32            # student width
student_heads = 1            # student attention heads
init_tokens = 30000          # the weak student's SFT budget on oracle text (zoo-cached per seed)
methods = ["supervised_kd", "seqkd", "on_policy", "gkd", "imitkd"]  # data sources compared
gkd_lambda = 0.5             # GKD's on-policy fraction (TRL default 0.5)
divergence = "fkl"           # token-level loss of the KD methods (SKD's default: forward KL)
steps = 120                  # student updates, the same for every method
batch_size = 32              # prompts per update
prompt_len = 16              # oracle tokens in a prompt (after the domain tag)
response_len = 32            # response tokens (dataset's, teacher's or student's)
lr = 0.003                   # AdamW learning rate, cosine decay
sample_temperature = 1.0     # sampling temperature of teacher and student samples
eval_prompts = 512           # evaluation prompts
device = "auto"              # "auto" (cuda if available), "cpu" or "cuda"
''', tags=["parameters"])

code(r'''
import copy
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from tqdm.auto import tqdm

from kdlib import book, repro, results
from kdlib.lm import metrics
from kdlib.lm.methods import GKD, ImitKD, SeqKD
from kdlib.lm.models import count_parameters, get_lm, oracle_stream
from kdlib.lm.oracle import MixtureHMMOracle
from kdlib.train import train

KEY = "lm_data_sources"
repro.set_threads()
book.set_style()
dev = repro.default_device() if device == "auto" else torch.device(device)
timer = repro.Timer()
seed_list = list(range(seeds))
oracle = MixtureHMMOracle(n_domains=oracle_domains, n_states=oracle_states, n_vocab=oracle_vocab, seed=oracle_seed)
teacher_arch = dict(arch="gpt2", n_layer=teacher_layers, n_embd=teacher_embd, n_head=teacher_heads)
student_arch = dict(arch="gpt2", n_layer=student_layers, n_embd=student_embd, n_head=student_heads)
P = 1 + prompt_len                    # the domain tag is part of the prompt
seq_len = prompt_len + response_len   # content tokens per sequence
n = oracle.n_vocab


def make_method(name):
    """The data source of each method, all with the same token-level loss."""
    if name == "supervised_kd":
        return GKD(n, P, lam=0.0, divergence=divergence, sample_temperature=sample_temperature)
    if name == "seqkd":
        return SeqKD(n, P, sample_temperature=sample_temperature)
    if name == "on_policy":
        return GKD(n, P, lam=1.0, divergence=divergence, sample_temperature=sample_temperature)
    if name == "gkd":
        return GKD(n, P, lam=gkd_lambda, divergence=divergence, sample_temperature=sample_temperature)
    if name == "imitkd":
        return ImitKD(n, P, total_steps=steps, divergence=divergence, sample_temperature=sample_temperature)
    raise ValueError(name)


eval_tokens = oracle.sample(eval_prompts, seq_len, generator=torch.Generator().manual_seed(10_001))
print(f"oracle entropy rate {oracle.entropy_rate():.2f} nats/token; prompts of {prompt_len} tokens, "
      f"responses of {response_len}; device {dev}")
''')

md(r"""
## Method

With a per-sequence divergence $\mathcal D(p_T\|q_\theta)(y\mid x)=\frac1{|y|}\sum_n D\big(p_T(\cdot\mid y_{<n},x)\,\|\,q_\theta(\cdot\mid y_{<n},x)\big)$,
GKD (Agarwal et al. 2024, Eq. 4) mixes the two data sources:

$$
\mathcal L_{\mathrm{GKD}}=(1-\lambda)\,\mathbb E_{(x,y)\sim\mathcal D}\big[\mathcal D(p_T\|q_\theta)(y\mid x)\big]
+\lambda\,\mathbb E_{x\sim\mathcal D}\,\mathbb E_{y\sim q_\theta(\cdot\mid x)}\big[\mathcal D(p_T\|q_\theta)(y\mid x)\big],
\tag{GKD Eq. 4}
$$

with no gradient through the sampling. $\lambda=0$ is supervised KD, $\lambda=1$ on-policy KD; ImitKD
raises $\lambda$ linearly from 0 to 1 over training (its $\beta_i = 1-\lambda_i$). SeqKD
(Kim & Rush 2016, Eq. 9) instead minimises $\mathbb E_{y\sim p_T}[-\log q_\theta(y\mid x)]$: hard labels on
the teacher's samples. Here $D$ is the forward KL for every KD method. Each method's `prefixes` returns
the sequences it trains on; the generation uses the KV-cached sampler.
""")

code(r'''
from kdlib.lm.sampling import sample

book.show_source(GKD, ImitKD, SeqKD)
''')

md(r"""
## Experiment

**Teacher and weak students.** The teacher is trained once on oracle text by the zoo. Each seed's
student is first trained by SFT on only `init_tokens` tokens of oracle text (also cached by the
zoo), so it is deliberately poor: its samples wander where the oracle, and the teacher, have seen
little. Every method then starts from that same weak student.
""")

code(r'''
with timer("teacher"):
    teacher = get_lm(oracle, teacher_arch, tokens=teacher_tokens, batch_size=64, seq_len=seq_len, lr=3e-3, seed=0).to(dev)
tm = teacher.zoo_meta["metrics"]
print(f"teacher GPT-2 L{teacher_layers} d{teacher_embd}: {count_parameters(teacher):,} parameters, "
      f"golden KL(O||T) {tm['golden_fkl']:.3f} nats/token (zoo key {teacher.zoo_meta['key']})")
with timer("weak students"):
    weak = {seed: get_lm(oracle, student_arch, kind="lm-weak-student", tokens=init_tokens, batch_size=32,
                         seq_len=seq_len, lr=3e-3, seed=seed).to(dev) for seed in seed_list}
print("weak students' golden KL(O||S):", [round(weak[s].zoo_meta["metrics"]["golden_fkl"], 3) for s in seed_list])
''')

code(r'''
def teacher_kl_on(tokens, mask):
    """The teacher's exact token-level KL(oracle || teacher) on given prefixes' response positions."""
    return metrics.golden_token_kl(oracle, teacher, tokens, mask)


def evaluate_student(model, seed):
    prec, samples = metrics.precision_rkl(oracle, model, eval_tokens[:, :P], response_len,
                                          generator=torch.Generator().manual_seed(20_000 + seed))
    mask = torch.zeros_like(eval_tokens, dtype=torch.bool)
    mask[:, P:] = True
    return {"precision": prec, "coverage": metrics.coverage_fkl(oracle, model, eval_tokens, P),
            "golden_fkl": metrics.golden_token_kl(oracle, model, eval_tokens, mask),
            "distinct_2": metrics.distinct_n(samples[:, P:], 2)}


def prefix_quality(method, model, seed):
    """Teacher's golden KL on the prefixes `method` would train on, for this student now."""
    batch = {"tokens": eval_tokens, "mask": None, "generator": torch.Generator().manual_seed(30_000 + seed)}
    with torch.no_grad():
        tokens, mask = method.prefixes(model, teacher, batch)
    return teacher_kl_on(tokens.cpu(), mask.cpu())


rows = []
data = oracle_stream(oracle, batch_size, seq_len, prompt_len=P)
with timer("students"), tqdm(total=len(seed_list) * len(methods), desc="students") as bar:
    for seed in seed_list:
        rows.append({"seed": seed, "method": "weak init", **evaluate_student(weak[seed], seed)})
        for name in methods:
            student = copy.deepcopy(weak[seed])
            method = make_method(name)
            start_quality = prefix_quality(method, student, seed)   # step 0: ImitKD is still supervised
            t0 = time.perf_counter()
            train(student, method, data, teacher=teacher, steps=steps, lr=lr, optimizer="adamw",
                  lr_schedule="cosine", seed=seed, progress=False)
            seconds = time.perf_counter() - t0
            rows.append({"seed": seed, "method": name, **evaluate_student(student, seed),
                         "teacher_kl_prefixes_start": start_quality,
                         "teacher_kl_prefixes_end": prefix_quality(method, student, seed),
                         "train_seconds": seconds})
            bar.update()
df = pd.DataFrame(rows)
order = ["weak init"] + list(methods)
df.groupby("method", sort=False)[["precision", "coverage", "golden_fkl", "teacher_kl_prefixes_start",
                                  "teacher_kl_prefixes_end", "train_seconds"]].agg(["mean", "std"]).round(3)
''')

md(r"""
## Results

Verdicts follow the rule in {doc}`../conventions`: the 95 % t-interval of the per-seed paired
difference must lie wholly on the pre-registered side of zero.
""")

code(r'''
def per_seed(method, column):
    return df[df.method == method].sort_values("seed")[column].to_numpy()


claims = []
if {"on_policy", "supervised_kd"} <= set(methods):
    claims.append(results.paired_claim(
        "on_policy_precision", "On-policy KD removes the train/inference mismatch: its student's own samples are "
        "closer to the oracle (lower sequence-level KL(student || oracle)) than the supervised-KD student's",
        "GKD: on-policy (λ=1) beats supervised KD on XSum / WMT / GSM8K (Fig. 4–6)",
        per_seed("on_policy", "precision"), per_seed("supervised_kd", "precision"), direction="less",
        unit="nats/token", what="precision RKL(S||O) per token, on-policy − supervised KD"))
    claims.append(results.paired_claim(
        "teacher_worse_on_student_prefixes", "Where the student is poor, on-policy prefixes are where the teacher is "
        "worse: the teacher's golden KL on the weak student's samples exceeds that on dataset prefixes",
        "SKD Sec. 1 / Fig. 1: on-policy KD suffers from low-quality student samples the teacher is unfamiliar with",
        per_seed("on_policy", "teacher_kl_prefixes_start"), per_seed("supervised_kd", "teacher_kl_prefixes_start"),
        direction="greater", unit="nats/token", what="KL(oracle || teacher) on training prefixes, weak student: on-policy − dataset"))
if {"gkd", "supervised_kd"} <= set(methods):
    claims.append(results.paired_claim(
        "gkd_mix_precision", f"Mixing in student samples (GKD, λ={gkd_lambda}) also beats supervised KD on the student's own samples",
        "GKD / SKD's `mixed` baseline", per_seed("gkd", "precision"), per_seed("supervised_kd", "precision"),
        direction="less", unit="nats/token", what=f"precision per token, GKD λ={gkd_lambda} − supervised KD"))

params = {k: v for k, v in globals().items() if k in {
    "profile", "seeds", "oracle_domains", "oracle_states", "oracle_vocab", "oracle_seed", "teacher_layers", "teacher_embd",
    "teacher_heads", "teacher_tokens", "student_layers", "student_embd", "student_heads", "init_tokens", "methods",
    "gkd_lambda", "divergence", "steps", "batch_size", "prompt_len", "response_len", "lr", "sample_temperature", "eval_prompts"}}
metric_rows = [{**r, "teacher_golden_fkl": tm["golden_fkl"]} for r in rows]
path = results.save(KEY, profile, params, seed_list, metric_rows, claims, durations=timer.durations)
res = results.load(KEY, profile)
book.claims_table(res)
''')

code(r'''
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
sns.pointplot(data=df, x="method", y="precision", order=order, errorbar=("ci", 95), linestyle="none",
              capsize=0.2, ax=axes[0])
sns.stripplot(data=df, x="method", y="precision", order=order, color="0.6", size=4, ax=axes[0])
axes[0].set(xlabel="", ylabel="KL(student || oracle) per token", title="Golden quality of the student's own samples")
quality = df[df.method != "weak init"].melt(id_vars=["seed", "method"], var_name="when",
                                            value_vars=["teacher_kl_prefixes_start", "teacher_kl_prefixes_end"])
quality["when"] = quality["when"].map({"teacher_kl_prefixes_start": "weak student (start)",
                                       "teacher_kl_prefixes_end": "trained student (end)"})
sns.pointplot(data=quality, x="method", y="value", hue="when", order=list(methods), errorbar=("ci", 95),
              dodge=0.3, linestyle="none", capsize=0.15, ax=axes[1])
axes[1].axhline(tm["golden_fkl"], ls="--", color="k", lw=1, label="teacher on oracle text")
axes[1].set(xlabel="", ylabel="KL(oracle || teacher) per token", title="Teacher's accuracy on the training prefixes")
axes[1].legend(fontsize=8)
for ax in axes:
    ax.tick_params(axis="x", rotation=25)
fig.tight_layout()
plt.show()
''')

code(r'''
by_claim = {c["id"]: c for c in res["claims"]}
for cid, c in by_claim.items():
    book.glue(f"{cid}_ours", book.fmt_ours(c["ours"], 3))
    book.glue(f"{cid}_verdict", c["verdict"])
book.glue("teacher_golden", f"{tm['golden_fkl']:.3f}")
book.glue("weak_golden", f"{df[df.method == 'weak init'].golden_fkl.mean():.3f}")
''')

md(r"""
**Reading the results.** The weak students start at a golden KL of {glue:text}`weak_golden` nats/token
on oracle responses, the teacher at {glue:text}`teacher_golden`. GKD's claim — on-policy data
removes the train/inference mismatch, so the student's *own* samples get better — is judged
**{glue:text}`on_policy_precision_verdict`** (on-policy − supervised: {glue:text}`on_policy_precision_ours`);
for the λ = 0.5 mixture it is **{glue:text}`gkd_mix_precision_verdict`** ({glue:text}`gkd_mix_precision_ours`).
SKD's motivation — the weak student's samples lie where the teacher is worse — is judged
**{glue:text}`teacher_worse_on_student_prefixes_verdict`** ({glue:text}`teacher_worse_on_student_prefixes_ours`).
The right-hand plot also shows the same quantity at the end of training, when each student is
better than the weak one it started from (ImitKD has by then switched to on-policy prefixes).
""")

code(r'''
paper = results.load(KEY, "paper")
if paper is None:
    print(f"No paper-profile run yet: `kdlib run {KEY} --profile paper` on a GPU.")
else:
    display(results.frame(paper).groupby("method")[["precision", "coverage", "teacher_kl_prefixes_start"]].agg(["mean", "std"]).round(3))
''')

md(r"""
## Deviations

- **The world is synthetic.** Prompts and ground-truth responses are oracle samples from a mixture of
  hidden-Markov models. What this shows: the *mechanisms* both papers argue about — the distribution
  of training prefixes and the teacher's accuracy on them — measured exactly. What it does not show:
  translation, summarisation or maths quality, or SKD's and GKD's numbers, which come from
  T5 / Gemma models on real tasks.
- **Scale and schedule.** A ~0.4M-parameter teacher and a ~20k-parameter student, a few hundred
  updates; the papers fine-tune 0.1–7B models for epochs. The weak student is made weak by a tiny SFT
  budget, standing in for SKD's "poor initial student".
- **One loss for all KD methods** (forward KL, SKD's default), so that only the data source varies;
  GKD's best settings used reverse KL or JSD(0.9). SeqKD uses samples from the teacher at temperature 1,
  not beam search.
- **Equal number of student updates**, not equal wall-clock: on-policy methods pay for sampling.
- **SKD itself** (interleaved student proposals with teacher top-K corrections) is not in this chapter.
- **Paper profile:** the same experiment with a larger oracle and multi-million-parameter models on a
  GPU; named hub models are not wired up.
""")

md(r"""
## Exercises

1. **A strong student.** Rerun with `-p init_tokens=1000000`. Is the teacher still worse on the
   student's prefixes than on the dataset's? What happens to the on-policy advantage?
2. **Reverse KL on-policy.** GKD found on-policy reverse KL strongest. Rerun with `-p divergence=rkl`:
   does the precision ranking of the data sources change?
3. **How far off-distribution?** For the weak student, plot the teacher's golden KL against the
   position in the response (1 … `response_len`) for on-policy and dataset prefixes. Where does the
   gap open?
""")

code(r'''
# Solution to 3: per-position teacher KL on the weak student's samples vs the dataset's responses.
from kdlib.lm.metrics import model_logprobs
from kdlib.lm.tokens import next_token_view

student = weak[seed_list[0]]
on_policy = make_method("on_policy")
batch = {"tokens": eval_tokens, "mask": None, "generator": torch.Generator().manual_seed(0)}
curves = {}
for label, toks in [("dataset", eval_tokens), ("weak student", on_policy.prefixes(student, teacher, batch)[0].cpu())]:
    log_o, _, _ = next_token_view(oracle.next_token_logprobs(toks), toks)
    log_t, _, _ = next_token_view(model_logprobs(teacher, toks, n), toks)
    kl = (log_o.exp() * (log_o - log_t)).sum(-1)[:, P - 1:]  # response positions
    curves[label] = kl.mean(0).numpy()
fig, ax = plt.subplots(figsize=(6, 3))
for label, c in curves.items():
    ax.plot(np.arange(1, len(c) + 1), c, label=label)
ax.set(xlabel="response position", ylabel="KL(oracle || teacher)", title="Teacher accuracy along the response")
ax.legend()
plt.show()
''', tags=["hide-input", "solution"])

nb.cells = C
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nb.metadata["language_info"] = {"name": "python"}
nbf.write(nb, "notebooks/lm_data_sources.ipynb")
