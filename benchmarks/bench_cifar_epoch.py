"""One CIFAR KD epoch, side by side: kdlib's paper path against a plain RepDistiller-style loop.

Both train KD resnet32x4 -> resnet8x4 (T = 4, alpha = 0.9, SGD 0.05) for one epoch on
the same synthetic CIFAR-shaped data (uint8, 3 x 32 x 32, 100 classes), same batch:

  kdlib      data resident on the device as normalised floats, the pad-4 crop and flip
             batched on the device (kdlib.data.crop_flip), kdlib.train; on CUDA also bf16
             autocast and channels_last.
  reference  a torch DataLoader over a Dataset of HWC uint8 images applying the standard
             CPU transforms per image (pad-4 random crop, horizontal flip, to-tensor,
             normalise -- written out, torchvision is not a dependency), fp32, with
             `--workers` worker processes, and `loss.item()` every step as RepDistiller's
             meters do.

Prints images/s of each, their ratio, and each one's data share: the time spent waiting
for data over the epoch's time (reference: inside the loader's next() and the copy to the
device; kdlib: a separate data-only pass of the same indexing and crop/flip, divided by the
epoch time). Each path warms up on two batches first (not timed). Usage:
    python benchmarks/bench_cifar_epoch.py [--images 50000] [--batch 64] [--device auto] [--workers 8]
"""

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from kdlib import data, repro
from kdlib.losses import kd_loss
from kdlib.methods import KD
from kdlib.models import build
from kdlib.train import train

TEMPERATURE, ALPHA, LR = 4.0, 0.9, 0.05


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


class CifarLike(torch.utils.data.Dataset):
    """HWC uint8 images with the standard train transforms applied per image, on the CPU."""

    def __init__(self, images_hwc, labels):
        self.images, self.labels = images_hwc, labels
        self.mean = torch.tensor(data.CIFAR100_MEAN).view(3, 1, 1)
        self.std = torch.tensor(data.CIFAR100_STD).view(3, 1, 1)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        # torch's global RNG per image, as torchvision's RandomCrop / RandomHorizontalFlip draw
        img = np.pad(self.images[i], ((4, 4), (4, 4), (0, 0)))  # RandomCrop(32, padding=4)
        dy, dx = torch.randint(0, 9, (2,)).tolist()
        img = img[dy:dy + 32, dx:dx + 32]
        if torch.rand(1).item() < 0.5:  # RandomHorizontalFlip
            img = img[:, ::-1]
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(255)  # ToTensor
        return (x - self.mean) / self.std, int(self.labels[i])  # Normalize


def models(device, channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    repro.seed_everything(0)
    teacher = build("resnet32x4").to(device, memory_format=fmt).eval()
    repro.seed_everything(1)
    student = build("resnet8x4").to(device, memory_format=fmt)
    return teacher, student


def kdlib_epoch(x_uint8, y, args, device):
    """Seconds of one kdlib epoch and of its data work alone (indexing + crop/flip)."""
    on_cuda = device.type == "cuda"
    x = data.normalize_cifar(x_uint8.to(device))
    if on_cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    y = y.to(device)
    teacher, student = models(device, channels_last=on_cuda)
    kwargs = dict(teacher=teacher, batch_size=args.batch, optimizer="sgd", lr=LR, weight_decay=5e-4,
                  augment=data.crop_flip, amp=on_cuda, device=device, progress=False)
    warm = 2 * args.batch
    train(student, KD(TEMPERATURE, ALPHA), (x[:warm], y[:warm]), epochs=1, **kwargs)
    g = torch.Generator().manual_seed(0)
    sync(device)
    start = time.perf_counter()
    perm = torch.randperm(len(x), generator=g).to(device)
    for i in range(0, len(x), args.batch):
        data.crop_flip(x[perm[i:i + args.batch]], g)
    sync(device)
    data_s = time.perf_counter() - start
    sync(device)
    start = time.perf_counter()
    train(student, KD(TEMPERATURE, ALPHA), (x, y), epochs=1, **kwargs)
    sync(device)
    return time.perf_counter() - start, data_s


def reference_epoch(x_uint8, y, args, device):
    """Seconds of one plain-loop epoch and of its time waiting for data."""
    dataset = CifarLike(x_uint8.permute(0, 2, 3, 1).numpy(), y.numpy())
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                                         pin_memory=device.type == "cuda", drop_last=False,
                                         persistent_workers=args.workers > 0)
    teacher, student = models(device, channels_last=False)
    opt = torch.optim.SGD(student.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4)

    def run(max_batches=None):
        wait, batches = 0.0, iter(loader)
        for i in range(len(loader) if max_batches is None else max_batches):
            t0 = time.perf_counter()
            xb, yb = next(batches)
            xb, yb = xb.to(device), yb.to(device)
            wait += time.perf_counter() - t0
            s = student(xb)
            with torch.no_grad():
                t = teacher(xb)
            loss = ALPHA * kd_loss(s, t, TEMPERATURE) + (1 - ALPHA) * F.cross_entropy(s, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()  # RepDistiller's AverageMeter: one host sync per step
        return wait

    run(max_batches=min(2, len(loader)))  # warm-up (and the workers' start-up)
    sync(device)
    start = time.perf_counter()
    wait = run()
    sync(device)
    return time.perf_counter() - start, wait


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    ap.add_argument("--workers", type=int, default=8, help="reference DataLoader workers (RepDistiller: 8)")
    args = ap.parse_args()
    device = repro.default_device() if args.device == "auto" else torch.device(args.device)
    args.workers = min(args.workers, os.cpu_count() or 1)
    repro.set_threads()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 100, (args.images,), generator=g)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {device} ({name}), {args.images} images, batch {args.batch}, KD resnet32x4 -> resnet8x4, "
          f"torch threads {torch.get_num_threads()}, reference workers {args.workers}")
    ours_s, ours_data = kdlib_epoch(x, y, args, device)
    ref_s, ref_data = reference_epoch(x, y, args, device)
    ours_ips, ref_ips = args.images / ours_s, args.images / ref_s
    amp = "bf16 + channels_last" if device.type == "cuda" else "fp32"
    print(f"kdlib paper path ({amp}): {ours_s:.2f} s = {ours_ips:,.0f} images/s; data share {ours_data / ours_s:.1%}")
    print(f"reference DataLoader (fp32):  {ref_s:.2f} s = {ref_ips:,.0f} images/s; data share {ref_data / ref_s:.1%}")
    print(f"ratio kdlib / reference: {ours_ips / ref_ips:.2f}x images/s")


if __name__ == "__main__":
    main()
