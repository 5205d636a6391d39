"""kdlib's KD training loop (in-memory tensors) vs the DataLoader loop a reader would write.

Same model, data, seed, method and number of epochs; both loops are timed in this one
run and the script prints their ratio and both final accuracies. Run: `make bench`.
"""

import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from kdlib import data, repro
from kdlib.losses import kd_loss
from kdlib.methods import CE, KD
from kdlib.models import MLP
from kdlib.train import evaluate, train

EPOCHS, BATCH, LR, T, ALPHA = 200, 64, 3e-3, 4.0, 0.9
SEEDS = (0, 1, 2)  # shuffling orders differ between the loops, so compare mean accuracy over seeds


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


if __name__ == "__main__":
    main()
