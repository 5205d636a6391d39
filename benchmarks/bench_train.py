"""kdlib's KD training loop (in-memory tensors) vs the DataLoader loop a reader would write,
and the seeds of a recipe trained as one batched computation vs one `train` per seed.

Same model, data, seed, method and number of epochs; the loops are timed in this one
run and the script prints their ratios and the final accuracies. Run: `make bench`
(`--epochs`, `--seed-epochs`, `--seed-counts`, `--mnist1d-epochs`, `--family-epochs`,
`--family-train` shrink it; tests run it tiny).

Last, one line per student family (issue #18; bench_common.py defines it), K = 10 seeds of an
MNIST-1D recipe (Adam 1e-2, batch 100) against the GEMM peak measured in the same run:
mlp (KD, 40-100-100-10) and rkd (CE + RKD-D + RKD-A, the rkd chapter's 40-100-16-10 MLP hooked
at `features`, CNN1D teacher): bit-identical students; cnn1d (KD, the CNN1D) and transformer (KD,
PatchTransformer): equal to float32 round-off only. "per-seed metrics equal" compares each seed's
test accuracy with its one-seed run's, exactly; the line under it says whether the weights are
identical and the largest accuracy difference (round-off grows over a long Adam run). A family below both targets (>= 4x, >= 50 % of the peak)
gets a line with the profiler's shares of its batched time.

Where the batched step's time goes: at digits scale one seed's step is per-op overhead, so K
seeds in one step cost little more than one seed, except for the log-softmax over the C = 10
classes. Its last-dim kernel costs per row, so K seeds' rows cost K times one seed's, and the
bit-identity with `train` pins that kernel (`kdlib.losses.stacked`). The script measures that
kernel's share of a batched step in the same run.
"""

import argparse
import time

import torch
import torch.nn.functional as F
from bench_common import count_flops, family_line, gemm_peak, where_time_goes
from torch.utils.data import DataLoader, TensorDataset

from kdlib import data, repro
from kdlib.batched import train_seeds, why_sequential
from kdlib.hooks import capture
from kdlib.losses import kd_loss
from kdlib.methods import CE, KD
from kdlib.methods.rkd import RKD
from kdlib.models import CNN1D, MLP
from kdlib.models.transformer import PatchTransformer
from kdlib.tasks import make_model
from kdlib.train import evaluate, train

EPOCHS, BATCH, LR, T, ALPHA = 200, 64, 3e-3, 4.0, 0.9
SEEDS = (0, 1, 2)  # shuffling orders differ between the loops, so compare mean accuracy over seeds
SEED_COUNTS, SEED_EPOCHS = (10, 20), 100  # batched seeds: fewer epochs keep the one-at-a-time side affordable
MNIST1D_SEEDS, MNIST1D_EPOCHS = 10, 10  # the book's MNIST-1D student, 40-100-100-10, batch 100 (tasks.MNIST1D_RECIPE)
FAMILY_EPOCHS = 3


def plain_loop(student, teacher, x, y, seed):
    """What a reader would write: a DataLoader over a TensorDataset, teacher called per batch."""
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(student.parameters(), lr=LR)
    teacher.eval()
    for _ in range(EPOCHS):
        student.train()
        for xb, yb in loader:
            logits = student(xb)
            with torch.no_grad():
                t_logits = teacher(xb)
            loss = (1 - ALPHA) * F.cross_entropy(logits, yb) + ALPHA * kd_loss(logits, t_logits, T)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()  # the usual per-step logging
    student.eval()


def main():
    global EPOCHS, SEED_COUNTS, SEED_EPOCHS, MNIST1D_EPOCHS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="epochs of the loop comparison")
    parser.add_argument("--seed-epochs", type=int, default=SEED_EPOCHS, help="epochs of the batched-seeds comparison")
    parser.add_argument("--seed-counts", type=int, nargs="+", default=list(SEED_COUNTS), help="K values")
    parser.add_argument("--mnist1d-epochs", type=int, default=MNIST1D_EPOCHS)
    parser.add_argument("--family-seeds", type=int, default=10, help="K of the per-family lines")
    parser.add_argument("--family-epochs", type=int, default=FAMILY_EPOCHS, help="epochs of the per-family lines")
    parser.add_argument("--family-train", type=int, default=0, help="training signals per seed (0: all 3,500)")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    args = parser.parse_args()
    EPOCHS, SEED_EPOCHS, SEED_COUNTS, MNIST1D_EPOCHS = (args.epochs, args.seed_epochs, tuple(args.seed_counts),
                                                       args.mnist1d_epochs)
    repro.set_threads()
    splits = data.digits()
    repro.seed_everything(1)
    teacher = MLP(hidden=(512, 512), dropout=0.2)
    train(teacher, CE(), splits["train"], epochs=30, lr=1e-3, progress=False)
    names = ("plain DataLoader loop", "kdlib.train")
    timings, accs = {n: 0.0 for n in names}, {n: [] for n in names}
    for seed in SEEDS:
        sub = data.stratified_subset(splits["train"], 0.25, seed=seed)
        for name in names:
            repro.seed_everything(seed)
            student = MLP(hidden=(32,))
            start = time.perf_counter()
            if name == "kdlib.train":
                train(student, KD(temperature=T, alpha=ALPHA), sub, teacher=teacher, epochs=EPOCHS,
                      batch_size=BATCH, lr=LR, seed=seed, progress=False)
            else:
                plain_loop(student, teacher, *sub, seed=seed)
            timings[name] += time.perf_counter() - start
            accs[name].append(evaluate(student, splits["test"])["acc"])
    for name in names:
        mean = sum(accs[name]) / len(accs[name])
        print(f"{name:>24}: {timings[name]:6.2f} s for {len(SEEDS)} runs   mean test accuracy {mean:.2f}%  {accs[name]}")
    ratio = timings["plain DataLoader loop"] / timings["kdlib.train"]
    diff = (sum(accs["kdlib.train"]) - sum(accs["plain DataLoader loop"])) / len(SEEDS)
    print(f"speed-up of kdlib.train over the plain DataLoader loop: {ratio:.2f}x "
          f"(mean accuracy difference {diff:+.2f} points over {len(SEEDS)} seeds)")
    batched_seeds(splits, teacher)
    batched_mnist1d()
    families(args)


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def batched_seeds(splits, teacher):
    """K seeds of the digits KD recipe (64-32-10 MLP, 25 % subsets, Adam): one stacked computation
    (kdlib.batched.train_seeds) vs one kdlib.train per seed, and vs the loop before the teacher
    cache (teacher forward every step), timed in this run; the students must be identical."""
    def make_student(seed):
        return make_model("mlp", 10, hidden=(32,), seed=seed)

    def subset(seed):
        return data.stratified_subset(splits["train"], 0.25, seed=seed)

    recipe = dict(teacher=teacher, epochs=SEED_EPOCHS, batch_size=BATCH, lr=LR, optimizer="adam", progress=False)
    method = KD(temperature=T, alpha=ALPHA)
    print(f"\nK seeds of one recipe, {SEED_EPOCHS} epochs each (wall time; CPU time in brackets):")
    for k in SEED_COUNTS:
        seeds = range(k)
        (seq, _), seq_wall, seq_cpu = _timed(lambda: train_seeds(make_student, method, subset, seeds,
                                                                 batched=False, **recipe))
        (bat, _), bat_wall, bat_cpu = _timed(lambda: train_seeds(make_student, method, subset, seeds, **recipe))
        acc_seq = [evaluate(s, splits["test"])["acc"] for s in seq]
        acc_bat = [evaluate(s, splits["test"])["acc"] for s in bat]
        same = all(torch.equal(p, q) for a, b in zip(seq, bat) for p, q in zip(a.parameters(), b.parameters()))
        print(f"K = {k:2d}: one train per seed {seq_wall:6.2f} s ({seq_cpu:.2f})   batched {bat_wall:6.2f} s "
              f"({bat_cpu:.2f})   speed-up {seq_wall / bat_wall:.1f}x (CPU {seq_cpu / bat_cpu:.1f}x)   "
              f"per-seed test accuracies identical: {acc_seq == acc_bat}, weights identical: {same}")
        if k == SEED_COUNTS[0]:
            n_steps = SEED_EPOCHS * -(-len(subset(0)[0]) // BATCH)
            log_softmax_share(k, bat_wall / n_steps)
            # the one-at-a-time loop as issue #8 measured it: the teacher called every step
            def old_loop():
                students = [make_student(s) for s in seeds]
                for student, s in zip(students, seeds):
                    train(student, method, subset(s), seed=s, cache_teacher=False, **recipe)
                return students
            old, old_wall, old_cpu = _timed(old_loop)
            acc_old = [evaluate(s, splits["test"])["acc"] for s in old]
            print(f"K = {k:2d}: one train per seed, teacher forward every step {old_wall:6.2f} s ({old_cpu:.2f})   "
                  f"batched speed-up over it {old_wall / bat_wall:.1f}x (CPU {old_cpu / bat_cpu:.1f}x)   "
                  f"per-seed test accuracies identical: {acc_old == acc_bat}")


def log_softmax_share(k, step_seconds, classes=10, reps=2000):
    """Time the last-dim log-softmax (forward and backward) on one seed's batch and on K seeds' batches;
    print the K-seed kernel's share of one batched KD step (3 forward: student and teacher at T, student
    at 1 for CE; 2 backward: the student's)."""
    x = torch.randn(k, BATCH, classes)

    def per_call(fn):
        for _ in range(50):
            fn()
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - start) / reps

    def cost(t):
        out = torch.log_softmax(t, -1)
        fwd = per_call(lambda: torch.log_softmax(t, -1))
        bwd = per_call(lambda: torch.ops.aten._log_softmax_backward_data(out, out, -1, t.dtype))
        return 3 * fwd + 2 * bwd
    one, all_k = cost(x[0]), cost(x)
    print(f"K = {k:2d}: the log-softmax over C = {classes} classes (3 forward + 2 backward per KD step) costs "
          f"{1e6 * one:.0f} us for one seed's batch and {1e6 * all_k:.0f} us for K seeds' ({all_k / one:.1f}x): "
          f"{100 * all_k / step_seconds:.0f} % of a batched step ({1e6 * step_seconds:.0f} us)")


def batched_mnist1d():
    """The same comparison for the book's MNIST-1D MLP student (40-100-100-10, Adam, batch 100,
    the full 3,500 training signals per seed), K = MNIST1D_SEEDS; a small MLP teacher trained briefly
    (its quality does not matter for the timing)."""
    splits = data.mnist1d()
    repro.seed_everything(1)
    teacher = MLP(in_dim=40, hidden=(256, 256))
    train(teacher, CE(), splits["train"], epochs=5, batch_size=100, lr=1e-3, progress=False)

    def make_student(seed):
        return make_model("mlp", 10, hidden=(100, 100), seed=seed, dataset="mnist1d")

    recipe = dict(teacher=teacher, epochs=MNIST1D_EPOCHS, batch_size=100, lr=1e-2, optimizer="adam", progress=False)
    method, seeds = KD(temperature=T, alpha=ALPHA), range(MNIST1D_SEEDS)
    (seq, _), seq_wall, seq_cpu = _timed(lambda: train_seeds(make_student, method, lambda s: splits["train"], seeds,
                                                             batched=False, **recipe))
    (bat, _), bat_wall, bat_cpu = _timed(lambda: train_seeds(make_student, method, lambda s: splits["train"], seeds,
                                                             **recipe))
    same = all(torch.equal(p, q) for a, b in zip(seq, bat) for p, q in zip(a.parameters(), b.parameters()))
    print(f"MNIST-1D 40-100-100-10, K = {MNIST1D_SEEDS}, {MNIST1D_EPOCHS} epochs: one train per seed "
          f"{seq_wall:6.2f} s ({seq_cpu:.2f})   batched {bat_wall:6.2f} s ({bat_cpu:.2f})   "
          f"speed-up {seq_wall / bat_wall:.1f}x (CPU {seq_cpu / bat_cpu:.1f}x)   weights identical: {same}")


def _transformer(seed):
    repro.seed_everything(seed)
    return PatchTransformer()


# family -> (make_student(seed), method, what the line's identity means); MNIST-1D, Adam 1e-2, batch 100
FAMILIES = {
    "mlp": (lambda s: make_model("mlp", 10, hidden=(100, 100), seed=s, dataset="mnist1d"), lambda: KD(T, ALPHA),
            "bit-identical students"),
    "cnn1d": (lambda s: make_model("cnn1d", 10, seed=s, dataset="mnist1d"), lambda: KD(T, ALPHA),
              "float32 round-off"),
    "transformer": (_transformer, lambda: KD(T, ALPHA), "float32 round-off"),
    # the rkd chapter's student: MLP 40-100-16-10 (16-d embedding), CE + RKD-D + RKD-A on the CNN1D's 125-d one
    "rkd": (lambda s: make_model("mlp", 10, hidden=(100, 16), seed=s, dataset="mnist1d"), lambda: RKD(),
            "bit-identical students"),
}


def families(args):
    """One line per student family: K seeds of one MNIST-1D recipe as one computation vs one `train` per
    seed (both timed here), the batched run's useful FLOP/s over the GEMM peak, and whether each seed's
    test accuracy equals its one-seed run's (bit-identical paths: identical students; round-off paths:
    float32 round-off apart, compared by test accuracy). A family below both targets (>= 4x, >= 50 %)
    gets a line saying where its batched time goes."""
    splits = data.mnist1d()
    train_set = splits["train"]
    if args.family_train:
        train_set = data.stratified_subset(train_set, args.family_train / len(train_set[0]), seed=0)
    repro.seed_everything(1)
    teacher = CNN1D()
    train(teacher, CE(), splits["train"], epochs=3, batch_size=100, lr=1e-2, progress=False)
    teacher.eval()
    k, epochs, batch = args.family_seeds, args.family_epochs, 100
    seeds = range(k)
    # drop_last: a last batch of 1 or 2 signals has no relations (RKD needs 3); 3,500 / 100 drops nothing
    recipe = dict(teacher=teacher, epochs=epochs, batch_size=batch, lr=1e-2, optimizer="adam", drop_last=True,
                  progress=False)
    peak = gemm_peak()
    print(f"\nstudent families, MNIST-1D ({len(train_set[0])} signals per seed), K = {k}, {epochs} epochs, "
          f"batch {batch}; GEMM peak {peak / 1e9:.1f} GFLOP/s at {torch.get_num_threads()} thread(s)")
    for family in args.families:
        make_student, make_method, identity = FAMILIES[family]
        method = make_method()
        reason = why_sequential([make_student(s) for s in seeds], method, [train_set] * k)
        if reason is not None:
            raise SystemExit(f"{family}: not batched ({reason})")
        (seq, _), seq_wall, _ = _timed(lambda: train_seeds(make_student, method, lambda s: train_set, seeds,
                                                           batched=False, **recipe))
        (bat, _), bat_wall, _ = _timed(lambda: train_seeds(make_student, method, lambda s: train_set, seeds,
                                                           **recipe))
        acc_seq = [evaluate(s, splits["test"])["acc"] for s in seq]
        acc_bat = [evaluate(s, splits["test"])["acc"] for s in bat]
        steps = epochs * (len(train_set[0]) // batch)
        flops = k * steps * step_flops(make_student(0), method, teacher, train_set[0][:batch], train_set[1][:batch])
        ratio, pct = seq_wall / bat_wall, 100 * flops / bat_wall / peak
        same = all(torch.equal(p, q) for a, b in zip(seq, bat) for p, q in zip(a.parameters(), b.parameters()))
        gap = max(abs(a - b) for a, b in zip(acc_seq, acc_bat))
        print(family_line(k, family, ratio, pct, acc_seq == acc_bat))
        print(f"  ({identity}: weights identical {same}, largest per-seed accuracy difference {gap:.2f} points; "
              f"one train per seed {seq_wall:.2f} s, batched {bat_wall:.2f} s, {flops / bat_wall / 1e9:.1f} GFLOP/s "
              "useful)")
        if ratio < 4 and pct < 50:
            print(where_time_goes(lambda: train_seeds(make_student, method, lambda s: train_set, seeds,
                                                      **{**recipe, "epochs": 1}),
                                  what=", one epoch, the teacher's outputs computed once included"))


def step_flops(student, method, teacher, x, y):
    """Useful FLOPs of one one-seed training step: the student's forward, the loss and the backward
    (the frozen teacher's outputs are cached, so not counted)."""
    layer = getattr(method, "layer", "features")
    with torch.no_grad(), capture(teacher, [getattr(method, "teacher_layer", layer)]) as ht:
        t_logits = teacher(x)

    def step():
        if method.logits_only:
            terms = method.terms_from_logits(student(x), t_logits, y)
        else:
            with capture(student, [layer]) as hs:
                logits = student(x)
            terms = method.terms_from_outputs(logits, hs[layer].flatten(1), t_logits,
                                              next(iter(ht.outputs.values())).flatten(1), y)
        sum(terms.values()).backward()
    return count_flops(step)


if __name__ == "__main__":
    main()
