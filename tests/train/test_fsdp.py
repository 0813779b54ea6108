"""FSDP (FSDP2 through Lightning's ModelParallelStrategy) on CPU (gloo): 2 processes reproduce 1 process.

The run goes through a small script that makes the loss of optimizer step 4 NaN on every rank, so the
same run checks the sharded training step (micro batches, the global grad norm over DTensor shards,
fused AdamW dropping the non-finite step through ``found_inf``), the padded validation (3 held-out rows
in micro batches of 1: rank 0 runs 2 forwards, rank 1 one and one uncounted, FSDP's forwards being
collective), the consolidated checkpoint and ``model/`` export, and exact resumes with the optimizer
state: FSDP from its own checkpoint, and across strategies both ways. In fp32 all agree to rounding at
every step.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zoo.cli import main
from zoo.config import load_recipe
from zoo.train.datamodule import ZooDataModule
from zoo.train.module import ZooLightningModule

ROOT = Path(__file__).resolve().parents[2]
POISON = 4
COMMON = ["train.batch_size=8", "train.micro_batch_size=1", "train.steps=10", "train.val_every=3",
          "train.val_batches=1", "data.val_tokens=96", "train.ckpt_every=5", "train.nan_policy=skip"]
SCRIPT = f'''"""zoo's CLI with the loss of optimizer step {POISON} made NaN (Lightning's launcher re-runs this file)."""
import sys

from zoo.cli import main
from zoo.train.module import ZooLightningModule

original = ZooLightningModule.compute_ce_sum


def poisoned(self, mb):
    ce = original(self, mb)
    return ce * float("nan") if self.global_step + 1 == {POISON} else ce


ZooLightningModule.compute_ce_sum = poisoned
main(sys.argv[1:])
'''


def _poisoned(original):
    def compute_ce_sum(self, mb):
        ce = original(self, mb)
        return ce * float("nan") if self.global_step + 1 == POISON else ce
    return compute_ce_sum


def test_fsdp_two_processes_match_one_and_resume(tiny_run, tiny_overrides, losses, tmp_path, monkeypatch):
    monkeypatch.setattr(ZooLightningModule, "compute_ce_sum", _poisoned(ZooLightningModule.compute_ce_sum))
    single = tiny_run(COMMON, name="single")
    script = tmp_path / "zoo_poisoned.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOO_RUN", "ZOO_RESUME", "LOCAL_RANK", "RANK"))}

    def zoo(*args):
        res = subprocess.run([sys.executable, str(script), "train", *args], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=600)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    def check_against_single(run_dir, first_step=0):
        for key, rel in (("train/loss", 1e-5), ("train/grad_norm", 1e-4), ("train/tokens", 0), ("val/loss", 1e-5),
                         ("val/acc", 1e-6)):
            a, b = [(s, v) for s, v in losses(single, key) if s >= first_step], losses(run_dir, key)
            assert [s for s, _ in a] == [s for s, _ in b] and len(a) >= 3, key
            for (step, x), (_, y) in zip(a, b):
                assert x == pytest.approx(y, rel=rel), f"{key} at step {step}: 1 process {x}, {run_dir.name} {y}"

    zoo("recipes/hybrid_swa.yaml", *tiny_overrides, *COMMON, "train.devices=2", "train.strategy=fsdp",
        f"runs_root={tmp_path / 'runs'}", "name=fsdp")
    fsdp = tmp_path / "runs" / "fsdp"
    assert [s for s, _ in losses(fsdp, "val/loss")] == [0, 3, 6, 9, 10]
    assert losses(fsdp, "train/nan_skipped") == losses(single, "train/nan_skipped") == [(POISON, 1.0)]
    check_against_single(fsdp)
    ckpt = [torch.load(run / "checkpoints" / "step-0000010.ckpt", weights_only=True) for run in (single, fsdp)]
    assert ckpt[0]["state_dict"].keys() == ckpt[1]["state_dict"].keys()  # one file, the full weights
    for name, w in ckpt[0]["state_dict"].items():
        torch.testing.assert_close(ckpt[1]["state_dict"][name], w, rtol=1e-4, atol=1e-6)
    assert len(ckpt[1]["optimizer_states"][0]["state"]) == len(ckpt[0]["optimizer_states"][0]["state"])
    from safetensors.torch import load_file

    exported = [load_file(run / "model" / "model.safetensors") for run in (single, fsdp)]
    assert exported[0].keys() == exported[1].keys()
    for name, w in exported[0].items():
        torch.testing.assert_close(exported[1][name], w, rtol=1e-4, atol=1e-6)

    def from_step_5(src: Path, name: str) -> Path:
        """A copy of ``src`` as it was after step 5 (its checkpoint, no logs)."""
        dst = tmp_path / "runs" / name
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("logs", "step-0000010.ckpt"))
        return dst

    # resume from step 5 (weights, AdamW moments, schedule, data position): FSDP from FSDP, FSDP from one
    # process and one process from FSDP; steps 6-10 come out the same
    zoo("--resume", str(from_step_5(fsdp, "fsdp_fsdp")))
    zoo("--resume", str(from_step_5(single, "single_fsdp")), "train.devices=2", "train.strategy=fsdp")
    tiny_run(resume_dir=from_step_5(fsdp, "fsdp_single"), extra=["train.devices=1", "train.strategy=auto"])
    for name in ("fsdp_fsdp", "single_fsdp", "fsdp_single"):
        check_against_single(tmp_path / "runs" / name, first_step=6)
        assert (tmp_path / "runs" / name / "checkpoints" / "step-0000010.ckpt").is_file()


@pytest.mark.parametrize("world, counts", [(2, [2, 1]), (4, [1, 1, 1, 0])])
def test_padded_validation_gives_every_rank_as_many_forwards(tiny_overrides, world, counts):
    """3 held-out rows in micro batches of 1: the ranks' own counts differ; padded, all run rank 0's count,
    and the padding has no targets."""
    cfg = load_recipe("recipes/hybrid_swa.yaml", tiny_overrides + COMMON)
    dms = [ZooDataModule(cfg, world_size=world, rank=r).prepare() for r in range(world)]
    assert [len(dm.val_batches_for_rank()) for dm in dms] == counts
    for dm, own in zip(dms, counts):
        padded = dm.val_batches_for_rank(pad=True)
        assert len(padded) == counts[0]
        assert all((b["labels"] == -100).all() for b in padded[own:])
        assert all(torch.equal(a["labels"], b["labels"]) for a, b in zip(padded, dm.val_batches_for_rank()))


def test_fsdp_refuses_the_compression_head(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["train", "recipes/mad.yaml", "data.mad.task=compression", "train.strategy=fsdp",
              "train.accelerator=cpu", f"runs_root={tmp_path}"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "train.strategy=fsdp shards language-model training only" in err
    assert not list(tmp_path.iterdir())
