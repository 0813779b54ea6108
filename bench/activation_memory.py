"""Activation memory a block keeps for its backward, per token, by module (CPU, no GPU needed).

    python3 bench/activation_memory.py --out bench/results     # activation_memory.{json,md}

Runs one ZooModel block of each mixer at the paper's 340M width (d_model 1024, 8 heads, SwiGLU
2816) under bf16 autocast with fp32 master weights, as training does, and sums the bytes of
every distinct storage that autograd saves (parameters excluded), attributed to the innermost
module running when it was saved. Per token = the difference between T = 2048 and T = 1024,
over 1024, so per-call constants (autocast's weight casts) cancel.

What it does not see: the chunk delta-rule op is replaced by a stand-in that keeps exactly what
zoo's Triton autograd Function keeps (q, k, v, beta [, g], Tinv [T, H, 64] in the input dtype [,
G in fp32]), because on the CPU the layers run the PyTorch reference, which keeps more. The
attention mixers are left out: their CPU SDPA kernel is not the one a GPU runs.
"""
from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import torch

from _repo import import_zoo

zoo = import_zoo()
from zoo.config import ModelConfig, merge  # noqa: E402
from zoo.model import ZooModel  # noqa: E402
import zoo.layers.deltanet as deltanet  # noqa: E402

PATTERNS = ["delta*1", "gdelta*1", "linear*1"]


class _KeptLikeTriton(torch.autograd.Function):
    """Keeps what kernels.chunk's autograd Function keeps; the output is a stand-in (v)."""

    @staticmethod
    def forward(ctx, q, k, v, beta, g):
        B, T, H, _ = q.shape
        kept = [q, k, v, beta, q.new_empty(B, T, H, 64)]
        if g is not None:
            kept.append(g.float().cumsum(1))
        ctx.save_for_backward(*kept)
        return v.clone()

    @staticmethod
    def backward(ctx, do):
        raise RuntimeError("forward-only stand-in")


def _stand_in(q, k, v, beta, g, chunk_size, **kw):
    return _KeptLikeTriton.apply(q, k, v, beta, g), None


def saved_by_module(model: ZooModel, T: int) -> dict:
    stack, seen, owner = [], {}, {}
    hooks = []
    for name, mod in model.named_modules():
        hooks.append(mod.register_forward_pre_hook(lambda m, a, n=name: stack.append(n)))
        hooks.append(mod.register_forward_hook(lambda m, a, o: stack.pop() and None))
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(t):
        key = t.untyped_storage().data_ptr()
        if key not in seen and key not in params:
            seen[key] = t.untyped_storage().nbytes()
            owner[key] = stack[-1] if stack else "?"
        return t

    ids = torch.randint(0, model.config.vocab_size, (1, T))
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                model(ids)
    finally:
        for h in hooks:
            h.remove()
    per = defaultdict(int)
    for key, nbytes in seen.items():
        name = owner[key]
        if name.startswith("layers.0"):
            per[name[len("layers.0."):] or "block"] += nbytes
    return per


def measure(pattern: str) -> dict:
    cfg = merge(ModelConfig, dict(pattern=pattern, d_model=1024, n_heads=8, vocab_size=256, mlp_hidden=2816))
    model = ZooModel(cfg)
    a, b = saved_by_module(model, 1024), saved_by_module(model, 2048)
    rows = {k: (b.get(k, 0) - a.get(k, 0)) / 1024 / 1024 for k in set(a) | set(b)}
    rows = {k: round(v, 2) for k, v in sorted(rows.items(), key=lambda kv: -kv[1]) if v > 0.01}
    return {"pattern": pattern, "kib_per_token": round(sum(rows.values()), 1), "by_module": rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="write activation_memory.{json,md} here")
    args = ap.parse_args()
    deltanet._delta_rule = _stand_in
    torch.manual_seed(0)
    commit = subprocess.run(["git", "log", "-1", "--format=%h"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    res = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "commit": commit, "command": "python3 bench/activation_memory.py " + " ".join(sys.argv[1:]),
           "torch": torch.__version__, "rows": [measure(p) for p in PATTERNS]}
    lines = ["# Saved activations per token of one block (d_model 1024, 8 heads, SwiGLU 2816, bf16 autocast)", "",
             f"CPU measurement, {res['date']}, commit {commit}, `{res['command']}`, torch {res['torch']}.",
             "Method: bench/activation_memory.py's docstring.", "",
             "| block | KiB per token | largest parts (KiB per token) |", "|---|---|---|"]
    for r in res["rows"]:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in list(r["by_module"].items())[:6])
        lines.append(f"| `{r['pattern']}` | {r['kib_per_token']:.1f} | {parts} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "activation_memory.json").write_text(json.dumps(res, indent=1))
        (out / "activation_memory.md").write_text(text)


if __name__ == "__main__":
    main()
