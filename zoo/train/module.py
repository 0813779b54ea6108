"""``ZooLightningModule``: the training step around a ``ZooModel``.

Manual optimisation, so one ``training_step`` is one optimizer step over the device's whole
share of the global batch: the data module hands it a list of micro batches (each the
contract batch: ``input_ids`` / ``labels`` [b, T], optional ``cu_seqlens``) and the global count of
target tokens. Each micro batch contributes ``sum(CE) * world / n_tokens_global`` to the gradient, so
after DDP's gradient averaging the update is the token-mean loss of the global batch — the same
maths on one device or many, with or without accumulation.

Per step: loss → clip (global norm) → AdamW → LR schedule, with no host synchronisation (a GPU
step is then never stalled waiting for the host, nor the host for the GPU). A non-finite loss or
grad norm is caught on the device: the fused AdamW's ``found_inf`` drops that step's update (weights
and moments untouched; the step still counts and the schedule moves on). The host reads the flag
from a pinned copy once the GPU has produced it (at the latest at the next log step, checkpoint or
the end; reading the device tensor instead would wait for every step queued since) and then
counts the skip (``train.nan_policy=skip``, capped by ``max_nan_skips``) or stops the run with
``NonFiniteLossError`` (``stop``). Every rank sees the same flag: the loss and gradients it is
computed from are already reduced over ranks.

Validation runs at step 0, every ``val_every`` steps and at the last step on fixed held-out
batches; it logs ``val/loss``, ``val/ppl`` = exp(loss) and ``val/acc`` (argmax accuracy on the
targets; for MQAR the recall accuracy), token means over all ranks.

``objective="autoencode"`` (MAD compression) adds ``self.head``, a ``CompressionDecoder`` that
rebuilds the sequence from the model's output at its last position (``zoo.train.heads``); it is
trained, clipped, checkpointed and restored with the model.

``train.strategy=fsdp`` is FSDP2 through Lightning's ``ModelParallelStrategy``: ``configure_model``
shards each ``Block`` and then the model with ``fully_shard``, whose per-module hooks gather the
weights around each forward and reduce-scatter the gradients in backward, so ``manual_backward``
works inside ``training_step`` as it does under DDP. Parameters and gradients are then DTensor shards.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from typing import Any, Dict, List, Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from zoo.config import ModelConfig
from zoo.errors import ZooError
from zoo.train.checkpoint import load_rng_state, rng_state
from zoo.train.config import TrainConfig
from zoo.train.heads import build_head, task_logits


class NonFiniteLossError(ZooError):
    """Training produced NaN/inf and the policy says stop (or too many steps were skipped)."""


def decay_names(model: nn.Module) -> set:
    """Names of the parameters AdamW decays: matrices of linear layers; not norms, biases or embeddings.

    Decided on the plain model, before FSDP shards it (``fully_shard`` keeps the parameter names).
    """
    no_decay: set = set()
    for module in model.modules():
        if isinstance(module, nn.Embedding) or "norm" in type(module).__name__.lower():
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    return {name for name, p in model.named_parameters() if p.ndim >= 2 and id(p) not in no_decay}


def _clean(name: str) -> str:
    for wrapper in ("_checkpoint_wrapped_module.", "_orig_mod."):
        name = name.replace(wrapper, "")
    return name


def param_groups(model: nn.Module, weight_decay: float, decay: Optional[set] = None) -> List[Dict[str, Any]]:
    """AdamW groups: ``decay`` names (default ``decay_names(model)``) get ``weight_decay``, the rest none.

    Shared (tied) parameters appear once; an embedding tied to the LM head gets no decay.
    """
    decay = decay_names(model) if decay is None else decay
    with_decay, plain, seen = [], [], set()
    for name, p in model.named_parameters():
        if id(p) in seen or not p.requires_grad:
            continue
        seen.add(id(p))
        (with_decay if _clean(name) in decay else plain).append(p)
    return [{"params": with_decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def ids_in_module_order(state: Dict[str, Any], optimizer: torch.optim.Optimizer, module: nn.Module) -> Dict[str, Any]:
    """``optimizer.state_dict()`` (``state``) re-keyed so a parameter's id is its index in ``module.parameters()``
    rather than its place in the groups (decay group first).

    FSDP's consolidated checkpoints key it so and its loader reads ids that way; a plain ``load_state_dict``
    maps ids by their place in the saved groups, so this keying resumes correctly under either strategy.
    """
    index = {id(p): i for i, p in enumerate(module.parameters())}
    live = [p for group in optimizer.param_groups for p in group["params"]]
    new = {old: index[id(p)] for old, p in zip((i for g in state["param_groups"] for i in g["params"]), live)}
    return {"state": {new[i]: v for i, v in state["state"].items()},
            "param_groups": [dict(g, params=[new[i] for i in g["params"]]) for g in state["param_groups"]]}


def lr_lambda(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to 1 over ``warmup`` steps, then cosine down to ``min_ratio`` at ``total``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def token_ce_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy over labels != -100. logits [B, T, V] float, labels [B, T] → scalar."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum")


class ZooLightningModule(L.LightningModule):
    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig, model: Optional[nn.Module] = None,
                 objective: str = "lm"):
        super().__init__()
        from zoo.model import ZooModel

        self.automatic_optimization = False
        self.train_cfg = train_cfg
        self.model = model if model is not None else ZooModel(model_cfg)
        self.head = build_head(objective, model_cfg.d_model, model_cfg.vocab_size, model_cfg.norm_eps,
                               model_cfg.init_std)
        self._decay = decay_names(self)  # before any FSDP sharding
        self.nan_skipped = 0
        self._pending: List[tuple] = []  # (step, host non-finite flag, CUDA event or None), oldest first
        self.val_losses: List[float] = []  # every validation of this process, in order
        self.tokens_seen = 0
        self._t_last: Optional[float] = None
        self._val_done_at: Optional[int] = None

    # ---- sharding -----------------------------------------------------------------------
    def _sharded(self) -> bool:
        from lightning.pytorch.strategies import ModelParallelStrategy

        return self._trainer is not None and isinstance(self.trainer.strategy, ModelParallelStrategy)

    def configure_model(self) -> None:
        """Under ``train.strategy=fsdp``: FSDP2 over the data-parallel mesh, each ``Block`` then the model
        (the root gathers the embeddings, final norm and LM head). Other strategies leave the model as it is."""
        if not self._sharded():
            return
        from torch.distributed.fsdp import FSDPModule, fully_shard

        from zoo.model import Block

        if isinstance(self.model, FSDPModule):  # Lightning calls this hook again on a later fit/validate
            return
        # ZooModel returns its logits as a view; they are only read (CE, argmax), never changed in place
        warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")
        mesh = self.device_mesh["data_parallel"]
        for module in self.model.modules():
            if isinstance(module, Block):
                fully_shard(module, mesh=mesh)
        fully_shard(self.model, mesh=mesh)

    # ---- optimisation -------------------------------------------------------------------
    def configure_optimizers(self):
        cfg = self.train_cfg
        # fused on every device and under FSDP2 too (it takes DTensor parameters): its found_inf drops a
        # non-finite step on the device (no host sync)
        opt = torch.optim.AdamW(param_groups(self, cfg.weight_decay, self._decay), lr=cfg.lr, betas=tuple(cfg.betas),
                                eps=cfg.eps, fused=True)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: lr_lambda(s, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def compute_ce_sum(self, micro: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed token cross-entropy of one micro batch (the seam tests use to inject faults)."""
        return token_ce_sum(self.logits(micro), micro["labels"])

    def logits(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, T, V] float32 scored against ``batch["labels"]``: the LM head's, or the task head's."""
        return task_logits(self.model, self.head, batch["input_ids"], batch.get("cu_seqlens"))

    def _no_sync(self, last: bool):
        """DDP: no gradient all-reduce before the last micro batch. FSDP2 (no ``no_sync``) reduce-scatters
        every micro batch into the sharded gradients: skipping it would hold full unsharded gradients."""
        model = self.trainer.model if self._trainer is not None else None
        if not last and model is not None and hasattr(model, "no_sync") and self.trainer.world_size > 1:
            return model.no_sync()
        return contextlib.nullcontext()

    def _clip(self) -> torch.Tensor:
        """Clip to the global gradient norm; returns that norm as a plain tensor. Under FSDP2 the gradients
        are DTensor shards: ``clip_grad_norm_`` reduces the norm over them and returns a replicated DTensor."""
        from torch.distributed.tensor import DTensor

        norm = torch.nn.utils.clip_grad_norm_(self.parameters(), self.train_cfg.grad_clip or float("inf"))
        return norm.full_tensor() if isinstance(norm, DTensor) else norm

    def training_step(self, batch: Dict[str, Any], batch_idx: int):
        if self._val_done_at is None and self.global_step == 0:
            self.run_validation()
        opt, sched = self.optimizers(), self.lr_schedulers()
        micro: List[Dict[str, torch.Tensor]] = batch["micro"]
        world = self.trainer.world_size
        if world > 1:  # the global target-token count stays on the device
            n_tokens = torch.tensor(float(batch["n_tokens"]), device=self.device)
            n_tokens = self.trainer.strategy.reduce(n_tokens, reduce_op="sum").clamp_min(1.0)
        else:
            n_tokens = max(1.0, float(batch["n_tokens"]))
        ce_total = torch.zeros((), device=self.device, dtype=torch.float32)
        for i, mb in enumerate(micro):
            with self._no_sync(last=i == len(micro) - 1):
                ce = self.compute_ce_sum(mb)
                self.manual_backward(ce * (world / n_tokens))
            ce_total += ce.detach().float()
        loss = self.trainer.strategy.reduce(ce_total, reduce_op="sum") / n_tokens if world > 1 else ce_total / n_tokens
        grad_norm = self._clip()
        bad = ~(torch.isfinite(loss) & torch.isfinite(grad_norm))
        step_tokens = sum(int(mb["input_ids"].numel()) for mb in micro) * world
        dm = self.trainer.datamodule
        if dm is not None and "data_index" in batch:
            dm.mark_consumed(batch["data_index"])  # the step is complete: a resume draws the next batch
        lr = sched.get_last_lr()[0]  # the rate this update uses
        opt.optimizer.found_inf = bad.float()  # fused AdamW: no update at all where this is 1
        opt.step()
        opt.optimizer.found_inf = None
        opt.zero_grad(set_to_none=True)
        sched.step()
        self.tokens_seen += step_tokens
        event = None
        if bad.is_cuda:  # the flag travels to pinned host memory behind the step; the event says when it landed
            flag = torch.empty((), dtype=torch.bool, pin_memory=True)
            flag.copy_(bad, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        else:
            flag = bad
        self._pending.append((self.global_step, flag, event))
        now = time.perf_counter()
        tok_s = step_tokens / max(now - self._t_last, 1e-9) if self._t_last is not None else None
        self._t_last = now
        log_step = self.global_step % self.train_cfg.log_every == 0 or self.global_step >= self.trainer.max_steps
        self._settle_flags(wait=log_step)  # a log step reads the loss anyway: it waits for the flags too
        if log_step and not bool(bad):  # a skipped step logs its count (in _settle_flags), not its loss
            metrics = {"train/loss": loss.item(), "train/grad_norm": grad_norm.item(), "train/lr": lr,
                       "train/tokens": float(self.tokens_seen)}
            if tok_s is not None:
                metrics["train/tokens_per_s"] = tok_s
            self._log_now(metrics)
            self.log("loss", metrics["train/loss"], prog_bar=True, logger=False)  # the bar: at log steps
            if tok_s is not None:
                self.log("tok/s", tok_s, prog_bar=True, logger=False)
        return loss

    def _settle_flags(self, wait: bool) -> None:
        """Count (or stop on) the non-finite steps whose flags the device has produced; with ``wait``,
        all of them. Oldest first, so the counts and the error name the right step."""
        cfg = self.train_cfg
        while self._pending:
            step, flag, event = self._pending[0]
            if event is not None:
                if not wait and not event.query():
                    return
                event.synchronize()  # waits for this step only, never for the work queued after it
            self._pending.pop(0)
            if not bool(flag):  # a host tensor: reading it does not synchronise the device
                continue
            self.nan_skipped += 1
            if cfg.nan_policy == "stop":
                raise NonFiniteLossError(
                    f"non-finite training loss at step {step} (its update was not applied); stopping because "
                    "train.nan_policy=stop. Lower train.lr, raise train.warmup_steps, or set train.nan_policy=skip")
            if self.nan_skipped > cfg.max_nan_skips:
                raise NonFiniteLossError(
                    f"{self.nan_skipped} steps had a non-finite loss (last: step {step}); more than "
                    f"train.max_nan_skips={cfg.max_nan_skips}. The run has diverged: lower train.lr")
            self._log_now({"train/nan_skipped": float(self.nan_skipped)}, step=step)

    def on_train_end(self) -> None:
        self._settle_flags(wait=True)

    def _log_now(self, metrics: Dict[str, float], step: Optional[int] = None) -> None:
        """Write a row to every logger at once, keyed by optimizer step (survives an interrupt)."""
        if self._trainer is not None and self.trainer.is_global_zero:
            for logger in self.loggers:
                logger.log_metrics(metrics, step=self.global_step if step is None else step)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        step = self.global_step
        if step > 0 and self._val_done_at != step and (step % self.train_cfg.val_every == 0 or step >= self.trainer.max_steps):
            self.run_validation()

    # ---- validation ---------------------------------------------------------------------
    @torch.no_grad()
    def run_validation(self) -> Optional[float]:
        """Token-mean CE (and argmax accuracy on the targets: MQAR's recall metric) over this rank's share
        of the held-out batches, reduced over ranks. Logs val/loss, val/ppl = exp(loss), val/acc."""
        dm = self.trainer.datamodule
        # FSDP2's forwards are collective: every rank must run as many as the busiest one
        sharded = self._sharded() and self.trainer.world_size > 1
        batches = dm.val_batches_for_rank(pad=sharded) if dm is not None else []
        t0 = time.perf_counter()
        was_training = self.model.training
        self.model.eval()
        # [CE sum, target tokens, correct argmax predictions]
        sums = torch.zeros(3, device=self.device, dtype=torch.float64)
        for b in batches:
            b = self.trainer.strategy.batch_to_device(b)
            with self.trainer.precision_plugin.forward_context():
                logits = self.logits(b)
                sums[0] += token_ce_sum(logits, b["labels"]).double()
            mask = b["labels"] != -100
            sums[1] += mask.sum()
            sums[2] += (logits.argmax(-1) == b["labels"])[mask].sum()
        self.model.train(was_training)
        if self.trainer.world_size > 1:
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        ce, count, correct = sums
        self._val_done_at = self.global_step
        if self._t_last is not None:  # validation time is not training time
            self._t_last += time.perf_counter() - t0
        if count.item() == 0:
            return None
        val = (ce / count).item()
        self.val_losses.append(val)
        self._log_now({"val/loss": val, "val/ppl": math.exp(min(val, 50.0)), "val/acc": (correct / count).item()})
        self.log("val", val, prog_bar=True, logger=False)
        return val

    # ---- checkpoint extras --------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        self._settle_flags(wait=True)
        if not self._sharded() and "optimizer_states" in checkpoint:  # FSDP's own are keyed so already
            checkpoint["optimizer_states"] = [ids_in_module_order(state, opt, self) for state, opt in
                                              zip(checkpoint["optimizer_states"], self.trainer.optimizers)]
        checkpoint["zoo"] = {"rng": rng_state(), "nan_skipped": self.nan_skipped, "tokens_seen": self.tokens_seen,
                             "val_done_at": self._val_done_at}

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        extra = checkpoint.get("zoo", {})
        self.nan_skipped = extra.get("nan_skipped", 0)
        self.tokens_seen = extra.get("tokens_seen", 0)
        self._val_done_at = extra.get("val_done_at")
        if "rng" in extra:
            load_rng_state(extra["rng"])
