"""Faults and bad input: non-finite losses, bad recipes, too-small corpora, Ctrl-C in a real process."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from zoo.cli import main
from zoo.train.checkpoint import list_checkpoints
from zoo.train.module import NonFiniteLossError


class PoisonLoss(L.Callback):
    """Makes the loss NaN (and so every gradient) for the first batch that tries optimizer step k, for k in
    ``steps`` (1-based); ``{None}`` poisons every batch."""

    def __init__(self, steps):
        self.steps = set(steps)
        self.hits = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        original = type(pl_module).compute_ce_sum
        step = trainer.global_step + 1
        poison = step in self.steps or None in self.steps
        if poison:
            self.hits += 1
            self.steps.discard(step)
        pl_module.compute_ce_sum = (lambda mb: original(pl_module, mb) * float("nan")) if poison else \
            (lambda mb: original(pl_module, mb))


def test_nan_step_is_skipped_and_counted(tiny_run, losses):
    cb = PoisonLoss({3})
    run_dir = tiny_run(["train.nan_policy=skip"], callbacks=[cb])
    assert cb.hits == 1
    steps = [s for s, v in losses(run_dir)]
    assert steps == [1, 2, 4, 5, 6, 7, 8]  # step 3 counted, but its update was dropped and it logs no loss
    assert all(math.isfinite(v) for _, v in losses(run_dir))
    assert losses(run_dir, "train/nan_skipped") == [(3, 1.0)]
    from safetensors.torch import load_file

    weights = load_file(run_dir / "model" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


class WeightsAround(L.Callback):
    """Snapshots the weights and AdamW's step counts before and after the batch of optimizer step k."""

    def __init__(self, k):
        self.k, self.before, self.after = k, None, None

    def _snap(self, pl_module, trainer):
        opt = trainer.optimizers[0]
        return ({n: p.detach().clone() for n, p in pl_module.named_parameters()},
                [float(st["step"]) for st in opt.state.values()])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step + 1 == self.k:
            self.before = self._snap(pl_module, trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.k and self.after is None:
            self.after = self._snap(pl_module, trainer)


def test_nan_step_leaves_weights_and_optimizer_state_untouched(tiny_run):
    poisoned, control = WeightsAround(3), WeightsAround(4)
    tiny_run(["train.nan_policy=skip"], callbacks=[PoisonLoss({3}), poisoned, control])
    (w0, s0), (w1, s1) = poisoned.before, poisoned.after
    assert s0 == s1 and all(torch.equal(w0[n], w1[n]) for n in w0)
    (w0, s0), (w1, s1) = control.before, control.after  # a finite step does update
    assert all(b == a + 1 for a, b in zip(s0, s1)) and any(not torch.equal(w0[n], w1[n]) for n in w0)


def test_nan_stop_policy_raises_clear_error(tiny_run):
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss at step 3 .*train.nan_policy=stop"):
        tiny_run(["train.nan_policy=stop"], callbacks=[PoisonLoss({3})])


def test_persistent_nan_stops_after_max_skips(tiny_run):
    with pytest.raises(NonFiniteLossError, match=r"more than train.max_nan_skips=2"):
        tiny_run(["train.nan_policy=skip", "train.max_nan_skips=2"], callbacks=[PoisonLoss({None})])


@pytest.mark.parametrize("override, expected", [
    ("train.nan_policy=maybe", "Valid choices: skip, stop"),
    ("train.strategy=horovod", "Valid choices: auto, ddp, fsdp"),
    ("train.stepz=3", "unknown key 'train.stepz'. Valid keys here: steps, batch_size"),
    ("trian.steps=3", "unknown key 'trian'. Valid keys here: model, data, train"),
    ("train.steps=many", "bad value for 'train.steps'"),
    ("train.batch_size=0", "'train.batch_size': 0; it must be > 0"),
    ("data.type=tweets", "data.type='tweets' is not one of embedded"),
    ("train.betas=[0.9]", "train.betas"),
])
def test_bad_recipe_values_exit_2_with_one_line(capsys, override, expected, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["train", "recipes/hybrid_swa.yaml", override, f"runs_root={tmp_path}", "train.accelerator=cpu"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing was written


def test_missing_recipe_and_bad_override_syntax(capsys, tmp_path):
    for args, expected in ((["train", str(tmp_path / "nope.yaml")], "recipe not found"),
                           (["train", "recipes/hybrid_swa.yaml", "steps"], "is not key=value"),
                           (["train", "--resume", str(tmp_path)], "not a run directory"),
                           (["train", "recipes/hybrid_swa.yaml", "--resume", str(tmp_path)], "drop the recipe")):
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == 2
        assert expected in capsys.readouterr().err


def test_batch_that_does_not_split_is_a_clear_error(tiny_run):
    from zoo.errors import ZooError

    with pytest.raises(ZooError, match="micro_batch_size=3 does not divide"):
        tiny_run(["train.micro_batch_size=3"])


@pytest.mark.parametrize("text, expected", [
    ("A short first document.\n\nAnd a second one, also short.\n", "too small"),
    ("", "no documents"),
], ids=["too-small", "empty"])
def test_too_small_or_empty_corpus_is_a_clear_error(tmp_path, capsys, text, expected):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(text)
    with pytest.raises(SystemExit) as info:
        main(["train", "recipes/hybrid_swa.yaml", "data.type=text", f"data.path={corpus}", f"runs_root={tmp_path}/runs",
              "train.accelerator=cpu", "data.tokenizer.vocab_size=300", "data.tokenizer.min_frequency=1"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # no half-made run directory, LATEST untouched


def test_sigint_in_a_real_process_saves_a_checkpoint_and_resumes(tmp_path, tiny_overrides):
    """Ctrl-C (SIGINT) mid-run: exit 130 after a checkpoint; --resume finishes the run."""

    runs_root = tmp_path / "runs"
    args = [sys.executable, "-c", "from zoo.cli import main; main()", "train", "recipes/hybrid_swa.yaml", *tiny_overrides,
            "train.steps=400", f"runs_root={runs_root}", "name=sig"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, cwd=Path(__file__).resolve().parents[2], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    metrics = runs_root / "sig" / "logs" / "csv" / "version_0" / "metrics.csv"
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:  # wait until two steps are logged
            if metrics.is_file() and len(metrics.read_text().splitlines()) >= 4:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "Resume with: zoo train --resume" in out
    ckpts = list_checkpoints(runs_root / "sig" / "checkpoints")
    assert len(ckpts) == 1, out
    step = int(ckpts[0].stem.split("-")[1])
    assert 0 < step < 400
    assert metrics.is_file()
    # resume for a few more steps only (train.steps is an override on the saved config)
    res = subprocess.run([sys.executable, "-c", "from zoo.cli import main; main()", "train", "--resume",
                          str(runs_root / "sig"), f"train.steps={step + 3}"],
                         cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    assert list_checkpoints(runs_root / "sig" / "checkpoints")[-1].name == f"step-{step + 3:07d}.ckpt"
