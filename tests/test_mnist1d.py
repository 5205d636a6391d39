"""MNIST-1D: generated offline from the package's templates, checksummed, cached atomically; the 1-D CNN."""

import socket
import urllib.request

import numpy as np
import pytest
import torch

from kdlib import data, models
from kdlib.hooks import FeatureHooks
from kdlib.tasks import load_task, make_model, teacher_spec


@pytest.fixture(scope="module")
def splits():
    return data.mnist1d()


def test_shapes_dtypes_split_sizes_and_balance(splits):
    assert [len(splits[k][0]) for k in ("train", "val", "test")] == [3500, 500, 1000]
    for x, y in splits.values():
        assert x.dtype == torch.float32 and x.shape[1] == 40 and y.dtype == torch.int64
        assert set(y.tolist()) == set(range(10))
    val_counts = torch.bincount(splits["val"][1], minlength=10)
    assert val_counts.min() >= 49 and val_counts.max() <= 51  # stratified 500
    train_counts = torch.bincount(splits["train"][1], minlength=10).float()
    assert train_counts.min() / train_counts.max() > 0.9
    full = data.mnist1d(val_size=0)
    assert full["val"] is None and len(full["train"][0]) == 4000
    # the split is a partition of the package's 4,000 training signals
    assert torch.equal(torch.sort(torch.cat([splits["train"][1], splits["val"][1]])).values,
                       torch.sort(full["train"][1]).values)


def test_generation_is_offline_checksummed_and_leaves_global_rngs_alone(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("MNIST-1D generation tried to use the network")

    import requests

    monkeypatch.setenv("KDLIB_CACHE", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(requests, "get", no_network)
    monkeypatch.setattr(requests.Session, "request", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    np.random.seed(123)
    expected_next = np.random.rand()
    np.random.seed(123)
    splits = data.mnist1d()
    assert np.random.rand() == expected_next  # make_dataset's reseeding was undone
    assert len(splits["test"][0]) == 1000
    (path,) = (tmp_path / "mnist1d").glob("*.npz")
    with np.load(path) as f:  # the checksum constant is the digest of exactly these arrays
        arrays = {k: f[k] for k in ("x", "y", "x_test", "y_test")}
        assert str(f["sha256"]) == data._mnist1d_digest(arrays) == data.MNIST1D_SHA256
    arrays["x"][0, 0] += 1e-3
    assert data._mnist1d_digest(arrays) != data.MNIST1D_SHA256


def test_cache_is_written_atomically_and_a_corrupt_one_is_regenerated(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KDLIB_CACHE", str(tmp_path))
    written = []
    real_write = data.atomic_write_bytes
    monkeypatch.setattr(data, "atomic_write_bytes", lambda path, payload: (written.append(path), real_write(path, payload)))
    first = data.mnist1d()
    (path,) = written
    assert path.parent == tmp_path / "mnist1d" and not list(path.parent.glob("*.tmp"))
    again = data.mnist1d()  # read from the cache, not regenerated
    assert len(written) == 1 and torch.equal(first["train"][0], again["train"][0])

    path.write_bytes(path.read_bytes()[:1000])  # truncated
    regenerated = data.mnist1d()
    err = capsys.readouterr().err.strip()
    assert "MNIST-1D cache" in err and "regenerating" in err and "\n" not in err
    assert len(written) == 2 and torch.equal(first["test"][0], regenerated["test"][0])

    arrays = dict(np.load(path))  # readable but modified: the checksum catches it
    arrays["x"][0, 0] = 99.0
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    assert torch.equal(data.mnist1d()["test"][0], first["test"][0])
    assert "sha256 mismatch" in capsys.readouterr().err


def test_changed_generator_output_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_CACHE", str(tmp_path))
    monkeypatch.setattr(data, "MNIST1D_SHA256", "0" * 64)
    with pytest.raises(RuntimeError) as err:
        data.mnist1d()
    message = str(err.value)
    assert "mnist1d 0.0.2.post1" in message and "expected 0000" in message and "\n" not in message
    assert not list((tmp_path / "mnist1d").glob("*.npz"))  # a wrong set is never cached


def _class_mean_energy(x, y):
    """Mean squared norm of the class-mean signals: translation jitter blurs them towards 0."""
    return float(torch.stack([x[y == c].mean(0) for c in range(10)]).pow(2).sum(1).mean())


def _roughness(x):
    """Mean squared step between neighbouring points of standardised signals (iid noise raises it)."""
    return float((x[:, 1:] - x[:, :-1]).pow(2).mean())


def test_shifted_generator_changes_what_it_claims(splits):
    small = {"num_samples": 2000}  # quicker; val_size=0 keeps all of it
    base = data.mnist1d_shifted(val_size=0, **small)["train"]
    assert not torch.equal(base[0][:100], splits["train"][0][:100])  # its own seed: fresh draws
    still = data.mnist1d_shifted(val_size=0, max_translation=1, **small)["train"]
    far = data.mnist1d_shifted(val_size=0, max_translation=72, **small)["train"]
    assert _class_mean_energy(*still) > 1.5 * _class_mean_energy(*base) > 1.5 * _class_mean_energy(*far)
    noisy = data.mnist1d_shifted(val_size=0, iid_noise_scale=0.2, **small)["train"]
    assert _roughness(noisy[0]) > 2 * _roughness(base[0])
    same_seed = data.mnist1d_shifted(val_size=0, seed=42)
    assert torch.equal(same_seed["test"][0], splits["test"][0])  # seed=42 and defaults: the book's set
    with pytest.raises(ValueError, match="unknown generator argument"):
        data.mnist1d_shifted(noise=0.1)


def test_cnn1d_shapes_parameters_and_features():
    model = models.build("cnn1d", num_classes=10)
    assert models.count_parameters(model) == 5210  # the repo's ConvBase
    x = torch.randn(7, 40)
    assert model(x).shape == (7, 10)
    assert torch.equal(model(x), model(x.unsqueeze(1)))
    assert model.features(x.unsqueeze(1)).shape == (7, 125) and model.fc.in_features == 125
    hooks = FeatureHooks(model, ["features"])
    logits = model(x)
    assert hooks["features"].shape == (7, 125)  # the penultimate embedding, for feature distillation
    assert torch.allclose(model.fc(hooks["features"]), logits)
    hooks.remove()
    assert models.build("cnn1d", num_classes=3, in_len=64)(torch.randn(2, 64)).shape == (2, 3)


def test_task_model_and_teacher_spec_on_mnist1d():
    task = load_task("mnist1d", max_train=500)
    assert task.num_classes == 10 and abs(len(task.train[0]) - 500) <= 5 and len(task.val[0]) == 500
    mlp = make_model("mlp", 10, hidden=(100, 100), dataset="mnist1d")
    assert mlp(task.test[0][:5]).shape == (5, 10) and models.count_parameters(mlp) == 15210
    assert make_model("mlp", 10, hidden=(8,)).features[0].in_features == 64  # digits: unchanged
    spec = teacher_spec("mnist1d", "mlp", 10, {"epochs": 1}, hidden=(16,))
    assert spec["arch_kwargs"]["in_dim"] == 40
    assert teacher_spec("mnist1d", "cnn1d", 10, {"epochs": 1})["arch_kwargs"] == {"num_classes": 10}
    assert "in_dim" not in teacher_spec("digits", "mlp", 10, {"epochs": 1}, hidden=(16,))["arch_kwargs"]
    with pytest.raises(ValueError, match="flat dataset"):
        make_model("mlp", 100, dataset="cifar100")


def test_zoo_trains_an_mnist1d_teacher():
    from kdlib import zoo

    spec = teacher_spec("mnist1d", "cnn1d", 10, {"epochs": 5, "batch_size": 100, "lr": 1e-2}, max_train=1000)
    teacher = zoo.get(spec, progress=False)
    assert teacher.zoo_meta["metrics"]["acc"] > 30  # 50 steps: far above chance (10 %), far below converged
    assert zoo.get(spec, progress=False).zoo_meta["sha256"] == teacher.zoo_meta["sha256"]
