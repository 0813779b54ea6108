"""Training throughput at the paper's 340M size on one GPU: zoo DeltaNet, hybrid SWA, Transformer++
and fla's DeltaNet model, side by side in one process.

One training step = forward in bf16 autocast over fp32 master weights (what Lightning's
``bf16-mixed`` does), token cross-entropy, backward, fused AdamW step, zero_grad — the work of
``zoo train``'s step without the data loader. Models come from the recipes in recipes/paper/
(vocab 32000, untied, d_model 1024, 24 layers); fla's DeltaNet is configured to the same sizes
(``zoo.interop.fla.zoo_to_fla_config``) and uses its own defaults (fused norm, SwiGLU and
cross-entropy). Shapes: 8×2048 and 4×4096 tokens per step. Reported: tokens/s over ``--steps`` timed
steps after ``--warmup`` (which absorbs Triton autotuning and torch.compile), and the peak of
``torch.cuda.max_memory_allocated``. Extra rows: zoo DeltaNet on packed documents (cu_seqlens, random
boundaries), Transformer++ on SDPA, zoo DeltaNet through ``zoo.train``'s LightningModule and
Trainer, and the raw step run by a bare LightningModule in the same Trainer (the two split the
Lightning path's overhead between the Trainer and zoo.train's step).

Time: ``--budget S`` counts from the start of the process. A row starts only while the budget left
covers its estimate (the same model's previous row, else ``--row-estimate``; fla's 4×4096 row always
the latter, since its first row's time is mostly autotuning); skipped rows are noted.
OUT/train.json and train.md are rewritten after every row, and SIGTERM (``timeout``) stops the run
with both written and the table printed. The device is the default CUDA device (CUDA_VISIBLE_DEVICES).

    python bench/train.py --out bench/results          # GPU; writes train.json + train.md
    python bench/train.py --smoke                      # CPU: tiny models, checks the script runs
    python bench/train.py --ddp --out bench/results    # 2 GPUs: zoo train on 1 vs 2 GPUs (DDP) + a 1-GPU rounding control
    python bench/train.py --ddp --fsdp --out DIR       # the same, then a 2-GPU FSDP run against the same curves
    python bench/train.py --ddp --smoke --ddp-steps 6  # the same on CPU (gloo), tiny model

``--ddp`` needs exactly two visible GPUs (CUDA_VISIBLE_DEVICES=0,1) and runs ``zoo train`` through
bench/gpu/zoo_cli.py, which works without an install of the project.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

from _repo import import_zoo
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
GiB = 2 ** 30
START = time.time()  # budgets count from here
RAW_IN_TRAINER = "zoo DeltaNet raw step in Lightning's Trainer"


class Stopped(BaseException):
    """SIGTERM arrived (the device command's time limit): stop measuring, write what was measured."""


def stop_on_sigterm() -> None:
    def handler(signum, frame):
        raise Stopped(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)


def import_zoo_training():
    """zoo (installed or from this checkout) with the modules the benchmark uses loaded up front."""
    import_zoo()
    import zoo.config  # noqa: F401  (omegaconf: carried as a wheel on the GPU box)
    import zoo.interop.fla  # noqa: F401
    import zoo.model  # noqa: F401
    import zoo.train.module  # noqa: F401


def recipe_model(name: str, smoke: bool, overrides: Optional[List[str]] = None):
    from zoo.config import load_recipe

    over = list(overrides or [])
    if smoke:
        over += ["model.d_model=64", "model.n_heads=2", "model.vocab_size=256", "model.mlp_hidden=128"]
    cfg = load_recipe(ROOT / "recipes" / "paper" / f"{name}_340m.yaml", over).model
    if smoke:
        cfg.pattern = {"deltanet": "delta*2", "hybrid_swa": "delta swa[window=16]", "transformer": "attn*2"}[name]
    return cfg


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_cu(B: int, T: int, gen: torch.Generator, mean_doc: int = 512) -> torch.Tensor:
    """Document boundaries over B*T tokens: every row start plus random cuts (mean length ``mean_doc``)."""
    cuts = set(range(0, B * T + 1, T))
    n = max(1, B * T // mean_doc)
    cuts.update(torch.randint(1, B * T, (n,), generator=gen).tolist())
    return torch.tensor(sorted(cuts), dtype=torch.int32)


def start_profiler(device):
    """A running torch.profiler over the CPU (and CUDA on a GPU); ``save_profile`` stops it."""
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else []))
    prof.__enter__()
    return prof


def save_profile(prof, device, path: Path, steps: int, sort_by: str) -> None:
    """Stops ``prof`` and writes its per-op table (top 70 by ``sort_by``) for ``steps`` steps to ``path``."""
    sync(device)
    prof.__exit__(None, None, None)
    path.write_text(f"{steps} steps\n" + prof.key_averages().table(sort_by=sort_by, row_limit=70,
                                                                    max_name_column_width=70))


def profile_steps(step: Callable[[], None], device, path: Path, steps: int = 2) -> None:
    """Per-op CUDA time of ``steps`` training steps (torch.profiler), written to ``path``."""
    prof = start_profiler(device)
    for _ in range(steps):
        step()
    save_profile(prof, device, path, steps, "cuda_time_total")


def measure(step: Callable[[], None], device, warmup: int, steps: int) -> Dict[str, float]:
    for _ in range(warmup):
        step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step()  # one more, inside the peak-memory window
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / GiB if device.type == "cuda" else float("nan")
    return {"seconds_per_step": dt / steps, "peak_gib": peak}


def zoo_step(model, opt, B: int, T: int, V: int, device, cu: Optional[torch.Tensor] = None):
    gen = torch.Generator(device="cpu").manual_seed(0)
    ids = torch.randint(0, V, (B, T + 1), generator=gen).to(device)
    x, y = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()
    cu = cu.to(device) if cu is not None else None
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step():
        with amp:
            logits = model(x, cu_seqlens=cu)
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def fla_step(model, opt, B: int, T: int, V: int, device):
    gen = torch.Generator(device="cpu").manual_seed(0)
    ids = torch.randint(0, V, (B, T), generator=gen).to(device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def adamw(model, device):
    from zoo.train.module import param_groups

    return torch.optim.AdamW(param_groups(model, 0.1), lr=3e-4, betas=(0.9, 0.95),
                             **({"fused": True} if device.type == "cuda" else {}))


def lightning_measure(cfg, B: int, T: int, device, warmup: int, steps: int,
                      profile: Optional[Path] = None, raw_step: bool = False) -> Dict[str, float]:
    """zoo DeltaNet through zoo.train's LightningModule + Trainer (bf16-mixed), timed by a callback;
    with ``profile``, two more steps after the timed ones run under torch.profiler (CPU and CUDA
    time per op, sorted by CPU time, written there). ``raw_step``: the Trainer runs a bare
    LightningModule whose training_step is ``zoo_step``'s (no clip, schedule, non-finite check or
    manual_backward), which separates what the Trainer costs from what zoo.train's step adds."""
    import lightning as L
    from torch.utils.data import DataLoader, IterableDataset

    from zoo.train.config import TrainConfig
    from zoo.train.module import ZooLightningModule

    class RawStep(L.LightningModule):
        """zoo_step's forward, loss and backward; the update through the Trainer's optimizer (which
        counts the steps)."""

        def __init__(self):
            super().__init__()
            from zoo.model import ZooModel

            self.automatic_optimization = False
            self.model = ZooModel(cfg)

        def training_step(self, batch, batch_idx):
            mb = batch["micro"][0]
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                logits = self.model(mb["input_ids"])
                loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), mb["labels"].view(-1))
            loss.backward()
            opt = self.optimizers()
            opt.step()
            opt.zero_grad(set_to_none=True)

        def configure_optimizers(self):
            return adamw(self.model, self.device)

    V = cfg.vocab_size
    gen = torch.Generator(device="cpu").manual_seed(0)
    ids = torch.randint(0, V, (B, T + 1), generator=gen)
    item = {"micro": [{"input_ids": ids[:, :-1].contiguous(), "labels": ids[:, 1:].contiguous()}],
            "n_tokens": B * T, "data_index": 0}

    class Repeat(IterableDataset):
        def __iter__(self):
            while True:
                yield item

    class Timer(L.Callback):
        def __init__(self):
            self.t0 = self.t1 = None

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == warmup:
                sync(device)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                self.t0 = time.perf_counter()
            elif trainer.global_step == warmup + steps:
                sync(device)
                self.t1 = time.perf_counter()
                if profile is not None:
                    self.prof = start_profiler(device)
            elif profile is not None and trainer.global_step == warmup + steps + 2:
                save_profile(self.prof, device, profile, 2, "cpu_time_total")

    total = warmup + steps + (2 if profile is not None else 0)
    tcfg = TrainConfig(steps=total, batch_size=B, lr=3e-4, warmup_steps=1, val_every=10 ** 6,
                       ckpt_every=0, log_every=10 ** 6, progress_bar=False)
    module = RawStep() if raw_step else ZooLightningModule(cfg, tcfg)
    timer = Timer()
    trainer = L.Trainer(accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
                        precision="bf16-mixed" if device.type == "cuda" else "32-true", max_steps=total,
                        logger=False, callbacks=[timer], enable_progress_bar=False, enable_checkpointing=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, train_dataloaders=DataLoader(Repeat(), batch_size=None, pin_memory=device.type == "cuda"))
    peak = torch.cuda.max_memory_allocated(device) / GiB if device.type == "cuda" else float("nan")
    result = {"seconds_per_step": (timer.t1 - timer.t0) / steps, "peak_gib": peak}
    del trainer, module
    return result


def free(device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def version(pkg: str) -> Optional[str]:
    import importlib.metadata as md

    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return None


def run(args) -> Dict[str, Any]:
    import_zoo_training()
    from zoo.model import ZooModel

    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    shapes = [(8, 2048), (4, 4096)] if not args.smoke else [(2, 64), (1, 128)]
    warmup, steps = (args.warmup, args.steps) if not args.smoke else (1, 2)
    deadline = START + args.budget
    rows: List[Dict[str, Any]] = []
    notes: List[str] = []
    seconds: Dict[str, float] = {}  # wall time of each model's last row: the estimate for its next one
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "command": "python bench/train.py" + (" --smoke" if args.smoke else f" --budget {args.budget:g}")
                   + (f" --rows '{args.rows}'" if args.rows else ""),
        "torch": torch.__version__, "triton": version("triton"), "fla": version("flash-linear-attention"),
        "warmup_steps": warmup, "timed_steps": steps, "precision": "bf16 autocast, fp32 master weights, fused AdamW",
        "complete": False, "rows": rows, "notes": notes,
    }

    def save():
        (out / "train.json").write_text(json.dumps(result, indent=1))
        (out / "train.md").write_text(render(result))

    def measured(name: str, B: int, T: int, fn: Callable[[], Dict[str, Any]], estimate: Optional[float] = None) -> None:
        """Run one row unless the budget left is below its estimate (``estimate``, else the same model's
        previous row, else --row-estimate); record it or its failure."""
        if args.rows and name not in args.rows.split(","):
            return
        left = deadline - time.time()
        est = estimate if estimate is not None else seconds.get(name, args.row_estimate)
        if left < est:
            notes.append(f"{name} {B}x{T}: skipped, {max(left, 0):.0f}s of the {args.budget:g}s budget left, "
                         f"estimate {est:.0f}s")
            print("SKIPPED", notes[-1], flush=True)
            return
        t0 = time.time()
        try:
            row = fn()
            rows.append(row)
            print(json.dumps(row), flush=True)
        except Exception as err:  # one model failing must not lose the others' numbers
            msg = f"{name} {B}x{T}: {type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"
            notes.append(msg)
            print("FAILED", msg, flush=True)
        finally:
            free(device)
            seconds[name] = time.time() - t0
            save()

    def attempt(name: str, B: int, T: int, build: Callable[[], tuple], extra: Optional[dict] = None,
                profile: bool = False, estimate: Optional[float] = None):
        def fn():
            torch.manual_seed(0)
            model, step_fn, params = build()
            r = measure(step_fn, device, warmup, steps)
            if profile and device.type == "cuda":  # after timing, so it never enters the numbers
                slug = name.lower().replace(" ", "_")
                try:
                    profile_steps(step_fn, device, out / f"profile_{slug}_{B}x{T}.txt")
                except Exception as err:  # the row's numbers stand without it
                    notes.append(f"{name} {B}x{T}: profile failed: {type(err).__name__}: {str(err)[:200]}")
            return {"model": name, "B": B, "T": T, "params": params, **(extra or {}),
                    "tokens_per_s": B * T / r["seconds_per_step"], **r}
        measured(name, B, T, fn, estimate)

    def zoo_build(name, B, T, overrides=None, packed=False):
        def build():
            cfg = recipe_model(name, args.smoke, overrides)
            cfg.max_seq_len = max(cfg.max_seq_len, T)
            with torch.device(device):
                model = ZooModel(cfg)
            cu = random_cu(B, T, torch.Generator().manual_seed(1)) if packed else None
            return model, zoo_step(model, adamw(model, device), B, T, cfg.vocab_size, device, cu), model.num_params()
        return build

    def fla_build(B, T):
        def build():
            from fla.models import DeltaNetConfig, DeltaNetForCausalLM

            from zoo.interop.fla import zoo_to_fla_config

            cfg = recipe_model("deltanet", args.smoke)
            cfg.max_seq_len = max(cfg.max_seq_len, T)
            fcfg = zoo_to_fla_config(cfg)
            fcfg.pop("architectures", None)
            with torch.device(device):
                model = DeltaNetForCausalLM(DeltaNetConfig(**fcfg))
            params = sum(p.numel() for p in model.parameters())
            return model, fla_step(model, adamw(model, device), B, T, cfg.vocab_size, device), params
        return build

    def lightning_row(name, B, T, raw_step=False):
        def fn():
            slug = "lightning_raw" if raw_step else "lightning"
            r = lightning_measure(recipe_model("deltanet", args.smoke), B, T, device, warmup, steps,
                                  profile=out / f"profile_{slug}_{B}x{T}.txt" if device.type == "cuda" else None,
                                  raw_step=raw_step)
            return {"model": name, "B": B, "T": T, "params": None, "tokens_per_s": B * T / r["seconds_per_step"], **r}
        return fn

    fla_ok = True
    try:
        import fla  # noqa: F401
    except Exception as err:
        fla_ok = False
        notes.append(f"fla not importable ({type(err).__name__}: {err}); its rows are missing")
    save()
    try:
        # in priority order, in case the time budget runs out: the target pair at both shapes
        # (the first profiled: per-op CUDA times in OUT/profile_*.txt), then zoo's other models. fla's
        # second shape is tried whenever --row-estimate fits: its first row's time is mostly autotuning,
        # which a new T may or may not repeat, and a row cut by the deadline loses only itself
        (B, T), (B2, T2) = shapes
        attempt("zoo DeltaNet", B, T, zoo_build("deltanet", B, T), profile=True)
        if fla_ok and device.type == "cuda":
            attempt("fla DeltaNet", B, T, fla_build(B, T), profile=True)
        attempt("zoo DeltaNet", B2, T2, zoo_build("deltanet", B2, T2))
        if fla_ok and device.type == "cuda":
            attempt("fla DeltaNet", B2, T2, fla_build(B2, T2), estimate=args.row_estimate)
        for Bi, Ti in shapes:
            attempt("zoo hybrid SWA", Bi, Ti, zoo_build("hybrid_swa", Bi, Ti), {"attention": "auto"})
            attempt("zoo Transformer++", Bi, Ti, zoo_build("transformer", Bi, Ti), {"attention": "auto"})
        for Bi, Ti in shapes:
            attempt("zoo Transformer++ (sdpa)", Bi, Ti,
                    zoo_build("transformer", Bi, Ti, ["model.attention.backend=sdpa"]), {"attention": "sdpa"})
        attempt("zoo DeltaNet packed docs", B, T, zoo_build("deltanet", B, T, packed=True),
                {"cu_seqlens": "random, mean 512"})
        for name, raw in (("zoo DeltaNet via zoo.train (Lightning)", False), (RAW_IN_TRAINER, True)):
            measured(name, B, T, lightning_row(name, B, T, raw))
        result["complete"] = True
    except Stopped as why:
        notes.append(f"stopped by {why} after {time.time() - START:.0f}s (time limit); the row in flight is lost")
    result["seconds"] = round(time.time() - START, 1)
    save()
    print(render(result))
    return result


def render(result: Dict[str, Any]) -> str:
    lines = [f"# Training throughput, 340M models ({result['device']})", "",
             f"{result['date_utc']} UTC · `{result['command']}` · torch {result['torch']}, triton {result['triton']}, "
             f"fla {result['fla']} · {result['precision']} · {result['warmup_steps']} warm-up + "
             f"{result['timed_steps']} timed steps", "",
             "| model | B×T | params | tokens/s | vs fla DeltaNet | peak GiB |", "|---|---|---|---|---|---|"]
    if not result.get("complete", True):
        lines.insert(4, "**Partial**: the run had not finished when this was written (see the notes).\n")
    fla = {(r["B"], r["T"]): r["tokens_per_s"] for r in result["rows"] if r["model"] == "fla DeltaNet"}
    for r in result["rows"]:
        base = fla.get((r["B"], r["T"]))
        ratio = f"{r['tokens_per_s'] / base:.2f}×" if base else "–"
        params = f"{r['params'] / 1e6:.0f}M" if r.get("params") else "–"
        lines.append(f"| {r['model']} | {r['B']}×{r['T']} | {params} | {r['tokens_per_s'] / 1e3:.1f}k | {ratio} | "
                     f"{r['peak_gib']:.1f} |")
    if result["notes"]:
        lines += ["", "Notes:"] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


ONE, TWO, CONTROL, FSDP = "1 GPU", "2 GPUs DDP", "1 GPU, micro batch 8", "2 GPUs FSDP"
DIVERGED = 0.01  # a per-step loss difference above this counts as the runs having drifted apart
DDP_OVERRIDES = [  # a 340M DeltaNet on the embedded corpus, 16 x 2048 tokens per step
    "data.type=embedded", "data.name=pydoc", "data.seq_len=2048", "data.tokenizer.type=bpe", "data.tokenizer.vocab_size=32000",
    "train.batch_size=16", "train.micro_batch_size=4", "train.lr=3e-4", "train.warmup_steps=5",
    "train.val_every=10", "train.val_batches=1", "train.ckpt_every=0", "train.log_every=1",
    "train.progress_bar=false", "train.accelerator=gpu",
]


def ddp_check(args) -> Dict[str, Any]:
    """``zoo train`` on 1 GPU, then on 2 GPUs (DDP) with the same global batch: per-step losses and tokens/s;
    then the rounding control (``CONTROL``), the noise floor the DDP difference is judged against.

    Each run is the real command (``zoo train`` through bench/gpu/zoo_cli.py), so the 2-GPU run goes
    through Lightning's launcher, the per-rank data slices and the gradient all-reduce. Each run gets
    at most the budget left (the first at most ``--ddp-share`` of it); OUT/train.ddp.json and .md are
    rewritten after each run.
    """
    import statistics
    import subprocess

    from zoo.train.plotting import read_metrics

    if not args.smoke and torch.cuda.device_count() != 2:
        sys.exit(f"bench/train.py --ddp needs exactly 2 visible GPUs, found {torch.cuda.device_count()} "
                 f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
                 "run it with CUDA_VISIBLE_DEVICES=0,1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs_root = Path(args.runs_root)
    recipe = str(ROOT / "recipes" / "paper" / "deltanet_340m.yaml")
    common = DDP_OVERRIDES + [f"train.steps={args.ddp_steps}"]
    if args.smoke:  # CPU over gloo, a tiny model: checks this script end to end
        common = [o for o in common if not o.startswith(("train.accelerator", "data.seq_len", "data.tokenizer.vocab"))]
        common += ["train.accelerator=cpu", "data.seq_len=64", "data.tokenizer.vocab_size=512", "model.d_model=64",
                   "model.n_heads=2", "model.vocab_size=512", "model.pattern=delta*2", "model.mlp_hidden=128"]
    setups = {ONE: ["train.devices=1", "train.strategy=auto", "name=gpu1"],
              TWO: ["train.devices=2", "train.strategy=ddp", "name=gpu2"],
              CONTROL: ["train.devices=1", "train.strategy=auto", "train.micro_batch_size=8", "name=gpu1_mb8"]}
    if args.fsdp:  # after the control: FSDP is judged against the same noise floor
        setups[FSDP] = ["train.devices=2", "train.strategy=fsdp", "name=gpu2_fsdp"]
    deadline = START + args.budget
    result: Dict[str, Any] = {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                              "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                              "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 2,
                              "command": f"zoo train {Path(recipe).relative_to(ROOT)} " + " ".join(common),
                              "budget_s": args.budget, "runs": {}}

    def save():
        (out / "train.ddp.json").write_text(json.dumps(result, indent=1))
        (out / "train.ddp.md").write_text(render_ddp(result))

    keys = ("train/loss", "val/loss", "train/tokens_per_s")
    if args.reuse:  # finished runs of an earlier invocation (same command: the runs are deterministic)
        earlier = json.loads(Path(args.reuse).read_text())
        for label, run in earlier.get("runs", {}).items():
            if label in setups and run.get("returncode") == 0:
                result["runs"][label] = dict(run, note=f"from {args.reuse} ({earlier.get('date_utc')}, "
                                                       f"{earlier.get('device')})")
    save()
    try:
        for i, (label, extra) in enumerate(setups.items()):
            if label in result["runs"]:
                continue
            name = extra[-1][5:]
            left = deadline - time.time()
            limit = left * (args.ddp_share if i == 0 else 1.0)
            if limit < 30:
                result["runs"][label] = {"returncode": None, "wall_s": 0.0, "train_loss": [], "val_loss": [],
                                         "tokens_per_s_median": None, "note": f"skipped: {max(left, 0):.0f}s left"}
                save()
                continue
            shutil.rmtree(runs_root / name, ignore_errors=True)
            cmd = [sys.executable, str(ROOT / "bench" / "gpu" / "zoo_cli.py"), "train", recipe, *common,
                   f"runs_root={runs_root}", *extra]
            t0 = time.time()
            # its own process group: a time-out or SIGTERM here also ends the ranks Lightning started
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)
            try:
                stdout, stderr = proc.communicate(timeout=limit)
                rc, note = proc.returncode, ""
            except BaseException as err:
                os.killpg(proc.pid, signal.SIGKILL)
                stdout, stderr = proc.communicate()
                if not isinstance(err, subprocess.TimeoutExpired):
                    raise
                rc, note = None, f"killed after its {limit:.0f}s share of the budget"
            (out / f"train.ddp.{name}.log").write_text(stdout[-20000:] + "\n" + stderr[-20000:])
            metrics = read_metrics(runs_root / name, keys) if (runs_root / name).is_dir() else {k: [] for k in keys}
            tps = [v for s, v in metrics["train/tokens_per_s"] if s > min(5, args.ddp_steps // 2)]
            result["runs"][label] = {"returncode": rc, "wall_s": time.time() - t0, "note": note,
                                     "train_loss": metrics["train/loss"], "val_loss": metrics["val/loss"],
                                     "tokens_per_s_median": statistics.median(tps) if tps else None}
            print(label, "rc", rc, note, "tok/s", result["runs"][label]["tokens_per_s_median"], flush=True)
            if rc != 0:
                print(stderr[-3000:], flush=True)
            compare(result)
            save()
    except Stopped as why:
        result["note"] = f"stopped by {why} after {time.time() - START:.0f}s (time limit)"
    save()
    print(render_ddp(result))
    return result


def compare(result: Dict[str, Any]) -> None:
    """Per-step loss differences from the 1-GPU run (DDP and the control) and the throughput scaling."""
    one = result["runs"].get(ONE)
    if not (one and one["train_loss"]):
        return
    base, base_val = dict(one["train_loss"]), dict(one["val_loss"])
    for label in (TWO, CONTROL, FSDP):
        run = result["runs"].get(label)
        if not (run and run["train_loss"]):
            continue
        diffs = {s: v - base[s] for s, v in run["train_loss"] if s in base}
        val = {s: v - base_val[s] for s, v in run["val_loss"] if s in base_val}
        result.setdefault("diffs", {})[label] = {
            "max_abs": max(map(abs, diffs.values())),
            "max_abs_first_10": max((abs(d) for s, d in diffs.items() if s <= 10), default=None),
            "first_step_over": next((s for s, d in sorted(diffs.items()) if abs(d) > DIVERGED), None),
            "final_train": diffs[max(diffs)],
            "final_val": val[max(val)] if val else None}
    for label, key in ((TWO, "throughput_scaling"), (FSDP, "throughput_scaling_fsdp")):
        two = result["runs"].get(label)
        if two and one["tokens_per_s_median"] and two["tokens_per_s_median"]:
            result[key] = two["tokens_per_s_median"] / one["tokens_per_s_median"]


def render_ddp(r: Dict[str, Any]) -> str:
    compared = [TWO, CONTROL] + ([FSDP] if FSDP in r["runs"] else [])
    lines = [f"# zoo train: 1 GPU vs 2 GPUs ({'DDP, FSDP' if FSDP in r['runs'] else 'DDP'}), same global batch "
             f"({r['device']} x{r['gpus']})", "",
             f"{r['date_utc']} UTC · `{r['command']}`", "",
             f"The control is `{CONTROL}`: the same maths as `{ONE}` (micro batches of 8 rows instead of 4), so "
             "it differs from it only in floating-point rounding, as DDP does (per-rank sums, then the "
             "all-reduce). In bf16 that rounding alone makes training runs drift apart after a few steps (AdamW "
             "amplifies it); DDP (or FSDP) is faulty only if it leaves the 1-GPU curve clearly earlier or further "
             "than the control does.", "",
             "| step | " + " | ".join([f"loss, {ONE}"] + [f"loss, {k} | difference" for k in compared]) + " |",
             "|---" * (1 + 1 + 2 * len(compared)) + "|"]
    one = r["runs"].get(ONE)
    others = [dict(r["runs"][k]["train_loss"]) if k in r["runs"] else {} for k in compared]
    for s, v in (one["train_loss"] if one else []):
        cells = [f"{o[s]:.4f} | {o[s] - v:+.4f}" if s in o else "– | –" for o in others]
        lines.append(f"| {s} | {v:.4f} | " + " | ".join(cells) + " |")
    if r.get("diffs"):
        lines += ["", f"| vs {ONE} | max \\|diff\\|, steps ≤ 10 | first step \\|diff\\| > {DIVERGED} | max \\|diff\\| | "
                      "final train diff | final val diff |", "|---|---|---|---|---|---|"]
        for label, d in r["diffs"].items():
            cells = [f"{d['max_abs_first_10']:.4f}" if d["max_abs_first_10"] is not None else "–",
                     str(d["first_step_over"] or "none"), f"{d['max_abs']:.4f}", f"{d['final_train']:+.4f}",
                     f"{d['final_val']:+.4f}" if d["final_val"] is not None else "–"]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "| setup | tokens/s (median, steps > 5) | wall s | exit | note |", "|---|---|---|---|---|"]
    for label, run in r["runs"].items():
        tps = f"{run['tokens_per_s_median'] / 1e3:.1f}k" if run["tokens_per_s_median"] else "–"
        lines.append(f"| {label} | {tps} | {run['wall_s']:.0f} | {run['returncode']} | {run.get('note', '')} |")
    if "throughput_scaling" in r:
        lines += ["", f"Throughput scaling 2 GPUs / 1 GPU: {r['throughput_scaling']:.2f}x."]
    if "throughput_scaling_fsdp" in r:
        lines += ["", f"Throughput scaling 2 GPUs FSDP / 1 GPU: {r['throughput_scaling_fsdp']:.2f}x."]
    if r.get("note"):
        lines += ["", r["note"]]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.environ.get("OUT", "bench/results"))
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--budget", type=float, default=420.0,
                   help="seconds from the start of the process; no row starts unless its estimate fits")
    p.add_argument("--row-estimate", type=float, default=40.0,
                   help="seconds a model's first row is assumed to take (build, compile, autotune, steps)")
    p.add_argument("--smoke", action="store_true", help="tiny models on CPU: checks the script end to end")
    p.add_argument("--rows", default="", help="comma list of model names: only their rows "
                   "(e.g. 'zoo DeltaNet,zoo DeltaNet via zoo.train (Lightning)')")
    p.add_argument("--ddp", action="store_true", help="zoo train on 1 GPU then 2 GPUs (DDP): loss match, scaling")
    p.add_argument("--ddp-steps", type=int, default=25)
    p.add_argument("--fsdp", action="store_true", help="with --ddp: also a 2-device FSDP run")
    p.add_argument("--ddp-share", type=float, default=0.6,
                   help="--ddp: the largest fraction of the budget left that the 1-GPU run may take")
    p.add_argument("--reuse", default="", help="--ddp: an earlier train.ddp.json whose finished runs are taken "
                   "as they are (e.g. the DDP run and the control), so only the others run")
    p.add_argument("--runs-root", default="/tmp/zoo_ddp_runs")
    args = p.parse_args(argv)
    if args.ddp:
        import_zoo_training()
        return ddp_check(args)
    return run(args)


if __name__ == "__main__":
    stop_on_sigterm()
    main()
