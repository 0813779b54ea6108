"""Data parallelism on CPU (gloo): 2 processes reproduce 1 process with the same global batch.

Lightning's launcher re-executes ``python cli.py train ...`` for the second rank, so this runs the
real multi-device path: the shared run directory, the per-rank slices of each global batch,
gradient accumulation under ``no_sync``, the token-count all-reduce and the sharded validation.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_ddp_two_processes_match_one(tiny_run, tiny_overrides, losses, tmp_path):
    common = ["train.micro_batch_size=1", "train.steps=6", "train.val_every=3"]
    single = tiny_run(common, name="single")  # 1 device: accumulate 4 micro batches
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOO_RUN", "ZOO_RESUME", "LOCAL_RANK", "RANK"))}
    res = subprocess.run([sys.executable, "cli.py", "train", "recipes/hybrid_swa.yaml", *tiny_overrides, *common,
                          "train.devices=2", "train.strategy=ddp", f"runs_root={tmp_path / 'runs'}", "name=ddp"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ddp = tmp_path / "runs" / "ddp"
    for key in ("train/loss", "val/loss"):
        a, b = losses(single, key), losses(ddp, key)
        assert [s for s, _ in a] == [s for s, _ in b]
        for (step, x), (_, y) in zip(a, b):
            assert x == pytest.approx(y, rel=1e-5), f"{key} at step {step}: 1 process {x}, 2 processes {y}"
    assert (ddp / "model" / "model.safetensors").is_file() and (ddp / "checkpoints" / "step-0000006.ckpt").is_file()
