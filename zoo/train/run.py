"""``zoo train``: resolve the run directory, print the plan, build the trainer and fit.

``train_from_cli(recipe, overrides, resume_dir)`` is what ``zoo train`` calls. Resuming
(``resume=true`` or ``--resume RUN_DIR``) reloads the run's own ``config.yaml`` (command-line
overrides still apply, e.g. ``train.steps=2000`` to train longer) and continues from its newest
checkpoint: weights, optimizer, LR schedule, data position and RNG, so the losses continue
exactly as if the run had never stopped.

Multi-GPU: Lightning's launcher re-executes this command once per extra device; the first
process exports ``ZOO_RUN_DIR`` so every rank agrees on the run directory, and only rank 0
writes ``config.yaml``, ``LATEST``, logs and checkpoints.

Ctrl-C: the first press finishes the current optimizer step, writes a checkpoint and exits
(status 130, with the command that resumes); a second press aborts at once.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Callable, List, Optional

from zoo.config import ConfigError, RunConfig, load_recipe, load_yaml, to_container
from zoo import runs

ENV_RUN_DIR = "ZOO_RUN_DIR"
ENV_RESUME = "ZOO_RESUME"


class TrainingInterrupted(Exception):
    """Training stopped on Ctrl-C after saving ``checkpoint`` (None when nothing was trained yet)."""

    def __init__(self, run_dir: Path, checkpoint: Optional[Path]):
        self.run_dir, self.checkpoint = run_dir, checkpoint
        where = f"saved {checkpoint}" if checkpoint else "no step had finished, nothing saved"
        super().__init__(f"interrupted: {where}. Resume with: zoo train --resume {run_dir}")


def _rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0)))


def resolve_run(recipe: Optional[str], overrides: List[str], resume_dir: Optional[str]) -> tuple[RunConfig, Path, bool]:
    """(config, run directory, resuming?) for a ``zoo train`` invocation; ConfigError/RunError on misuse."""
    if os.environ.get(ENV_RUN_DIR) and _rank() > 0:  # a rank started by Lightning's launcher
        run_dir = Path(os.environ[ENV_RUN_DIR])
        cfg = load_recipe(None, [o for o in overrides if not o.startswith("resume=")],
                          base=load_yaml(run_dir / "config.yaml"))
        cfg.resume = os.environ.get(ENV_RESUME) == "1"
        return cfg, run_dir, cfg.resume
    if resume_dir is not None:
        if recipe is not None:
            raise ConfigError(f"--resume continues a run with its own config.yaml; drop the recipe {recipe!r} "
                              f"(overrides such as train.steps=... still apply)")
        run_dir = Path(resume_dir)
        if not (run_dir / "config.yaml").is_file():
            raise runs.RunError(f"--resume {run_dir}: not a run directory (no config.yaml there)")
        cfg = load_recipe(None, overrides, base=load_yaml(run_dir / "config.yaml"))
        cfg.resume = True
    else:
        if recipe is None:
            raise ConfigError("name a recipe (e.g. zoo train recipes/hybrid_swa.yaml) or pass --resume RUN_DIR")
        cfg = load_recipe(recipe, overrides)
        stem = Path(recipe).stem
        root = Path(cfg.runs_root)
        if cfg.resume:
            run_dir = root / runs.check_name(cfg.name) if cfg.name else runs.find_resumable(root, stem)
            if not (run_dir / "config.yaml").is_file():
                raise runs.RunError(f"resume=true: {run_dir} is not a run directory (no config.yaml)")
            cfg = load_recipe(None, [o for o in overrides if not o.startswith("resume=")],
                              base=load_yaml(run_dir / "config.yaml"))
            cfg.resume = True
        else:
            cfg.name = runs.check_name(cfg.name) if cfg.name else runs.new_run_name(stem)
            run_dir = root / cfg.name
            if runs.latest_checkpoint(run_dir) is not None:
                raise runs.RunError(f"run {run_dir} already has checkpoints; continue it with resume=true "
                                    f"(or --resume {run_dir}), or pick another name=...")
    if cfg.resume and runs.latest_checkpoint(run_dir) is None:
        raise runs.RunError(f"{run_dir} has no checkpoint to resume from (checkpoints/ is empty)")
    cfg.name = run_dir.name
    cfg.runs_root = str(run_dir.parent)
    return cfg, run_dir, cfg.resume


def _devices(cfg) -> tuple[str, object, int]:
    import torch

    acc = cfg.accelerator
    if acc == "auto":
        acc = "gpu" if torch.cuda.is_available() else "cpu"
    if acc == "gpu" and not torch.cuda.is_available():
        raise ConfigError("train.accelerator=gpu but no CUDA device is visible; use train.accelerator=cpu")
    if cfg.devices:
        devices, world = cfg.devices, cfg.devices
    elif acc == "gpu":
        devices, world = "auto", torch.cuda.device_count()
    else:
        devices, world = 1, 1
    return acc, devices, world


def _strategy(cfg, world: int, objective: str = "lm"):
    """Lightning strategy for ``train.strategy``; ``auto`` over several devices means DDP (never spawn).

    A task head (``objective`` other than ``lm``) leaves an untied LM head without gradients, so
    DDP then looks for unused parameters. ``fsdp`` is FSDP2 (``fully_shard``, applied in
    ``ZooLightningModule.configure_model``) over all devices; its checkpoints are one file with the
    full weights and optimizer state, as under DDP.
    """
    if cfg.strategy == "ddp" or (cfg.strategy == "auto" and world > 1):
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(find_unused_parameters=objective != "lm", gradient_as_bucket_view=True)
    if cfg.strategy == "fsdp":
        from lightning.pytorch.strategies import ModelParallelStrategy

        if objective != "lm":
            raise ConfigError("train.strategy=fsdp shards language-model training only; the MAD compression "
                              "task (a decoder head) runs with train.strategy=ddp or on one device")
        return ModelParallelStrategy(data_parallel_size=world, tensor_parallel_size=1,
                                     save_distributed_checkpoint=False)
    return "auto"


def _interrupt_callback(echo: Callable[[str], None]):
    """A callback deferring SIGINT to the end of the current optimizer step (on every rank)."""
    import lightning as L

    class _Interrupt(L.Callback):
        def __init__(self):
            self.requested = False
            self._previous = None

        def _handler(self, signum, frame):
            if self.requested:  # second Ctrl-C: abort now
                raise KeyboardInterrupt
            self.requested = True
            if _rank() == 0:
                echo("\nCtrl-C: finishing this step, then saving a checkpoint (press again to abort at once)")

        def on_train_start(self, trainer, pl_module):
            try:
                self._previous = signal.signal(signal.SIGINT, self._handler)
            except ValueError:  # not the main thread: leave Ctrl-C as it is
                self._previous = None

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            stop = trainer.strategy.reduce_boolean_decision(self.requested, all=False)
            if stop:
                raise KeyboardInterrupt

        def on_train_end(self, trainer, pl_module):
            if self._previous is not None:
                signal.signal(signal.SIGINT, self._previous)

    return _Interrupt()


def train(cfg: RunConfig, run_dir: Path, resuming: bool, echo: Callable[[str], None] = print,
          extra_callbacks: Optional[list] = None) -> Path:
    """Fit ``cfg`` in ``run_dir``; returns ``run_dir``. Raises TrainingInterrupted on Ctrl-C."""
    import lightning as L
    from lightning.pytorch.callbacks import TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from omegaconf import OmegaConf

    from zoo.train.checkpoint import AtomicCheckpoint
    from zoo.train.datamodule import ZooDataModule
    from zoo.train.module import ZooLightningModule
    from zoo.train.plotting import plot_loss

    import logging
    import warnings

    # zoo prints its own plan and summary; keep Lightning's info chatter (tips, "GPU available") out
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    tcfg = cfg.train
    acc, devices, world = _devices(tcfg)
    rank = _rank()
    precision = tcfg.precision if tcfg.precision != "auto" else ("bf16-mixed" if acc == "gpu" else "32-true")
    main = rank == 0
    saved = to_container(cfg)
    saved["resume"] = False
    if main:
        from zoo.compose import compose, format_table

        echo(f"{'resuming' if resuming else 'run'}: {run_dir}")
        echo("---- resolved config ----")
        echo(OmegaConf.to_yaml(OmegaConf.create(saved)).rstrip())
        echo("---- model ----")
        echo(format_table(compose(cfg.model, cfg.data.resolved_seq_len())))
        echo(f"---- devices: {acc} x{world}, precision {precision}, strategy {tcfg.strategy}; "
             f"global batch {tcfg.batch_size} x {cfg.data.resolved_seq_len()} tokens ----")

    L.seed_everything(tcfg.seed, workers=True, verbose=False)
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if acc == "gpu" and cfg.data.synthetic else "cpu"
    dm = ZooDataModule(cfg, world_size=world, rank=rank, device=device).prepare()
    if dm.vocab_size is not None and dm.vocab_size > cfg.model.vocab_size:
        raise ConfigError(f"the data has {dm.vocab_size} token ids but model.vocab_size={cfg.model.vocab_size}; "
                          f"set model.vocab_size={dm.vocab_size} (or larger)")
    strategy = _strategy(tcfg, world, dm.objective)
    if main:
        echo(f"data: {dm.description}; per device {dm.per_device} rows/step in {dm.accumulate} micro batch(es) "
             f"of {dm.micro_rows}")
        # the run directory appears only once the recipe, model and data are known to work
        run_dir.mkdir(parents=True, exist_ok=True)
        runs.atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(saved)))
        runs.set_latest(run_dir.parent, run_dir.name)
        if world > 1:  # ranks that Lightning's launcher starts read it (see resolve_run)
            os.environ[ENV_RUN_DIR] = str(run_dir.resolve())
            os.environ[ENV_RESUME] = "1" if resuming else "0"
    module = ZooLightningModule(cfg.model, tcfg, objective=dm.objective)
    if main and module.head is not None:
        echo(f"head: MAD compression decoder ({sum(p.numel() for p in module.head.parameters()):,} parameters) "
             "rebuilds the sequence from the model's output at its last position")
    ckpt_cb = AtomicCheckpoint(run_dir, tcfg.ckpt_every, tcfg.keep_last, tokenizer=dm.tokenizer, echo=echo)
    callbacks = [_interrupt_callback(echo), ckpt_cb, *(extra_callbacks or [])]
    if tcfg.progress_bar:
        class _Bar(TQDMProgressBar):  # loss, tok/s, last validation loss; no logger version number
            def get_metrics(self, trainer, pl_module):
                metrics = super().get_metrics(trainer, pl_module)
                metrics.pop("v_num", None)
                if isinstance(metrics.get("tok/s"), (int, float)):
                    metrics["tok/s"] = f"{metrics['tok/s']:,.0f}"
                return metrics

            def on_train_epoch_start(self, trainer, pl_module):
                super().on_train_epoch_start(trainer, pl_module)
                self.train_progress_bar.set_description("train")

        callbacks.append(_Bar(refresh_rate=1))
    loggers = [CSVLogger(run_dir / "logs", name="csv", flush_logs_every_n_steps=1),
               TensorBoardLogger(run_dir / "logs", name="tensorboard", version="", default_hp_metric=False)]
    trainer = L.Trainer(
        accelerator=acc, devices=devices, strategy=strategy, precision=precision,
        max_steps=tcfg.steps, max_epochs=-1, logger=loggers, callbacks=callbacks,
        log_every_n_steps=tcfg.log_every, enable_progress_bar=tcfg.progress_bar, enable_checkpointing=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, use_distributed_sampler=False,
        default_root_dir=str(run_dir))
    ckpt_path = runs.latest_checkpoint(run_dir) if resuming else None
    if main and ckpt_path is not None:
        echo(f"resuming from {ckpt_path}")
    sigint = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path else None, weights_only=True)
    except SystemExit:  # Lightning exits this way after handling a KeyboardInterrupt
        if main:
            _safe_plot(plot_loss, run_dir)
        raise TrainingInterrupted(run_dir, ckpt_cb.last_path) from None
    finally:  # Lightning ignores SIGINT after an interrupt; give the caller its handler back
        if sigint is not None:
            signal.signal(signal.SIGINT, sigint)
    if main:
        _safe_plot(plot_loss, run_dir)
        vals = module.val_losses
        echo(f"done: {trainer.global_step} steps"
             + (f"; validation loss {vals[0]:.3f} -> {vals[-1]:.3f}" if len(vals) > 1 else "")
             + f"; model in {run_dir / 'model'}; loss curve {run_dir / 'loss.png'}"
             + (f"; {module.nan_skipped} step(s) skipped for non-finite loss" if module.nan_skipped else ""))
    return run_dir


def _safe_plot(plot, run_dir: Path) -> None:
    try:
        plot(run_dir)
    except Exception as err:  # a plot must never lose a finished run
        print(f"notice: could not draw {run_dir / 'loss.png'}: {err}", file=sys.stderr)


def train_from_cli(recipe: Optional[str], overrides: List[str], resume_dir: Optional[str],
                   echo: Callable[[str], None] = print) -> Path:
    """The body of ``zoo train``: errors of the user's making are ZooError (one line, exit 2)."""
    cfg, run_dir, resuming = resolve_run(recipe, overrides, resume_dir)
    return train(cfg, run_dir, resuming, echo=echo)
