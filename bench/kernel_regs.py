"""Registers and spills of every chunk-kernel launch, compiled for an H100 (sm_90a) on any machine.

A GPU-free check of launch and tiling choices: one forward and backward of ``chunk_delta_rule``
(or the gated rule) runs with the kernel launches captured instead of executed, each captured
launch is compiled by Triton for sm_90a with the same constexprs and launch options, and ptxas -v
(shipped with Triton) reports its registers per thread, spill bytes, stack frame and shared memory
(a launch over sm_90's 227 KB raises OutOfResources on the GPU: marked "OVER").
Spills are local-memory traffic in every program, so a kernel that spills kilobytes per thread
is slow whatever its launch grid. Timing still needs a GPU (bench/check_kernels_gpu.py).

    python bench/kernel_regs.py --shape 64x512x1x256x256 --dtype fp32            # MQAR d_model 256
    python bench/kernel_regs.py --shape 64x512x1x256x256 --dtype fp32 --fp32-dot tf32
    python bench/kernel_regs.py --shape 8x2048x16x128x128 --dtype bf16 --tune '{"fwd_bv": 32}'

Compiles take seconds to a minute each (fp32 at K = 256 is the slowest). TRITON_INTERPRET must be
unset: the interpreter replaces the kernels this compiles.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
SIG = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.int32: "i32", torch.int64: "i64"}
SHOWN = ("K", "V", "BK", "BKS", "BV", "DT", "UP", "FUSED", "LATE")  # constexprs printed per launch
SMEM_SM90 = 232448  # bytes of shared memory one block may use on sm_90 (227 KB); more fails to launch


def capture(B: int, T: int, H: int, K: int, V: int, dtype: torch.dtype, gated: bool) -> List[Tuple]:
    """(kernel, grid, args, kwargs) of each launch of one forward and backward, on CPU tensors."""
    from triton.runtime.jit import JITFunction

    from zoo.kernels import chunk as ch

    launches: List[Tuple] = []
    real = JITFunction.__getitem__
    JITFunction.__getitem__ = lambda self, grid: (lambda *a, **kw: launches.append((self, grid, a, kw)))
    try:  # the autograd function itself, so the launches are exactly those of a training step
        q, k = (torch.randn(B, T, H, K, dtype=dtype, requires_grad=True) for _ in range(2))
        v = torch.randn(B, T, H, V, dtype=dtype, requires_grad=True)
        beta = torch.rand(B, T, H, dtype=dtype, requires_grad=True)
        g = -torch.rand(B, T, H, dtype=dtype, requires_grad=True) if gated else None
        o, _ = ch._ChunkDeltaRule.apply(q, k, v, g, beta, 1.0, None, False, None)
        o.backward(torch.randn_like(o))
    finally:
        JITFunction.__getitem__ = real
    return launches


def compile_report(fn, grid, args, kwargs) -> Dict[str, Any]:
    """Compile one captured launch for sm_90a; ptxas -v's numbers for it."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    sig, const = {}, {}
    for i, prm in enumerate(fn.params):
        val = args[i] if i < len(args) else kwargs[prm.name]
        if prm.is_constexpr:
            sig[prm.name], const[prm.name] = "constexpr", val
        elif isinstance(val, torch.Tensor):
            sig[prm.name] = "*" + SIG[val.dtype]
        else:
            sig[prm.name] = "i32" if isinstance(val, int) else "fp32"
    options = {k: kwargs[k] for k in ("num_warps", "num_stages") if k in kwargs}
    kernel = triton.compile(ASTSource(fn, sig, const), target=GPUTarget("cuda", 90, 32), options=options)
    ptxas = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    with tempfile.TemporaryDirectory() as tmp:
        ptx = Path(tmp) / "k.ptx"
        ptx.write_text(kernel.asm["ptx"])
        out = subprocess.run([str(ptxas), "-arch=sm_90a", "-v", str(ptx), "-o", os.devnull],
                             capture_output=True, text=True, check=True)
    text = out.stdout + out.stderr

    def num(pattern: str) -> int:
        m = re.search(pattern, text)
        return int(m.group(1)) if m else 0

    return {"kernel": fn.fn.__name__, "grid": list(grid), **options,
            "constexprs": {k: str(v) for k, v in const.items() if k in SHOWN},
            "registers": num(r"Used (\d+) registers"), "spill_stores": num(r"(\d+) bytes spill stores"),
            "spill_loads": num(r"(\d+) bytes spill loads"), "stack": num(r"(\d+) bytes stack frame"),
            "shared": kernel.metadata.shared, "fits": kernel.metadata.shared <= SMEM_SM90}


def main(argv=None) -> List[Dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="8x2048x16x128x128", help="BxTxHxKxV")
    ap.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    ap.add_argument("--gated", action="store_true", help="the gated delta rule")
    ap.add_argument("--fp32-dot", choices=["tf32x3", "tf32", "ieee"], help="chunk.TUNING['fp32_dot']")
    ap.add_argument("--tune", default="{}", help="more chunk.TUNING entries, as JSON")
    ap.add_argument("--out", help="also write the rows to this JSON file")
    a = ap.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        ap.error("unset TRITON_INTERPRET: under the interpreter there are no kernels to compile")
    from zoo.kernels import chunk as ch

    ch.TUNING.update(json.loads(a.tune))
    if a.fp32_dot:
        ch.TUNING["fp32_dot"] = a.fp32_dot
    B, T, H, K, V = map(int, a.shape.split("x"))
    rows = [compile_report(*launch) for launch in capture(B, T, H, K, V, DTYPES[a.dtype], a.gated)]
    for r in rows:
        cx = " ".join(f"{k}={v}" for k, v in r["constexprs"].items())
        print(f"{r['kernel']:15s} warps {r.get('num_warps')} stages {r.get('num_stages')} {cx}: "
              f"{r['registers']} regs, spills {r['spill_stores']} B stored / {r['spill_loads']} B loaded, "
              f"stack {r['stack']} B, smem {r['shared']} B{'' if r['fits'] else ' OVER THE SM_90 LIMIT'}", flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps({"shape": a.shape, "dtype": a.dtype, "gated": a.gated,
                                           "tuning": ch.TUNING, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
