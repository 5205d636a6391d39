"""One paper-profile KD epoch (resnet32x4 -> resnet8x4, CRD batch 64) on synthetic CIFAR-shaped data.

Prints images/s of the whole step and the share of time spent on data (indexing +
GPU-side crop/flip), both measured in this one run. On a GPU: bf16 autocast and
channels_last, data resident on the device. Usage:
    python benchmarks/bench_cifar_epoch.py [--images 50000] [--batch 64] [--amp]
"""

import argparse
import time

import torch

from kdlib import data, repro
from kdlib.methods import KD
from kdlib.models import build
from kdlib.train import train


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--amp", action="store_true", help="bf16 autocast")
    args = ap.parse_args()
    device = repro.default_device()
    repro.set_threads()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=g).to(device)
    y = torch.randint(0, 100, (args.images,), generator=g).to(device)
    x = data.normalize_cifar(x).contiguous(memory_format=torch.channels_last)
    teacher = build("resnet32x4").to(device, memory_format=torch.channels_last).eval()
    student = build("resnet8x4").to(device, memory_format=torch.channels_last)

    # data only: the same indexing and augmentation the loop does, without the models
    sync(device)
    start = time.perf_counter()
    perm = torch.randperm(args.images, generator=g).to(device)
    for i in range(0, args.images, args.batch):
        batch = x[perm[i : i + args.batch]]
        data.crop_flip(batch, g)
    sync(device)
    data_s = time.perf_counter() - start

    sync(device)
    start = time.perf_counter()
    train(student, KD(temperature=4.0, alpha=0.9), (x, y), teacher=teacher, epochs=1, batch_size=args.batch,
          optimizer="sgd", lr=0.05, weight_decay=5e-4, augment=data.crop_flip, amp=args.amp, device=device,
          progress=False)
    sync(device)
    epoch_s = time.perf_counter() - start
    print(f"device {device}, {args.images} images, batch {args.batch}, amp={args.amp}")
    print(f"epoch: {epoch_s:.2f} s = {args.images / epoch_s:,.0f} images/s; data share {data_s / epoch_s:.1%}")


if __name__ == "__main__":
    main()
