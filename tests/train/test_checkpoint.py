"""Atomic checkpoint files, keep-last-k, the run directory layout and the LATEST pointer."""
from __future__ import annotations

import os

import pytest
import torch

from zoo.train.checkpoint import list_checkpoints, prune_checkpoints, rng_state, load_rng_state
from zoo.runs import RunError, atomic_write_text, latest_run, set_latest


def _touch(path, text="x"):
    path.write_text(text)
    return path


def test_list_ignores_temporaries_and_sorts_by_step(tmp_path):
    for name in ("step-0000010.ckpt", "step-0000002.ckpt", ".step-0000012.ckpt.tmp", "notes.txt", "step-0000100.ckpt"):
        _touch(tmp_path / name)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-0000002.ckpt", "step-0000010.ckpt", "step-0000100.ckpt"]
    assert list_checkpoints(tmp_path / "missing") == []


def test_prune_keeps_newest_k_and_removes_stale_temporaries(tmp_path):
    for step in (1, 2, 3, 4, 5):
        _touch(tmp_path / f"step-{step:07d}.ckpt")
    _touch(tmp_path / ".step-0000006.ckpt.tmp")  # a write that a crash interrupted
    deleted = prune_checkpoints(tmp_path, keep_last=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-0000004.ckpt", "step-0000005.ckpt"]
    assert len(deleted) == 4


def test_atomic_write_never_exposes_partial_file(tmp_path, monkeypatch):
    target = _touch(tmp_path / "LATEST", "old\n")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n"


def test_latest_run_pointer(tmp_path):
    with pytest.raises(RunError, match="no run found"):
        latest_run(tmp_path)
    (tmp_path / "a").mkdir()
    set_latest(tmp_path, "a")
    assert latest_run(tmp_path) == tmp_path / "a"
    set_latest(tmp_path, "gone")
    with pytest.raises(RunError, match="not a directory"):
        latest_run(tmp_path)


def test_rng_state_round_trip_through_weights_only_load(tmp_path):
    import random

    import numpy as np

    torch.manual_seed(0)
    state = rng_state()
    path = tmp_path / "rng.pt"
    torch.save(state, path)
    expected = (random.random(), float(np.random.rand()), torch.rand(3))
    load_rng_state(torch.load(path, weights_only=True))
    again = (random.random(), float(np.random.rand()), torch.rand(3))
    assert expected[:2] == again[:2] and torch.equal(expected[2], again[2])


def test_run_layout_keep_last_and_latest(tiny_run, losses):
    from zoo.model import ZooModel
    from zoo.data import load_tokenizer

    run_dir = tiny_run(["train.steps=7", "train.ckpt_every=2", "train.keep_last=2", "train.val_every=3"])
    assert [p.name for p in list_checkpoints(run_dir / "checkpoints")] == ["step-0000006.ckpt", "step-0000007.ckpt"]
    assert not list((run_dir / "checkpoints").glob(".*"))
    assert latest_run(run_dir.parent) == run_dir
    for name in ("config.yaml", "loss.png", "model/config.json", "model/model.safetensors", "model/tokenizer.json"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    # validation at 0, every 3 steps and at the end; perplexity is exp(loss)
    val = losses(run_dir, "val/loss")
    assert [s for s, _ in val] == [0, 3, 6, 7]
    ppl = dict(losses(run_dir, "val/ppl"))
    assert all(ppl[s] == pytest.approx(torch.tensor(v).exp().item(), rel=1e-5) for s, v in val)
    acc = losses(run_dir, "val/acc")
    assert [s for s, _ in acc] == [0, 3, 6, 7] and all(0.0 <= a <= 1.0 for _, a in acc)
    # the exported model reloads and reproduces the checkpoint's weights
    model = ZooModel.from_pretrained(run_dir / "model")
    ckpt = torch.load(run_dir / "checkpoints" / "step-0000007.ckpt", weights_only=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, ckpt["state_dict"]["model." + k]), k
    tok = load_tokenizer(run_dir / "model")
    assert tok.vocab_size <= model.config.vocab_size
    # a second run without resume refuses to reuse a run that has checkpoints
    from zoo.errors import ZooError

    with pytest.raises(ZooError, match="already has checkpoints"):
        tiny_run(["train.steps=7"])


def test_resume_by_recipe_never_picks_a_run_of_a_longer_recipe_name(tmp_path):
    from zoo.runs import find_resumable

    for name in ("deltanet-20260101-000000", "deltanet_340m-20260102-000000"):
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        torch.save({}, tmp_path / name / "checkpoints" / "step-0000001.ckpt")
    set_latest(tmp_path, "deltanet_340m-20260102-000000")
    assert find_resumable(tmp_path, "deltanet").name == "deltanet-20260101-000000"
    with pytest.raises(RunError, match="no run of recipe 'hybrid'"):
        find_resumable(tmp_path, "hybrid")
