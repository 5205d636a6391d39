"""Data: MNIST-1D and digits with fixed splits (cpu profile), CIFAR-100 (paper profile), and subsets.

Everything is returned as in-memory tensors: 5,000 MNIST-1D signals or 1,797 digits need no DataLoader, and
CIFAR-100 (50k x 3 x 32 x 32 uint8 = 150 MB) fits on any GPU, where it is augmented.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .repro import atomic_write_bytes, file_digest

# ---------------------------------------------------------------- digits (cpu profile)

DIGITS_SPLIT_SEED = 0  # the split is part of the book: fixed, stratified 60/20/20


def digits(split_seed: int = DIGITS_SPLIT_SEED) -> dict:
    """scikit-learn's 8x8 digits, scaled to [0, 1], split 60/20/20 stratified.

    Returns {"train": (x, y), "val": (x, y), "test": (x, y)} with x float32 (n, 64)
    and y int64 (n,). Use `as_images` for a CNN.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = bunch.data.astype(np.float32) / 16.0
    y = bunch.target.astype(np.int64)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, stratify=y, random_state=split_seed)
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=split_seed
    )
    t = torch.from_numpy
    return {
        "train": (t(x_train), t(y_train)),
        "val": (t(x_val), t(y_val)),
        "test": (t(x_test), t(y_test)),
    }


def as_images(x):
    """(n, 64) digits -> (n, 1, 8, 8) images for convolutional models."""
    return x.reshape(-1, 1, 8, 8)


def stratified_subset(data, fraction: float, seed: int):
    """A class-balanced random `fraction` of `data = (x, y, ...)` (at least one sample per class)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"stratified_subset: fraction must be in (0, 1], got {fraction}")
    y = data[1]
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        n = max(1, round(fraction * len(idx)))
        keep.append(idx[torch.randperm(len(idx), generator=g)[:n]])
    keep = torch.sort(torch.cat(keep)).values
    return tuple(t[keep] for t in data)


def without_class(data, cls: int):
    """`data` with every sample of class `cls` removed (Hinton et al.'s missing-3s transfer set)."""
    keep = data[1] != cls
    return tuple(t[keep] for t in data)


def only_class(data, cls: int):
    keep = data[1] == cls
    return tuple(t[keep] for t in data)


def binarised(data, n_classes: int = 2):
    """Few-class relabelling y -> y mod n_classes (LELP's CIFAR-100-bin and digits-bin)."""
    return (data[0], data[1] % n_classes, *data[2:])


# ---------------------------------------------------------------- MNIST-1D (cpu profile)

# Greydanus & Kobak (ICML 2024): 10 one-dimensional digit templates, padded, scaled, translated,
# noised, sheared and resampled to 40 points. The `mnist1d` package generates them from code
# (no download). With its default arguments the float32 arrays are bit-identical to the
# authors' published mnist1d_data.pkl (github.com/greydanus/mnist1d, compared once when this
# was written): MNIST1D_SHA256 is the digest of both.
MNIST1D_PACKAGE_VERSION = "0.0.2.post1"  # the generator version MNIST1D_SHA256 was made with
# sha256 of x, y, x_test, y_test (float32 / int64, C order, in that order) of the default arguments
MNIST1D_SHA256 = "b09ad3e22c854bc5a1948b85c373aab653ceb38c9170f5ed05b7d054e4160db9"
MNIST1D_VAL_SIZE = 500  # carved from the 4,000 training signals, stratified: 3,500 / 500 / 1,000
MNIST1D_SPLIT_SEED = 0
MNIST1D_SHIFT_SEED = 1  # shifted sets are fresh draws (the package's own seed is 42), unless seed= is given
# The teachers' draw: the same generator and arguments, another seed, 25,000 signals of which the
# package keeps 20,000 for training. A teacher trained on it has never seen a student's input, so its
# soft labels on those inputs are not the memorised one-hots of a teacher trained on them (protocol v2,
# world design: on the students' own split the CNN1D reaches 100 % train accuracy and a mean top
# probability of 0.99996 at T = 1 on the students' inputs).
MNIST1D_TEACHER_SEED = 2
MNIST1D_TEACHER_SAMPLES = 25_000
_MNIST1D_KEYS = ("x", "y", "x_test", "y_test")  # the package's names; the checksum covers them in this order


def mnist1d_args(**overrides) -> dict:
    """The package's generator arguments (`get_dataset_args()`), with `overrides` applied.

    Keys: num_samples, train_split, template_len, padding, scale_coeff, max_translation,
    corr_noise_scale, iid_noise_scale, shear_scale, shuffle_seq, final_seq_length, seed.
    The download URL is dropped: kdlib only ever generates.
    """
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    args.pop("url")
    unknown = sorted(set(overrides) - set(args))
    if unknown:
        raise ValueError(f"mnist1d: unknown generator argument(s) {unknown}; known: {', '.join(sorted(args))}")
    args.update(overrides)
    args["padding"] = [int(p) for p in args["padding"]]
    return args


def _mnist1d_digest(arrays: dict) -> str:
    digest = hashlib.sha256()
    for key in _MNIST1D_KEYS:
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    return digest.hexdigest()


def _mnist1d_generate(args: dict) -> dict:
    """Run the package's template generator (`make_dataset`, which never downloads)."""
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    # make_dataset reseeds numpy's and python's global generators: give the caller theirs back
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(ObjectView(dict(args)))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {k: d[k].astype(np.float32 if k.startswith("x") else np.int64) for k in _MNIST1D_KEYS}


def _mnist1d_arrays(args: dict) -> dict:
    """Generated arrays for `args`, cached as <cache>/mnist1d/<hash of args>.npz and checksummed.

    The default arguments are checked against MNIST1D_SHA256; other arguments against the
    digest stored with them. A corrupt or mismatched cache file is reported and regenerated.
    """
    from importlib.metadata import version

    blob = json.dumps(args, sort_keys=True)
    path = cache_dir() / "mnist1d" / f"{hashlib.sha256(blob.encode()).hexdigest()[:16]}.npz"
    expected = MNIST1D_SHA256 if args == mnist1d_args() else None
    if path.exists():
        try:
            with np.load(path) as f:
                arrays = {k: f[k] for k in _MNIST1D_KEYS}
                stored = str(f["sha256"])
            if _mnist1d_digest(arrays) != (expected or stored):
                raise ValueError("sha256 mismatch")
            return arrays
        except Exception as err:  # noqa: BLE001 - any unreadable or mismatched cache is regenerated, never used
            print(f"kdlib.data: MNIST-1D cache {path} is unusable ({err}); regenerating", file=sys.stderr)
    arrays = _mnist1d_generate(args)
    digest = _mnist1d_digest(arrays)
    if expected is not None and digest != expected:
        raise RuntimeError(
            f"MNIST-1D generated by mnist1d {version('mnist1d')} has sha256 {digest[:16]}..., expected "
            f"{expected[:16]}... (made with mnist1d {MNIST1D_PACKAGE_VERSION}): the generator's output changed"
        )
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, sha256=np.array(digest), args=np.array(blob))
    atomic_write_bytes(path, buffer.getvalue())
    return arrays


def _mnist1d_splits(arrays: dict, val_size: int, split_seed: int) -> dict:
    from sklearn.model_selection import train_test_split

    x, y = arrays["x"], arrays["y"]
    t = torch.from_numpy
    if val_size:
        x, x_val, y, y_val = train_test_split(x, y, test_size=val_size, stratify=y, random_state=split_seed)
    return {
        "train": (t(x), t(y)),
        "val": (t(x_val), t(y_val)) if val_size else None,
        "test": (t(arrays["x_test"]), t(arrays["y_test"])),
    }


def mnist1d(val_size: int = MNIST1D_VAL_SIZE, split_seed: int = MNIST1D_SPLIT_SEED) -> dict:
    """MNIST-1D with the package's default arguments: 4,000 training and 1,000 test signals of length 40.

    Returns {"train": (x, y), "val": (x, y), "test": (x, y)}, x float32 (n, 40), y int64 (n,).
    The package's test split is kept as is; `val_size` signals (stratified, fixed seed) are
    carved from its training split: 3,500 / 500 / 1,000 by default. val_size=0 gives the
    paper's 4,000 training signals and "val": None. Generated offline, cached, checksummed.
    """
    return _mnist1d_splits(_mnist1d_arrays(mnist1d_args()), val_size, split_seed)


def mnist1d_shifted(val_size: int = MNIST1D_VAL_SIZE, split_seed: int = MNIST1D_SPLIT_SEED, **overrides) -> dict:
    """MNIST-1D generated with changed arguments: a shifted distribution, same format as `mnist1d`.

    overrides: any of `mnist1d_args`'s keys, e.g. iid_noise_scale=0.1, corr_noise_scale=0.5,
    max_translation=60, scale_coeff=0.8, shear_scale=1.5, num_samples=10_000. Unless `seed` is
    given, the draw uses MNIST1D_SHIFT_SEED, so it shares no samples with `mnist1d()`.
    Note that the generator standardises each generated set to mean 0, std 1 as a whole.
    """
    overrides.setdefault("seed", MNIST1D_SHIFT_SEED)
    return _mnist1d_splits(_mnist1d_arrays(mnist1d_args(**overrides)), val_size, split_seed)


def mnist1d_teacher(val_size: int = MNIST1D_VAL_SIZE, split_seed: int = MNIST1D_SPLIT_SEED) -> dict:
    """The split the book's MNIST-1D teachers train on: 20,000 signals of a disjoint draw.

    Same generator and arguments as `mnist1d` with seed MNIST1D_TEACHER_SEED; `val_size` signals are
    carved from its training part as in `mnist1d`; "test" is the students' test set (the book's 1,000
    test signals), so a teacher's reported accuracy is on the same signals as its students'.
    """
    splits = _mnist1d_splits(_mnist1d_arrays(mnist1d_args(num_samples=MNIST1D_TEACHER_SAMPLES,
                                                          seed=MNIST1D_TEACHER_SEED)), val_size, split_seed)
    splits["test"] = mnist1d(val_size, split_seed)["test"]
    return splits


# ---------------------------------------------------------------- CIFAR-100 (paper profile)

CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"  # the archive's published checksum
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)  # RepDistiller's normalisation
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


def cache_dir() -> Path:
    """$KDLIB_CACHE, else the user cache folder (~/.cache/kdlib)."""
    root = os.environ.get("KDLIB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "kdlib"
    )
    return Path(root)


def _download(url: str, dest: Path) -> None:
    """Download atomically: a partial file never takes the final name."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cifar100(root=None, download: bool = True, url: str = CIFAR100_URL, md5: str | None = CIFAR100_MD5) -> dict:
    """CIFAR-100 (fine labels) as uint8 tensors: {"train": (x, y), "test": (x, y)}, x (n, 3, 32, 32).

    Looks for `cifar-100-python.tar.gz` (checked against its md5) or the extracted
    `cifar-100-python/` folder under `root` (default: <cache>/cifar100). Downloads
    from the canonical URL when missing and allowed; offline, raises one clear error
    saying where to put the archive. No code path of the tests or the cpu profile calls this.
    """
    root = Path(root) if root is not None else cache_dir() / "cifar100"
    folder = root / "cifar-100-python"
    archive = root / "cifar-100-python.tar.gz"
    if not (folder / "train").exists():
        if not archive.exists():
            if not download:
                raise FileNotFoundError(f"CIFAR-100 not found: put cifar-100-python.tar.gz in {root}")
            try:
                _download(url, archive)
            except OSError as err:
                raise RuntimeError(
                    f"CIFAR-100 download from {url} failed ({err}); offline? put cifar-100-python.tar.gz in {root}"
                ) from None
        if md5 is not None and file_digest(archive, "md5") != md5:
            raise RuntimeError(f"CIFAR-100 archive {archive} fails its md5 check (corrupt or partial): delete it")
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(root, filter="data")
    return {split: _read_cifar_batch(folder / split, label_key=b"fine_labels") for split in ("train", "test")}


def _read_cifar_batch(path: Path, label_key: bytes):
    if not path.exists():
        raise FileNotFoundError(f"CIFAR batch file missing: {path}")
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="bytes")
    x = torch.from_numpy(np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
    y = torch.tensor(entry[label_key], dtype=torch.int64)
    return x, y


def normalize_cifar(x, mean=CIFAR100_MEAN, std=CIFAR100_STD):
    """uint8 (n, 3, 32, 32) -> normalised float32, on whatever device x lives."""
    mean = torch.tensor(mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(std, device=x.device).view(1, 3, 1, 1)
    return (x.float() / 255.0 - mean) / std


def crop_flip(x, generator, padding: int = 4):
    """The CIFAR train augmentation (pad-4 random crop, horizontal flip), batched on x's device.

    x: (n, C, H, W) float. generator: a CPU torch.Generator (draws are made on the
    CPU, so results are identical on any device). Zero padding as in torchvision's
    RandomCrop(32, padding=4).
    """
    n, _, h, w = x.shape
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    padded = F.pad(x, (padding,) * 4)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (n, 1, H, 1)
    cols = torch.arange(w, device=x.device).expand(n, w)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + dx[:, None]
    cols = cols[:, None, None, :]  # (n, 1, 1, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]
