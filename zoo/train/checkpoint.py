"""Checkpoints written atomically, the last k kept, and the ``model/`` export beside them.

A checkpoint is Lightning's full training state (weights, optimizer, LR scheduler, loop
counters, the data module's stream position, RNG states saved by the module) in
``checkpoints/step-<step>.ckpt``. It is first written to ``.step-<step>.ckpt.tmp`` and then
``os.replace``-d into place, so a crash mid-write never leaves a truncated ``.ckpt`` that a
resume would pick up. ``model/`` (``config.json``, ``model.safetensors``, ``tokenizer.json``) is
refreshed with each checkpoint, file by file, each through a temporary file as well.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Callable, List, Optional

import lightning as L
import torch

_CKPT = re.compile(r"^step-(\d+)\.ckpt$")


def list_checkpoints(directory: str | Path) -> List[Path]:
    """Complete checkpoints in ``directory``, oldest step first (temporary files are ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _CKPT.match(p.name))]
    return [p for _, p in sorted(found)]


def prune_checkpoints(directory: str | Path, keep_last: int) -> List[Path]:
    """Delete all but the newest ``keep_last`` checkpoints and stale temporary files; returns the deleted."""
    ckpts = list_checkpoints(directory)
    doomed = ckpts[:-keep_last] if keep_last > 0 else ckpts
    doomed += [p for p in Path(directory).glob(".step-*.ckpt.tmp*")]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def export_model(trainer: L.Trainer, pl_module: L.LightningModule, model_dir: Path, tokenizer=None) -> None:
    """Refresh ``model_dir`` with ``save_pretrained`` + the tokenizer (``tokenizer.save(dir)`` writes
    ``tokenizer.json``; None for synthetic data). Call on every rank (FSDP gathers).

    Under FSDP the full state dict is gathered to rank 0 (on the CPU) and loaded into a CPU copy
    of the model; otherwise rank 0 saves the live (unsharded) model directly.
    """
    from lightning.pytorch.strategies import ModelParallelStrategy

    if isinstance(trainer.strategy, ModelParallelStrategy):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(pl_module.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if not trainer.is_global_zero:  # collective; populated on rank 0 only
            return
        from zoo.model import ZooModel

        model = ZooModel(pl_module.model.config)
        model.load_state_dict(full)
    else:
        if not trainer.is_global_zero:
            return
        model = pl_module.model
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=model_dir.parent, prefix=".model-") as tmp:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save(tmp)
        for path in Path(tmp).iterdir():
            os.replace(path, model_dir / path.name)


class AtomicCheckpoint(L.Callback):
    """Periodic, final and Ctrl-C checkpoints; keeps the newest ``keep_last``; exports ``model/``.

    ``every`` is in optimizer steps (0: only the final checkpoint). A ``KeyboardInterrupt`` that
    reaches the trainer (``zoo.train.run`` raises it only between optimizer steps) saves the
    state of the last completed step before Lightning exits.
    """

    def __init__(self, run_dir: Path, every: int, keep_last: int, tokenizer=None,
                 echo: Callable[[str], None] = print):
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / "checkpoints"
        self.every, self.keep_last = every, keep_last
        self.tokenizer = tokenizer
        self.echo = echo
        self.last_saved_step: Optional[int] = None
        self.last_path: Optional[Path] = None

    def save(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Path:
        step = trainer.global_step
        final = self.dir / f"step-{step:07d}.ckpt"
        if self.last_saved_step == step and final.is_file():
            return final
        tmp = self.dir / f".{final.name}.tmp"
        if trainer.is_global_zero:
            self.dir.mkdir(parents=True, exist_ok=True)
        trainer.strategy.barrier("zoo_ckpt_dir")
        trainer.save_checkpoint(tmp, weights_only=False)  # full state; written by rank 0, barrier inside
        if trainer.is_global_zero:
            os.replace(tmp, final)
            prune_checkpoints(self.dir, self.keep_last)
        export_model(trainer, pl_module, self.run_dir / "model", self.tokenizer)
        trainer.strategy.barrier("zoo_ckpt_done")
        self.last_saved_step, self.last_path = step, final
        return final

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.every and step > 0 and step % self.every == 0 and step != self.last_saved_step and step < trainer.max_steps:
            self.save(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self.save(trainer, pl_module)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt) and trainer.global_step > 0:
            path = self.save(trainer, pl_module)
            if trainer.is_global_zero:
                self.echo(f"interrupted: saved {path} (step {trainer.global_step})")


def rng_state() -> dict:
    """Python, NumPy, torch (and CUDA) RNG states as plain types and tensors (loadable with weights_only)."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "python": [version, list(internal), gauss_next],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
    }


def load_rng_state(state: dict) -> None:
    """Restore the states ``rng_state()`` captured (CUDA only where it is available)."""
    import random

    import numpy as np

    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"])
