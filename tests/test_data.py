"""Data: the fixed digits split, subsets, the CIFAR-100 loader on files the test writes, augmentation."""

import hashlib
import io
import pickle
import tarfile
import urllib.request

import numpy as np
import pytest
import torch

from kdlib import data
from kdlib.tasks import crd_recipe, load_task, write_fake_cifar100


def test_digits_split_is_fixed_and_stratified():
    a, b = data.digits(), data.digits()
    assert [len(a[k][0]) for k in ("train", "val", "test")] == [1078, 359, 360]
    assert torch.equal(a["test"][0], b["test"][0])
    counts = torch.bincount(a["train"][1], minlength=10).float()
    assert counts.min() / counts.max() > 0.9
    assert a["train"][0].min() >= 0 and a["train"][0].max() <= 1


def test_stratified_subset_and_class_filters():
    train = data.digits()["train"]
    sub = data.stratified_subset(train, 0.25, seed=0)
    assert abs(len(sub[0]) - 0.25 * len(train[0])) <= 10
    assert set(sub[1].tolist()) == set(range(10))
    assert torch.equal(sub[0], data.stratified_subset(train, 0.25, seed=0)[0])
    assert not torch.equal(sub[0], data.stratified_subset(train, 0.25, seed=1)[0])
    assert 3 not in data.without_class(train, 3)[1].tolist()
    assert set(data.only_class(train, 3)[1].tolist()) == {3}
    assert set(data.binarised(train)[1].tolist()) == {0, 1}
    with pytest.raises(ValueError, match="fraction"):
        data.stratified_subset(train, 0.0, seed=0)


def _cifar_archive(tmp_path, n=20):
    folder = write_fake_cifar100(tmp_path / "src", n_train=n, n_test=n // 2)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname="cifar-100-python")
    return buf.getvalue()


def test_cifar100_reads_the_python_format(tmp_path):
    write_fake_cifar100(tmp_path, n_train=30, n_test=10)
    splits = data.cifar100(tmp_path, download=False)
    x, y = splits["train"]
    assert x.shape == (30, 3, 32, 32) and x.dtype == torch.uint8
    assert y.tolist() == [i % 100 for i in range(30)]
    assert splits["test"][0].shape == (10, 3, 32, 32)
    with open(tmp_path / "cifar-100-python" / "train", "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"]
    assert np.array_equal(x[1].numpy().reshape(-1), raw[1])  # channel-major layout, as the real files


def test_cifar100_checks_the_archive_and_extracts(tmp_path):
    blob = _cifar_archive(tmp_path)
    root = tmp_path / "cache"
    root.mkdir()
    (root / "cifar-100-python.tar.gz").write_bytes(blob)
    with pytest.raises(RuntimeError, match="md5"):
        data.cifar100(root, download=False)  # not the real archive: fails the published checksum
    splits = data.cifar100(root, download=False, md5=hashlib.md5(blob).hexdigest())
    assert splits["train"][0].shape == (20, 3, 32, 32)


def test_cifar100_downloads_with_its_real_code_path(tmp_path, monkeypatch):
    blob = _cifar_archive(tmp_path)
    seen = {}

    def fake_urlopen(url, timeout):
        seen["url"] = url
        return io.BytesIO(blob)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    splits = data.cifar100(tmp_path / "dl", md5=hashlib.md5(blob).hexdigest())
    assert seen["url"] == data.CIFAR100_URL
    assert splits["test"][0].shape == (10, 3, 32, 32)


def test_cifar100_offline_error_is_one_clear_line(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(RuntimeError) as err:
        data.cifar100(tmp_path / "none")
    message = str(err.value)
    assert "offline?" in message and "cifar-100-python.tar.gz" in message and "\n" not in message
    assert not list((tmp_path / "none").glob("*.part"))  # no partial file left behind
    with pytest.raises(FileNotFoundError, match="put cifar-100-python.tar.gz"):
        data.cifar100(tmp_path / "none", download=False)


def test_crop_flip_is_a_shifted_and_mirrored_view():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    out = data.crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for i in range(2):  # every output is a crop of the padded (possibly flipped) image
        padded = torch.nn.functional.pad(x[i], (4, 4, 4, 4))
        views = [padded[:, r:r + 32, c:c + 32] for r in range(9) for c in range(9)]
        views += [v.flip(-1) for v in views]
        assert any(torch.equal(out[i], v) for v in views)
    same = data.crop_flip(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, same)


def test_load_task_on_fake_cifar(tmp_path):
    write_fake_cifar100(tmp_path, n_train=200, n_test=50)
    task = load_task("cifar100", data_root=str(tmp_path), max_train=100, device="cpu")
    assert task.num_classes == 100 and task.val is None and task.augment is data.crop_flip
    assert task.train[0].dtype == torch.float32 and len(task.train[0]) == 100
    assert abs(float(task.train[0].mean())) < 0.5
    with pytest.raises(ValueError, match="dataset"):
        load_task("imagenet")


def test_crd_recipe():
    r = crd_recipe("resnet8x4")
    assert r["lr"] == 0.05 and r["epochs"] == 240 and r["lr_milestones"] == [150, 180, 210]
    assert crd_recipe("shufflenetv2")["lr"] == 0.01
    assert crd_recipe("resnet8x4", epochs=24)["lr_milestones"] == [15, 18, 21]
