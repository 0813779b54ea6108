"""Data parallelism on CPU (gloo): 2 processes reproduce 1 process with the same global batch.

Lightning's launcher re-executes ``python cli.py train ...`` for the second rank, so this runs the
real multi-device path: the shared run directory, the per-rank slices of each global batch,
gradient accumulation under ``no_sync``, the token-count all-reduce and the sharded validation.
In fp32 the two agree to rounding at every step, including the steps after each mid-run validation.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zoo.config import load_recipe
from zoo.train.datamodule import ZooDataModule

ROOT = Path(__file__).resolve().parents[2]
# 8 rows a step in micro batches of 2: 1 process accumulates 4, each of 2 processes 2. Validation at
# steps 0, 3, 6, 9 and 10 on 3 held-out rows (2 on rank 0, 1 on rank 1), so 7 steps follow one.
COMMON = ["train.batch_size=8", "train.micro_batch_size=2", "train.steps=10", "train.val_every=3",
          "train.val_batches=1", "data.val_tokens=96"]


def test_ranks_take_their_slices_of_each_step(tiny_overrides):
    """Rank 0's rows then rank 1's are, micro batch by micro batch, the single process's rows of each step."""
    cfg = load_recipe("recipes/hybrid_swa.yaml", tiny_overrides + COMMON)
    one = ZooDataModule(cfg).prepare()
    two = [ZooDataModule(cfg, world_size=2, rank=r).prepare() for r in range(2)]
    steps = [iter(dm.train_dataloader()) for dm in [one, *two]]
    for index in range(3):
        a, b0, b1 = (next(s) for s in steps)
        assert a["data_index"] == b0["data_index"] == b1["data_index"] == index
        assert (len(a["micro"]), len(b0["micro"])) == (4, 2)
        rows = [mb["input_ids"] for mb in b0["micro"] + b1["micro"]]
        assert torch.equal(torch.cat([mb["input_ids"] for mb in a["micro"]]), torch.cat(rows))
        assert a["n_tokens"] == b0["n_tokens"] + b1["n_tokens"]
    val = [torch.cat([b["input_ids"] for b in dm.val_batches_for_rank()]) for dm in [one, *two]]
    assert [v.shape[0] for v in val] == [3, 2, 1] and torch.equal(val[0], torch.cat(val[1:]))


def test_ddp_two_processes_match_one(tiny_run, tiny_overrides, losses, tmp_path):
    single = tiny_run(COMMON, name="single")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOO_RUN", "ZOO_RESUME", "LOCAL_RANK", "RANK"))}
    res = subprocess.run([sys.executable, "cli.py", "train", "recipes/hybrid_swa.yaml", *tiny_overrides, *COMMON,
                          "train.devices=2", "train.strategy=ddp", f"runs_root={tmp_path / 'runs'}", "name=ddp"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ddp = tmp_path / "runs" / "ddp"
    assert [s for s, _ in losses(ddp, "val/loss")] == [0, 3, 6, 9, 10]
    for key, rel in (("train/loss", 1e-5), ("train/grad_norm", 1e-4), ("train/tokens", 0), ("val/loss", 1e-5),
                     ("val/acc", 1e-6)):
        a, b = losses(single, key), losses(ddp, key)
        assert [s for s, _ in a] == [s for s, _ in b] and len(a) >= 5, key
        for (step, x), (_, y) in zip(a, b):
            assert x == pytest.approx(y, rel=rel), f"{key} at step {step}: 1 process {x}, 2 processes {y}"
    assert (ddp / "model" / "model.safetensors").is_file() and (ddp / "checkpoints" / "step-0000010.ckpt").is_file()
