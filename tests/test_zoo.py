"""The teacher zoo: trained once, verified on load, corrupt entries retrained, writes atomic."""

import json
import os

import pytest
import torch

from kdlib import repro, zoo

SPEC = {"data": "digits", "arch": "mlp", "arch_kwargs": {"hidden": [16]}, "seed": 0,
        "recipe": {"epochs": 2, "lr": 3e-3}}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KDLIB_CACHE", str(tmp_path))
    return tmp_path


def test_trained_once_then_loaded(cache, capsys):
    first = zoo.get(SPEC, progress=False)
    entry = cache / "zoo" / first.zoo_meta["key"]
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["sha256"] == repro.file_digest(entry / "model.pt")
    assert 0 <= meta["metrics"]["acc"] <= 100
    mtime = os.path.getmtime(entry / "model.pt")
    second = zoo.get(SPEC, progress=False)
    assert os.path.getmtime(entry / "model.pt") == mtime  # not retrained
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    assert not second.training


def test_key_depends_on_the_spec():
    other = {**SPEC, "seed": 1}
    assert zoo.spec_key(SPEC) != zoo.spec_key(other)
    assert zoo.spec_key(SPEC) == zoo.spec_key(json.loads(json.dumps(SPEC)))


@pytest.mark.parametrize("damage", ["flip_bytes", "truncate", "bad_meta", "other_spec", "missing_weights"])
def test_corrupt_entry_is_reported_in_one_line_and_retrained(cache, capsys, damage):
    model = zoo.get(SPEC, progress=False)
    entry = cache / "zoo" / model.zoo_meta["key"]
    weights, meta = entry / "model.pt", entry / "meta.json"
    if damage == "flip_bytes":
        blob = bytearray(weights.read_bytes())
        blob[-10] ^= 0xFF
        weights.write_bytes(bytes(blob))
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "bad_meta":
        meta.write_text("{not json")
    elif damage == "other_spec":
        m = json.loads(meta.read_text())
        m["spec"]["seed"] = 99
        meta.write_text(json.dumps(m))
    else:
        weights.unlink()
    capsys.readouterr()
    again = zoo.get(SPEC, progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "retraining" in err[0] and model.zoo_meta["key"] in err[0]
    assert repro.file_digest(weights) == json.loads(meta.read_text())["sha256"]
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)  # deterministic retraining gives the same teacher


def test_weights_are_loaded_with_weights_only(cache, monkeypatch):
    zoo.get(SPEC, progress=False)
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    zoo.get(SPEC, progress=False)
    assert seen.get("weights_only") is True


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "file.bin"
    repro.atomic_write_bytes(path, b"old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        repro.atomic_write_bytes(path, b"new content")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]  # no temp file left behind
