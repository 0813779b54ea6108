"""Tiny CPU runs for the training tests: a 2-layer width-32 hybrid on the embedded corpus."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import pytest

TINY = [
    "model.pattern=delta swa",
    "model.d_model=32",
    "model.n_heads=2",
    "model.vocab_size=512",
    "model.max_seq_len=32",
    "model.mixers={swa: {type: attention, window: 16}}",
    "data.seq_len=32",
    "data.tokenizer.vocab_size=512",
    "train.batch_size=4",
    "train.steps=8",
    "train.warmup_steps=2",
    "train.lr=3e-3",
    "train.val_every=4",
    "train.val_batches=2",
    "train.log_every=1",
    "train.ckpt_every=0",
    "train.progress_bar=false",
    "train.accelerator=cpu",
]


@pytest.fixture
def tiny_overrides():
    """The key=value overrides that make the tiny recipe (for runs in a subprocess)."""
    return list(TINY)


@pytest.fixture
def tiny_run(tmp_path, monkeypatch):
    """``run(overrides, name, callbacks)`` trains a tiny recipe under tmp_path/runs and returns the run dir."""
    from zoo.train import run as run_mod

    monkeypatch.delenv(run_mod.ENV_RUN_DIR, raising=False)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("model:\n  pattern: delta swa\n")

    def run(overrides: Optional[List[str]] = None, name: str = "r", callbacks=None, resume_dir: Optional[Path] = None,
            extra: Optional[List[str]] = None):
        over = TINY + [f"runs_root={tmp_path / 'runs'}", f"name={name}"] + list(overrides or [])
        if resume_dir is not None:
            cfg, run_dir, resuming = run_mod.resolve_run(None, list(extra or []), str(resume_dir))
        else:
            cfg, run_dir, resuming = run_mod.resolve_run(str(recipe), over, None)
        return run_mod.train(cfg, run_dir, resuming, echo=lambda *_: None, extra_callbacks=callbacks)

    return run


@pytest.fixture
def losses():
    """``losses(run_dir, key="train/loss") -> [(step, value), ...]`` merged over resumes."""
    from zoo.train.plotting import read_metrics

    return lambda run_dir, key="train/loss": read_metrics(run_dir, (key,))[key]


@pytest.fixture
def interrupt_at():
    """``interrupt_at(step)``: a callback raising KeyboardInterrupt after optimizer step ``step``
    (as a deferred Ctrl-C does)."""
    import lightning as L

    class InterruptAt(L.Callback):
        def __init__(self, step: int):
            self.step = step

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == self.step:
                raise KeyboardInterrupt

    return InterruptAt
