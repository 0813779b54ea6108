"""``TrainConfig``: the ``train:`` section of a recipe (optimisation, devices, checkpoints, faults).

Batch sizes are counted in sequences of ``data.seq_len`` tokens. ``batch_size`` is the *global*
batch of one optimizer step, over all devices and accumulation steps, so a recipe trains the
same maths on 1 or N GPUs: each device runs ``batch_size / devices`` rows per step, in micro
batches of ``micro_batch_size`` rows (``accumulate = batch_size / (devices * micro_batch_size)``).

This module imports nothing heavy (no torch, no Lightning) so ``zoo.config`` stays light.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from zoo.errors import ZooError

STRATEGIES = ("auto", "ddp", "fsdp")
PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true")
ACCELERATORS = ("auto", "cpu", "gpu")
NAN_POLICIES = ("skip", "stop")


class TrainConfigError(ZooError):
    """A ``train:`` value outside its valid range; the message names the key and the choices."""


def _choice(key: str, value: str, choices: tuple) -> None:
    if value not in choices:
        raise TrainConfigError(f"bad value for 'train.{key}': {value!r}. Valid choices: {', '.join(choices)}")


def _positive(key: str, value, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise TrainConfigError(f"bad value for 'train.{key}': {value!r}; it must be {'>= 0' if allow_zero else '> 0'}")


@dataclass
class TrainConfig:
    """Optimisation and run-time settings. Defaults suit a small CPU run."""

    steps: int = 300                  # optimizer steps
    batch_size: int = 8               # sequences per optimizer step, all devices and micro batches together
    micro_batch_size: Optional[int] = None  # rows per device per forward; None: batch_size / devices
    lr: float = 1e-3                  # peak learning rate
    min_lr_ratio: float = 0.1         # cosine floor as a fraction of lr
    warmup_steps: int = 30            # linear warmup from 0
    weight_decay: float = 0.1         # AdamW; never applied to norms, biases or embeddings
    betas: List[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    grad_clip: float = 1.0            # max global grad norm; 0 disables clipping
    precision: str = "auto"           # auto: bf16-mixed on GPU, 32-true on CPU
    accelerator: str = "auto"         # auto | cpu | gpu
    devices: int = 0                  # 0: every visible device (1 on CPU)
    strategy: str = "auto"            # auto | ddp | fsdp (multi-GPU; see README "Multi-GPU")
    seed: int = 1234
    val_every: int = 50               # optimizer steps between validations (also run at step 0 and the end)
    val_batches: int = 8              # held-out batches of batch_size rows per validation
    ckpt_every: int = 100             # optimizer steps between checkpoints; 0: only the final one
    keep_last: int = 2                # checkpoints kept (older ones are deleted)
    log_every: int = 5                # optimizer steps between CSV/TensorBoard rows
    nan_policy: str = "skip"          # non-finite loss or grad norm: drop that update (skip), or stop
    max_nan_skips: int = 20           # stop anyway after this many skipped steps in one run
    progress_bar: bool = True

    def __post_init__(self) -> None:
        _choice("strategy", self.strategy, STRATEGIES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("accelerator", self.accelerator, ACCELERATORS)
        _choice("nan_policy", self.nan_policy, NAN_POLICIES)
        for key in ("steps", "batch_size", "lr", "log_every", "val_every"):
            _positive(key, getattr(self, key))
        for key in ("warmup_steps", "weight_decay", "grad_clip", "ckpt_every", "devices", "val_batches", "max_nan_skips"):
            _positive(key, getattr(self, key), allow_zero=True)
        _positive("keep_last", self.keep_last)
        if self.micro_batch_size is not None:
            _positive("micro_batch_size", self.micro_batch_size)
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise TrainConfigError(f"bad value for 'train.min_lr_ratio': {self.min_lr_ratio}; it must lie in [0, 1]")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise TrainConfigError(f"bad value for 'train.betas': {list(self.betas)}; give two numbers in [0, 1)")

    def layout(self, world_size: int) -> tuple[int, int, int]:
        """(rows per device per step, micro batch rows, accumulation steps) for ``world_size`` devices.

        >>> TrainConfig(batch_size=32, micro_batch_size=4).layout(2)
        (16, 4, 4)
        """
        if self.batch_size % world_size:
            raise TrainConfigError(
                f"train.batch_size={self.batch_size} does not split over {world_size} devices; "
                f"use a multiple of {world_size}")
        per_device = self.batch_size // world_size
        micro = self.micro_batch_size or per_device
        if per_device % micro:
            raise TrainConfigError(
                f"train.micro_batch_size={micro} does not divide the {per_device} rows each device runs per step "
                f"(train.batch_size={self.batch_size} over {world_size} device(s))")
        return per_device, micro, per_device // micro
