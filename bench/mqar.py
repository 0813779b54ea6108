"""The synthetic recall suite on one GPU: `zoo sweep` stages in priority order under one time budget.

    python bench/mqar.py --out DIR --budget 420 --workers 6   # on the GPU machine
    python bench/mqar.py --render                           # here: bench/results/mqar.{json,md,png}, mad.*
                                                            # (best over the recipes' sweep.best_over)
    python bench/mqar.py --render --out DIR                 # the same from DIR/{mqar,mad}.jsonl

Stages (each a `zoo sweep` grid; every finished run is appended to DIR/mqar.jsonl or DIR/mad.jsonl
at once, and points already in those files are skipped, so a later call continues the grid). Every
MQAR point runs each lr of recipes/mqar.yaml's train.lr axis (1e-3, 3e-3, 1e-2; the recipe's
sweep.best_over), back to back, and the tables show the best over lr, as Zoology and the DeltaNet
paper report; ``--set train.lr=3e-3`` runs one lr instead.

  1. MQAR seq 512 / 64 pairs, DeltaNet vs linear attention (L2 and elu+1) at d_model 128 and 256 (the headline)
  2. MQAR seq 512 / 64 pairs, Gated DeltaNet, global attention, SWA, the DeltaNet+SWA and DeltaNet+attention hybrids at d_model 128
  3. MQAR seq 256 / 16 pairs, all eight patterns at d_model 128
  4. MQAR seq 512 / 64 pairs, DeltaNet and linear attention (L2 and elu+1) at d_model 64 and 512
  5. the rest of the MQAR grid (recipes/mqar.yaml), easy settings first
  6. MAD (recipes/mad.yaml): DeltaNet and Transformer

Before running, DIR/*.jsonl are seeded from bench/results/*.jsonl (the committed results). The GPU
machine has no install of the project: bench/_repo.py maps ./kernels to zoo.kernels there.
``--budget S`` bounds the whole invocation (from the start of main): no stage starts with less than
20 s left, and a run still going at the deadline is cut (recorded as ``cut``, rerun next time).
SIGTERM (``timeout``) stops it too; the table of the records is printed last either way. The device
is the default CUDA device (CUDA_VISIBLE_DEVICES picks it). The chunkwise
Triton kernels (zoo.kernels.chunk_delta_rule / chunk_gated_delta_rule) are first checked against
the PyTorch chunkwise references at MQAR shapes (fp32 as trained, output and gradients); if one is missing,
fails or disagrees, the layers' CUDA path is pointed at the reference instead, and every record
says which path ran (``kernel_path``).
"""
from __future__ import annotations

import argparse
import shutil
import signal
import time
from pathlib import Path

from _repo import import_zoo

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
S512, S256 = "data.seq_len:data.mqar.num_kv_pairs=512:64", "data.seq_len:data.mqar.num_kv_pairs=256:16"
LINEAR = "linear*2,linear[feature_map=elu1]*2"  # L2-normalised and elu+1 additive linear attention
ALL = f"model.pattern=delta*2,gdelta*2,{LINEAR},swa*2,attn*2,delta swa,delta attn"  # both hybrids
STAGES = [  # (recipe, grid axes, pinned overrides)
    ("mqar", [S512, "model.d_model:model.n_heads=128:1,256:1", f"model.pattern=delta*2,{LINEAR}"], []),
    ("mqar", [S512, "model.d_model:model.n_heads=128:1", "model.pattern=gdelta*2,attn*2,swa*2,delta swa,delta attn"], []),
    ("mqar", [S256, "model.d_model:model.n_heads=128:1", ALL], []),
    ("mqar", [S512, "model.d_model:model.n_heads=64:1,512:2", f"model.pattern=delta*2,{LINEAR}"], []),
    ("mqar", [], []),  # the recipe's own grid
    ("mad", [], []),
]


def check_kernel(zk, name: str) -> str:
    """'' when zk.<name> matches the PyTorch reference at head dims 128 and 256 (d_model 128/256 MQAR)."""
    for K in (128, 256):
        why = _check_kernel(zk, name, K)
        if why:
            return f"K={K}: {why}"
    return ""


def _check_kernel(zk, name: str, K: int) -> str:
    """'' when zk.<name> matches the PyTorch chunkwise reference (fwd + grads, fp32, MQAR shapes), else why not."""
    import torch

    if not hasattr(zk, name):
        return "missing"
    torch.manual_seed(0)
    B, T, H = 4, 512, 1
    dev = "cuda"
    q, k = (torch.nn.functional.normalize(torch.randn(B, T, H, K, device=dev), dim=-1) for _ in range(2))
    v = torch.randn(B, T, H, K, device=dev)
    beta = torch.rand(B, T, H, device=dev).sigmoid()
    g = -torch.rand(B, T, H, device=dev) * 0.1
    extra = (g,) if "gated" in name else ()
    inputs = [x.clone().requires_grad_() for x in (q, k, v, *extra, beta)]  # fp32, as the recipes train
    ref_in = [x.detach().float().requires_grad_() for x in inputs]
    w = torch.randn(B, T, H, K, device=dev)
    try:
        o, _ = getattr(zk, name)(*inputs)
        grads = torch.autograd.grad((o.float() * w).sum(), inputs)
    except Exception as err:  # a kernel that cannot run here is reported, and the reference is used
        return f"error: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
    o_r, _ = getattr(zk, "torch_" + name)(*ref_in, chunk_size=64)
    grads_r = torch.autograd.grad((o_r * w).sum(), ref_in)
    rel = lambda a, b: ((a.float() - b).norm() / b.norm().clamp_min(1e-30)).item()  # noqa: E731
    errs = [rel(o, o_r)] + [rel(a, b) for a, b in zip(grads, grads_r)]
    return "" if all(e < 2e-2 for e in errs) else f"mismatch vs reference (rel errors {[round(e, 4) for e in errs]})"


def kernel_path(zk) -> str:
    """'triton' when the chunkwise kernels exist and match the reference; else patch in the references."""
    import torch

    if not torch.cuda.is_available():
        return "cpu (PyTorch chunkwise)"
    problems = {n: check_kernel(zk, n) for n in ("chunk_delta_rule", "chunk_gated_delta_rule")}
    missing = [n for n, why in problems.items() if why]
    if not missing:
        return "triton"
    import functools

    for name in missing:
        print(f"NOTICE: zoo.kernels.{name}: {problems[name]}", flush=True)
        ref = getattr(zk, "torch_" + name)
        setattr(zk, name, functools.partial(ref, chunk_size=64))
    print(f"NOTICE: DeltaNet layers run the PyTorch chunkwise reference on CUDA instead of "
          f"{', '.join(missing)} for this benchmark", flush=True)
    return "torch-chunk for " + ", ".join(f"{n} ({problems[n]})" for n in missing)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="where the .jsonl results go (default: bench/results)")
    ap.add_argument("--budget", type=float, default=420.0, help="wall seconds for all stages together")
    ap.add_argument("--stages", default="1,2,3,4,5,6", help="comma-separated stage numbers, in order")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="pinned override for every stage, e.g. sweep.max_seconds=40 or train.lr=1e-2")
    ap.add_argument("--workers", type=int, default=1, help="runs side by side (zoo sweep --workers; 6 per GPU "
                    "trained 3-4.7x the points per hour of one on an H200)")
    ap.add_argument("--render", action="store_true", help="only rewrite bench/results/{mqar,mad}.{json,md,png}")
    args = ap.parse_args()
    t0 = time.perf_counter()
    zk = import_zoo().kernels
    from zoo.sweep import load_records, load_sweep_recipe, render

    out = Path(args.out) if args.out else RESULTS
    if args.render:  # best over the recipe's sweep.best_over (train.lr), as the sweep itself renders
        for name in ("mqar", "mad"):
            if (out / f"{name}.jsonl").is_file():
                render(out / name, title=f"{name.upper()} on {_cards(load_records(out / f'{name}.jsonl'))}",
                       best_over=load_sweep_recipe(ROOT / "recipes" / f"{name}.yaml")[1].best_over)
        return
    try:
        run_stages(args, zk, out, t0)
    except KeyboardInterrupt as why:  # SIGTERM (see below) or Ctrl-C: the finished runs are on disk
        print(f"stopped ({why or 'interrupt'}) after {time.perf_counter() - t0:.0f}s; the run in flight is not "
              "recorded", flush=True)
    for name in ("mqar", "mad"):
        recs = load_records(out / f"{name}.jsonl")
        if recs:
            print(f"---- {name}: {len(recs)} records")
            for r in recs:
                print(f"{r['pattern']:>12} d={r['d_model']:<4} {r['task']:<28} acc={r['accuracy']:.4f} "
                      f"{r['status']:<8} steps={r['steps']:<5} {r['steps_per_s']} steps/s {r['seconds']}s")


def run_stages(args, zk, out: Path, t0: float) -> None:
    """Seed DIR from the committed results, check the kernels, then the stages in order."""
    import torch

    from zoo.sweep import command_line, run_sweep

    out.mkdir(parents=True, exist_ok=True)
    for name in ("mqar", "mad"):
        src, dst = RESULTS / f"{name}.jsonl", out / f"{name}.jsonl"
        if src.is_file() and src.resolve() != dst.resolve() and not dst.exists():
            shutil.copy(src, dst)
    path = kernel_path(zk)
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"torch {torch.__version__}, device {dev}, kernels: {path}", flush=True)
    workers = args.workers
    if workers > 1 and not path.startswith(("triton", "cpu")):  # the fallback is patched into this process only
        print(f"NOTICE: --workers {workers} ignored: worker processes would not get the reference fallback", flush=True)
        workers = 1
    for number in [int(s) for s in args.stages.split(",")]:
        name, grid, pinned = STAGES[number - 1]
        pinned = pinned + args.set
        left = args.budget - (time.perf_counter() - t0)
        if left < 20:
            print(f"budget spent before stage {number}", flush=True)
            break
        print(f"==== stage {number}: {name} {' '.join(grid) or '(recipe grid)'} ({left:.0f}s left)", flush=True)
        recipe = f"recipes/{name}.yaml"
        run_sweep(str(ROOT / recipe), grid, pinned, out=str(out / name), budget=left, report=False, workers=workers,
                  command=command_line(recipe, pinned, grid, f"bench/results/{name}"), extra={"kernel_path": path})


def _cards(records) -> str:
    return ", ".join(sorted({r.get("device", "?") for r in records}))


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    main()
