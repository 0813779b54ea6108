"""Delta-rule kernel benchmark on one CUDA GPU (bf16): zoo vs fla-core vs attention, and decode.

    python3 bench/kernels.py --out DIR         # DIR/kernels.json, DIR/kernels.md, table on stdout
    python3 bench/kernels.py --render JSON [--out DIR]   # only rewrite kernels.md (CPU; old JSON too)

What it does, in order, all in one process:
1. Measures device copy bandwidth (a 1 GiB device-to-device copy; bytes read + written).
2. Correctness gates before any timing: every timed delta-rule op in bf16 against the fp32
   PyTorch reference (zoo.kernels.torch_chunk_*), output and every gradient, relative RMS
   ‖x − ref‖/‖ref‖ (gate 1e-2); output at T = 8192; finiteness at T = 65536; the decode steps
   against an fp32 step.
3. Training shapes B×T×H×D of DESIGN §9 plus 1×16384×16×128: forward and forward+backward
   times (triton.testing.do_bench, median) of zoo chunk_delta_rule, zoo chunk_gated_delta_rule,
   fla-core chunk_delta_rule (and chunk_gated_delta_rule, or its refusal), SDPA causal and
   FlexAttention sliding window (W = 512 at T = 2048, else 2048); each with the fraction of its
   memory-traffic floor (bytes each input read once and each output written once, over the
   measured copy bandwidth). The delta-rule ops are also timed by CUDA-graph replay (GPU time
   only: eager times carry host launch overhead, which a busy host inflates); zoo / fla ratios
   are reported for both, graph first.
4. Decode: one token of the delta rule at H = 8, K = V = 128 for B in {1, 16, 64, 256}: zoo
   delta_rule_step vs fla fused_recurrent_delta_rule at T = 1, eager and CUDA-graph replay, with
   inputs rotated over >= 64 MiB of states so L2 does not hold them.
fla (`pip install fla-core`) is only a baseline here; zoo never imports it. A missing piece is
recorded with its error and the run goes on.
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

import torch

from _repo import import_zoo
from _timing import copy_bandwidth, ms, time_graph
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [(8, 2048, 16, 128), (4, 4096, 16, 128), (2, 8192, 16, 128), (8, 2048, 32, 64), (1, 16384, 16, 128)]
DECODE_B = [1, 16, 64, 256]
DECODE_H, DECODE_D = 8, 128
GATE = 1e-2


SAVE = lambda: None  # noqa: E731  (main() points this at the writer of kernels.json/md)


def swa_window(T: int) -> int:
    return 512 if T == 2048 else 2048


def rel_rms(x, ref) -> float:
    x, ref = x.double(), ref.double()
    if not torch.isfinite(x).all():
        return float("nan")
    return ((x - ref).norm() / ref.norm().clamp_min(1e-30)).item()


class Log:
    def __init__(self):
        self.t0 = time.time()

    def __call__(self, *a):
        print(f"[{time.time() - self.t0:6.1f}s]", *a, flush=True)


log = Log()


# ---------------------------------------------------------------------------------------------
# ops under test: each maker returns fn(q, k, v, beta, g) -> (o, final_state) in [B, T, H, *]
# ---------------------------------------------------------------------------------------------
def load_ops(zk):
    ops, missing = {}, {}
    try:  # the chunk kernels, also when zoo.kernels does not export them yet
        import zoo.kernels.chunk as zchunk
    except Exception as e:
        zchunk = None
        missing["zoo.kernels.chunk"] = f"{type(e).__name__}: {e}"
    for name in ("chunk_delta_rule", "chunk_gated_delta_rule", "fused_recurrent_delta_rule",
                 "fused_recurrent_gated_delta_rule", "delta_rule_step"):
        if hasattr(zk, name):
            ops["zoo." + name] = getattr(zk, name)
        elif zchunk is not None and hasattr(zchunk, name):
            ops["zoo." + name] = getattr(zchunk, name)
        else:
            missing["zoo." + name] = "not in zoo.kernels (not implemented yet)"
    try:
        import fla
        from fla.ops.delta_rule import chunk_delta_rule, fused_recurrent_delta_rule

        ops["fla.chunk_delta_rule"] = chunk_delta_rule
        ops["fla.fused_recurrent_delta_rule"] = fused_recurrent_delta_rule
        ops["fla.version"] = getattr(fla, "__version__", "?")
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule, fused_recurrent_gated_delta_rule

        ops["fla.chunk_gated_delta_rule"] = chunk_gated_delta_rule
        ops["fla.fused_recurrent_gated_delta_rule"] = fused_recurrent_gated_delta_rule
    except Exception as e:  # a baseline that does not import is recorded, not fatal
        missing["fla"] = f"{type(e).__name__}: {e}"
    return ops, missing


def call(ops, name, q, k, v, beta, g, **kw):
    f = ops[name]
    if "gated" in name:
        return f(q, k, v, g, beta, **kw) if name.startswith("zoo.") else f(q, k, v, g=g, beta=beta, **kw)
    return f(q, k, v, beta, **kw)


def make_delta_inputs(B, T, H, K, V, dtype=torch.bfloat16, requires_grad=False, seed=0):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    r = lambda *s: torch.randn(*s, device="cuda", generator=gen)  # noqa: E731
    q = r(B, T, H, K).to(dtype)
    k = F.normalize(r(B, T, H, K), dim=-1).to(dtype)
    v = r(B, T, H, V).to(dtype)
    beta = torch.sigmoid(r(B, T, H)).to(dtype)
    g = F.logsigmoid(r(B, T, H) + 3.0).to(dtype)  # decays near 0.95
    xs = [q, k, v, beta, g]
    if requires_grad:
        xs = [x.requires_grad_() for x in xs]
    return xs


# ---------------------------------------------------------------------------------------------
# 2. gates (1., the copy bandwidth, is _timing.copy_bandwidth)
# ---------------------------------------------------------------------------------------------
def gate_delta(ops, zk, name, B, T, H, D, grads=True, seed=1):
    """bf16 op vs the fp32 PyTorch chunkwise reference: output, final state and all grads."""
    gated = "gated" in name
    ref = zk.torch_chunk_gated_delta_rule if gated else zk.torch_chunk_delta_rule
    xs = make_delta_inputs(B, T, H, D, D, requires_grad=grads, seed=seed)
    h0 = torch.randn(B, H, D, D, device="cuda") * 0.1
    h0.requires_grad_(grads)
    o, ht = call(ops, name, *xs, initial_state=h0, output_final_state=True)
    rx = [x.detach().float().requires_grad_(grads) for x in xs]
    rh0 = h0.detach().clone().requires_grad_(grads)
    rargs = (rx[0], rx[1], rx[2], rx[4], rx[3]) if gated else tuple(rx[:4])
    ro, rht = ref(*rargs, initial_state=rh0, output_final_state=True)
    res = {"o": rel_rms(o, ro), "ht": rel_rms(ht, rht)}
    if grads:
        do = torch.randn_like(ro)
        dht = torch.randn_like(rht)
        leaves = xs[:4] + ([xs[4]] if gated else []) + [h0]
        rleaves = rx[:4] + ([rx[4]] if gated else []) + [rh0]
        gs = torch.autograd.grad((o.float() * do).sum() + (ht * dht).sum(), leaves)
        rgs = torch.autograd.grad((ro * do).sum() + (rht * dht).sum(), rleaves)
        for n, a, b in zip(["dq", "dk", "dv", "dbeta"] + (["dg"] if gated else []) + ["dh0"], gs, rgs):
            res[n] = rel_rms(a, b)
    return res


def run_gates(ops, zk, out, names, reference=True):
    gates = out.setdefault("gates", [])

    def add(name, shape, res, what):
        worst = max(res.values()) if res else float("nan")
        ok = bool(res) and all(math.isfinite(x) and x <= GATE for x in res.values())
        gates.append({"op": name, "shape": shape, "check": what, "rel_rms": res, "worst": worst, "pass": ok})
        log(f"gate {name} {shape} {what}: {'PASS' if ok else 'FAIL'} worst {worst:.2e}", res)

    # the reference itself against the per-token definition (fp32, short)
    try:
        if not reference:
            raise StopIteration
        xs = make_delta_inputs(1, 256, 2, 64, 64, dtype=torch.float32, seed=2)
        a, _ = zk.torch_chunk_gated_delta_rule(xs[0], xs[1], xs[2], xs[4], xs[3])
        b, _ = zk.naive_recurrent_gated_delta_rule(xs[0], xs[1], xs[2], xs[4], xs[3])
        add("reference torch_chunk_gated vs naive (fp32)", [1, 256, 2, 64], {"o": rel_rms(a, b)}, "fwd")
    except StopIteration:
        pass
    except Exception as e:
        gates.append({"op": "reference", "error": repr(e)})
    for name in [n for n in names if n in ops]:
        # H = 16, D = 128 as in the timed shapes: fla autotunes per (H, K, V), not per T
        for (B, T, H, D, grads) in ((1, 1000, 16, 128, True), (1, 8192, 16, 128, False)):
            if "fused_recurrent" in name and T > 1000:
                continue
            try:
                add(name, [B, T, H, D], gate_delta(ops, zk, name, B, T, H, D, grads=grads),
                    "fwd+grads" if grads else "fwd")
            except Exception as e:
                gates.append({"op": name, "shape": [B, T, H, D], "error": f"{type(e).__name__}: {e}"[:500], "pass": False})
                log(f"gate {name} ERROR {type(e).__name__}: {str(e)[:300]}")
        if name.startswith("zoo.chunk"):
            try:
                xs = make_delta_inputs(1, 65536, 4, 128, 128, seed=3)
                with torch.no_grad():
                    o, ht = call(ops, name, *xs, output_final_state=True)
                fin = bool(torch.isfinite(o).all() and torch.isfinite(ht).all())
                gates.append({"op": name, "shape": [1, 65536, 4, 128], "check": "finite", "pass": fin})
                log(f"gate {name} T=65536 finite: {fin}")
            except Exception as e:
                gates.append({"op": name, "check": "finite", "error": repr(e)[:300], "pass": False})


# ---------------------------------------------------------------------------------------------
# 3. training shapes
# ---------------------------------------------------------------------------------------------
def floor_bytes(B, T, H, D, kind):
    """(fwd bytes, fwd+bwd bytes) in bf16: each input read once, each output written once."""
    tok = B * T * H
    big = tok * D * 2  # one [B, T, H, D] bf16 tensor
    small = tok * 2  # one [B, T, H] bf16 tensor
    if kind == "attn":
        fwd = 3 * big + big
        bwd = 4 * big + 3 * big  # read q, k, v, do; write dq, dk, dv
    else:
        n_small = 2 if kind == "gated" else 1  # beta (+ g)
        fwd = 3 * big + n_small * small + big
        bwd = 4 * big + n_small * small + 3 * big + n_small * small
    return fwd, fwd + bwd


def time_delta(ops, name, B, T, H, D, row, graph=False):
    """(fwd ms, fwd+bwd ms) by do_bench; with ``graph`` also row["graph_fwd_ms"] and
    row["graph_fwdbwd_ms"] by CUDA-graph replay (or row["graph_error"])."""
    xs = make_delta_inputs(B, T, H, D, D, seed=4)
    with torch.no_grad():
        fwd = ms(lambda: call(ops, name, *xs))
    row["fwd_ms"] = fwd
    xg = [x.detach().clone().requires_grad_() for x in xs]
    do = torch.randn_like(xs[2])
    leaves = xg if "gated" in name else xg[:4]

    def step():
        o, _ = call(ops, name, *xg)
        o.backward(do)

    fb = ms(step, grad_to_none=leaves)
    if graph:
        try:
            with torch.no_grad():
                row["graph_fwd_ms"] = time_graph([lambda: call(ops, name, *xs)] * 5)
            # autograd.grad inside the capture: no .grad accumulation across replays
            row["graph_fwdbwd_ms"] = time_graph([lambda: torch.autograd.grad(call(ops, name, *xg)[0], leaves, do)] * 5)
        except Exception as e:
            row["graph_error"] = f"{type(e).__name__}: {str(e)[:300]}"
            log(f"{name} graph timing ERROR {row['graph_error'][:200]}")
    return fwd, fb


_FLEX = {}


def time_attention(kind, B, T, H, D):
    """(fwd ms, fwd+bwd ms); raises if FlexAttention fell back to its unfused implementation."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = _time_attention(kind, B, T, H, D)
    if any("without torch.compile" in str(w.message) for w in caught):
        raise RuntimeError(f"flex_attention ran uncompiled (unfused fallback); times {res} are not FlexAttention's")
    return res


def _time_attention(kind, B, T, H, D):
    gen = torch.Generator(device="cuda").manual_seed(5)
    q, k, v = (torch.randn(B, H, T, D, device="cuda", generator=gen, dtype=torch.bfloat16) for _ in range(3))
    do = torch.randn_like(q)
    if kind == "sdpa":
        f = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
    else:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        W = swa_window(T)

        def swa(b, h, qi, ki):
            return (qi >= ki) & (qi - ki < W)

        bm = create_block_mask(swa, None, None, T, T, device="cuda")
        if "fn" not in _FLEX:
            # every shape x grad mode is a recompile; past Dynamo's limit (8) flex_attention silently
            # runs unfused (seen in the committed run at the 4th shape), so raise the limit.
            # `import torch._dynamo` here would make `torch` a local name of this whole function.
            import torch._dynamo as dynamo

            for knob in ("recompile_limit", "cache_size_limit"):
                if hasattr(dynamo.config, knob):
                    setattr(dynamo.config, knob, max(64, getattr(dynamo.config, knob)))
            _FLEX["fn"] = torch.compile(flex_attention, dynamic=False)
        f = lambda q, k, v: _FLEX["fn"](q, k, v, block_mask=bm)  # noqa: E731
    with torch.no_grad():
        fwd = ms(lambda: f(q, k, v))
    qg, kg, vg = (x.clone().requires_grad_() for x in (q, k, v))

    def step():
        f(qg, kg, vg).backward(do)

    fb = ms(step, grad_to_none=[qg, kg, vg])
    return fwd, fb


ALL_TRAIN = ["zoo.chunk_delta_rule", "zoo.chunk_gated_delta_rule", "fla.chunk_delta_rule",
             "fla.chunk_gated_delta_rule", "sdpa_causal", "flex_swa"]


def run_training(ops, bw, out, deadline, names):
    rows = out.setdefault("training", [])
    attns = ["sdpa_causal", "flex_swa"]
    # shapes whose (H, D) differs from the first go last: fla autotunes once per (H, K, V)
    order = sorted(SHAPES, key=lambda s: (s[2:] != SHAPES[0][2:], SHAPES.index(s)))
    work = [(s, n) for s in order for n in names if n in ops or n in attns]
    for (B, T, H, D), name in work:
        row = {"shape": [B, T, H, D], "op": name}
        if name == "flex_swa":
            row["window"] = swa_window(T)
        kind = "attn" if name in attns else ("gated" if "gated" in name else "delta")
        fb_bytes = floor_bytes(B, T, H, D, kind)
        row["floor_fwd_ms"] = fb_bytes[0] / bw * 1e3
        row["floor_fwdbwd_ms"] = fb_bytes[1] / bw * 1e3
        rows.append(row)
        if time.time() > deadline:
            row["error"] = "skipped: time budget of the run spent"
            continue
        try:
            if kind == "attn":
                fwd, fb = time_attention("sdpa" if name == "sdpa_causal" else "flex", B, T, H, D)
            else:
                fwd, fb = time_delta(ops, name, B, T, H, D, row, graph=True)
            row.update(fwd_ms=fwd, fwdbwd_ms=fb, floor_frac_fwd=row["floor_fwd_ms"] / fwd,
                       floor_frac_fwdbwd=row["floor_fwdbwd_ms"] / fb)
            graphed = f"; graph fwd {fmt(row.get('graph_fwd_ms'))} ms, fwd+bwd {fmt(row.get('graph_fwdbwd_ms'))} ms" \
                if kind != "attn" else ""
            log(f"{name:28s} {B}x{T}x{H}x{D}: fwd {fwd:.3f} ms, fwd+bwd {fb:.3f} ms{graphed}")
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {str(e)[:400]}"
            if row.get("fwd_ms"):
                row["floor_frac_fwd"] = row["floor_fwd_ms"] / row["fwd_ms"]
            log(f"{name:28s} {B}x{T}x{H}x{D}: fwd {row.get('fwd_ms')}; ERROR {row['error'][:200]}")
        torch.cuda.empty_cache()
        SAVE()
    rows.sort(key=lambda r: (SHAPES.index(tuple(r["shape"])), ALL_TRAIN.index(r["op"])))


def run_recurrent(ops, out, deadline):
    """The token-by-token kernels at two training shapes (information: train with chunk)."""
    rows = []
    for (B, T, H, D) in (SHAPES[0], SHAPES[2]):
        for name in ("zoo.fused_recurrent_delta_rule", "fla.fused_recurrent_delta_rule",
                     "zoo.fused_recurrent_gated_delta_rule"):
            if name not in ops or time.time() > deadline:
                continue
            row = {"shape": [B, T, H, D], "op": name}
            try:
                fwd, fb = time_delta(ops, name, B, T, H, D, row)
                row.update(fwd_ms=fwd, fwdbwd_ms=fb)
                log(f"{name:36s} {B}x{T}x{H}x{D}: fwd {fwd:.3f} ms, fwd+bwd {fb:.3f} ms")
            except Exception as e:
                row["error"] = f"{type(e).__name__}: {str(e)[:400]}"
                log(f"{name} ERROR {row['error'][:200]}")
            rows.append(row)
    out["recurrent"] = rows


# ---------------------------------------------------------------------------------------------
# 4. decode
# ---------------------------------------------------------------------------------------------
def run_decode(ops, zk, out, deadline, gated=False):
    rows = []
    H, K = DECODE_H, DECODE_D
    V = K
    step = ops.get("zoo.delta_rule_step")
    fla_name = "fla.fused_recurrent_gated_delta_rule" if gated else "fla.fused_recurrent_delta_rule"
    fla = ops.get(fla_name)
    for B in DECODE_B:
        if time.time() > deadline:
            break
        state_bytes = B * H * K * V * 4
        nsets = max(1, min(128, math.ceil(64 * 2**20 / state_bytes)))
        gen = torch.Generator(device="cuda").manual_seed(6)
        sets = []
        for _ in range(nsets):
            q = torch.randn(B, H, K, device="cuda", generator=gen).bfloat16()
            k = F.normalize(torch.randn(B, H, K, device="cuda", generator=gen), dim=-1).bfloat16()
            v = torch.randn(B, H, V, device="cuda", generator=gen).bfloat16()
            beta = torch.rand(B, H, device="cuda", generator=gen).bfloat16()
            g = F.logsigmoid(torch.randn(B, H, device="cuda", generator=gen) + 3).bfloat16() if gated else None
            st = torch.randn(B, H, K, V, device="cuda", generator=gen) * 0.1
            sets.append((q, k, v, beta, g, st))
        row = {"B": B, "H": H, "K": K, "V": V, "gated": gated, "rotated_sets": nsets,
               "floor_us": 2 * state_bytes / out["copy_bandwidth_Bps"] * 1e6}
        # gate: one step of each against an fp32 PyTorch step
        q, k, v, beta, g, st = sets[0]
        st = st.clone()  # timing below updates the sets' states in place
        ref_state = st.clone()
        ref_o = zk.delta_rule_step_torch(q.float(), k.float(), v.float(), beta.float(), ref_state,
                                         g=g.float() if gated else None)
        if step is not None:
            s2 = st.clone()
            o = step(q, k, v, beta, s2, g=g)
            row["zoo_gate"] = {"o": rel_rms(o, ref_o), "state": rel_rms(s2, ref_state)}
            it = itertools.cycle(sets)

            def zoo_eager():
                q, k, v, beta, g, st = next(it)
                step(q, k, v, beta, st, g=g)

            row["zoo_eager_us"] = ms(zoo_eager) * 1e3
            row["zoo_graph_us"] = time_graph(
                [lambda s=s: step(s[0], s[1], s[2], s[3], s[5], g=s[4]) for s in sets]) * 1e3
        if fla is not None:
            try:
                def fla_call(s):
                    q, k, v, beta, g, st = s
                    args = dict(initial_state=st, output_final_state=True)
                    if gated:
                        return fla(q[:, None], k[:, None], v[:, None], g=g[:, None], beta=beta[:, None], **args)
                    return fla(q[:, None], k[:, None], v[:, None], beta[:, None], **args)

                o, ht = fla_call((q, k, v, beta, g, st.clone()))
                row["fla_gate"] = {"o": rel_rms(o[:, 0], ref_o), "state": rel_rms(ht, ref_state)}
                it2 = itertools.cycle(sets)
                row["fla_eager_us"] = ms(lambda: fla_call(next(it2))) * 1e3
                row["fla_graph_us"] = time_graph([lambda s=s: fla_call(s) for s in sets]) * 1e3
            except Exception as e:
                row["fla_error"] = f"{type(e).__name__}: {str(e)[:300]}"
        log("decode", {k_: (round(v_, 2) if isinstance(v_, float) else v_) for k_, v_ in row.items()})
        rows.append(row)
        del sets
        torch.cuda.empty_cache()
    out.setdefault("decode", []).extend(rows)


def sweep_step(zk, out):
    """Decode kernel block widths and warps (used to pick the defaults in fused_recurrent.py)."""
    import triton

    fr = sys.modules["zoo.kernels.fused_recurrent"]
    res = []
    H, K = DECODE_H, DECODE_D
    for B in DECODE_B:
        nsets = max(1, min(128, math.ceil(64 * 2**20 / (B * H * K * K * 4))))
        sets = [(torch.randn(B, H, K, device="cuda").bfloat16(), torch.randn(B, H, K, device="cuda").bfloat16(),
                 torch.randn(B, H, K, device="cuda").bfloat16(), torch.rand(B, H, device="cuda").bfloat16(),
                 torch.randn(B, H, K, K, device="cuda")) for _ in range(nsets)]
        o = torch.empty(B, H, K, device="cuda", dtype=torch.bfloat16)
        for BV in (8, 16, 32, 64):
            for nw in (1, 2, 4):
                fns = [lambda s=s: fr._step_kernel[(triton.cdiv(K, BV), B * H)](
                    s[0], s[1], s[2], s[3], s[3], s[4], o, 0.088, K=K, V=K, BK=K, BV=BV, USE_G=False,
                    num_warps=nw) for s in sets]
                t = time_graph(fns) * 1e3
                res.append({"B": B, "BV": BV, "num_warps": nw, "graph_us": t})
        best = min((r for r in res if r["B"] == B), key=lambda r: r["graph_us"])
        log(f"sweep B={B}: best BV={best['BV']} nw={best['num_warps']} {best['graph_us']:.2f} us; "
            f"default (BV, nw) = {fr._step_config(B * H, K, K)}")
    out["step_sweep"] = res


def sweep_recurrent(out, deadline):
    """Forward and reverse-backward kernels of the token-by-token op at 8x2048x16x128 over block
    widths and warps (informs _fwd_config / _bwd_config in fused_recurrent.py)."""
    import triton

    fr = sys.modules["zoo.kernels.fused_recurrent"]
    B, T, H, D = SHAPES[0]
    q, k, v, beta, g = make_delta_inputs(B, T, H, D, D, seed=7)
    o = torch.empty_like(v)
    w = torch.randn(B, T, H, D, device="cuda")
    do = torch.randn_like(v)
    res = []
    for BV in (8, 16, 32):
        for nw in (1, 2, 4):
            if time.time() > deadline:
                break
            t = ms(lambda: fr._fwd_kernel[(triton.cdiv(D, BV), B * H)](
                q, k, v, beta, beta, o, o, o, o, None, 0.088, T, H=H, K=D, V=D, BK=D, BV=BV, USE_G=False,
                USE_H0=False, STORE_HT=False, STORE_W=False, IS_VARLEN=False, num_warps=nw))
            res.append({"kernel": "fwd", "BV": BV, "num_warps": nw, "ms": t})
    dv = torch.empty(B, T, H, D, device="cuda")
    for BV in (32, 64, 128):
        NV = triton.cdiv(D, BV)
        dk = torch.empty(NV, B, T, H, D, device="cuda")
        db = torch.empty(NV, B, T, H, device="cuda")
        for nw in (2, 4, 8):
            if time.time() > deadline:
                break
            t = ms(lambda: fr._bwd_reverse_kernel[(NV, B * H)](
                q, k, v, beta, beta, w, do, dv, dv, dk, db, db, dv, None, 0.088, T, B * T, H=H, K=D, V=D,
                BK=D, BV=BV, USE_G=False, USE_DHT=False, STORE_DH0=False, IS_VARLEN=False, num_warps=nw))
            res.append({"kernel": "bwd_reverse", "BV": BV, "num_warps": nw, "ms": t})
        del dk, db
    for kern in ("fwd", "bwd_reverse"):
        rs = [r for r in res if r["kernel"] == kern]
        if rs:
            best = min(rs, key=lambda r: r["ms"])
            log(f"recurrent sweep {kern}: best BV={best['BV']} nw={best['num_warps']} {best['ms']:.3f} ms; "
                f"default {fr._fwd_config(D, D) if kern == 'fwd' else fr._bwd_config(D, D)}")
    out["recurrent_sweep"] = res


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def fmt(x, nd=3):
    return "–" if x is None else f"{x:.{nd}f}"


def markdown(out) -> str:
    L = [f"# Delta-rule kernel benchmark", "",
         f"- card: {out['card']}", f"- date: {out['date']}", f"- command: `{out['command']}`",
         f"- torch {out['torch']}, triton {out['triton']}, fla-core {out.get('fla_version', 'not available')}",
         f"- measured copy bandwidth: {out['copy_bandwidth_Bps'] / 1e12:.2f} TB/s (read + write)",
         "- times: triton.testing.do_bench median, bf16 inputs; eager = one call per timing (includes the "
         "host's launch overhead, inflated when the host is busy); graph = median replay of a CUDA graph of "
         "5 calls / 5 (GPU time only); floor = bytes (each input read once, each output written once) / copy "
         "bandwidth; frac = floor / eager time", ""]
    if out.get("notes"):
        L += ["Notes:", ""] + [f"- {n}" for n in out["notes"]] + [""]
    if out.get("missing"):
        L += ["Not available in this run:", ""] + [f"- `{k}`: {v}" for k, v in out["missing"].items()] + [""]
    L += ["## Correctness gates (bf16 vs fp32 reference, relative RMS, gate 1e-2)", "",
          "| op | shape | check | worst | pass |", "|---|---|---|---|---|"]
    for g in out.get("gates", []):
        worst = g.get("worst")
        L.append(f"| {g.get('op')} | {'×'.join(map(str, g.get('shape', [])))} | {g.get('check', '')} | "
                 f"{f'{worst:.1e}' if isinstance(worst, float) else g.get('error', '')[:120]} | {g.get('pass')} |")
    L += ["", "## Training shapes (ms; fwd+bwd and fwd; eager, and graph for the delta-rule ops)", "",
          "| B×T×H×D | op | fwd+bwd ms | floor frac | fwd ms | floor frac | graph fwd+bwd ms | graph fwd ms | note |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in out.get("training", []):
        note = "; ".join(x for x in (f"W={r['window']}" if "window" in r else "", r.get("error", ""),
                                     f"graph: {r['graph_error']}" if r.get("graph_error") else "",
                                     f"INVALID: {r['invalid']}" if r.get("invalid") else "") if x)
        L.append(f"| {'×'.join(map(str, r['shape']))} | {r['op']} | {fmt(r.get('fwdbwd_ms'))} | "
                 f"{fmt(r.get('floor_frac_fwdbwd'), 2)} | {fmt(r.get('fwd_ms'))} | {fmt(r.get('floor_frac_fwd'), 2)} | "
                 f"{fmt(r.get('graph_fwdbwd_ms'))} | {fmt(r.get('graph_fwd_ms'))} | {note[:200]} |")
    for graph, title in ((True, "CUDA-graph replay: GPU time only"),
                         (False, "eager do_bench: includes host launch overhead")):
        ratios = ratio_rows(out, graph)
        L += ["", f"## zoo / fla time ratios, {title} (target ≤ 0.8)", ""]
        if ratios:
            L += ["| B×T×H×D | fwd+bwd | fwd |", "|---|---|---|"] + [f"| {s} | {fmt(a, 2)} | {fmt(b, 2)} |" for s, a, b in ratios]
        else:
            L.append("Not measured in this run." if graph else "No shape has both ops timed.")
    if out.get("recurrent"):
        L += ["", "## Token-by-token kernels (ms)", "", "| B×T×H×D | op | fwd | fwd+bwd |", "|---|---|---|---|"]
        L += [f"| {'×'.join(map(str, r['shape']))} | {r['op']} | {fmt(r.get('fwd_ms'))} | {fmt(r.get('fwdbwd_ms'))} "
              f"{r.get('error', '')[:100]} |" for r in out["recurrent"]]
    if out.get("decode"):
        L += ["", "## Decode step, one token (µs; H=8, K=V=128; states rotated past L2)", "",
              "| gated | B | zoo eager | zoo graph | fla eager | fla graph | floor | zoo gate | fla gate |",
              "|---|---|---|---|---|---|---|---|---|"]
        for r in out["decode"]:
            zg = r.get("zoo_gate", {}).get("o")
            fg = r.get("fla_gate", {}).get("o")
            L.append(f"| {r['gated']} | {r['B']} | {fmt(r.get('zoo_eager_us'), 1)} | {fmt(r.get('zoo_graph_us'), 1)} | "
                     f"{fmt(r.get('fla_eager_us'), 1)} | {fmt(r.get('fla_graph_us'), 1)} | {fmt(r['floor_us'], 1)} | "
                     f"{f'{zg:.1e}' if zg is not None else '–'} | {f'{fg:.1e}' if fg is not None else r.get('fla_error', '–')[:60]} |")
    return "\n".join(L) + "\n"


def ratio_rows(out, graph=False):
    """[(shape, fwd+bwd ratio, fwd ratio)] of zoo / fla chunk_delta_rule, eager or graph times;
    a ratio whose times are missing is None, a shape with neither is left out."""
    by = {(tuple(r["shape"]), r["op"]): r for r in out.get("training", [])}
    pre = "graph_" if graph else ""
    res = []
    for s in SHAPES:
        z, f = by.get((s, "zoo.chunk_delta_rule"), {}), by.get((s, "fla.chunk_delta_rule"), {})
        ratio = [z[k] / f[k] if z.get(k) and f.get(k) else None for k in (pre + "fwdbwd_ms", pre + "fwd_ms")]
        if ratio != [None, None]:
            res.append(("×".join(map(str, s)), *ratio))
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="output folder (default $OUT, else bench/results); "
                    "with --render, where kernels.md goes (default: beside the JSON)")
    ap.add_argument("--budget-s", type=float, default=470, help="skip remaining timings after this many seconds")
    ap.add_argument("--sweep", action="store_true", help="also sweep the decode kernel's block width / warps")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: gates,training,recurrent,decode")
    ap.add_argument("--ops", default="", help="comma list: time only these training-shape ops (e.g. "
                    "zoo.chunk_delta_rule for an A/B of two checkouts' kernels)")
    ap.add_argument("--render", metavar="JSON", help="only rewrite the markdown of an existing kernels.json")
    args = ap.parse_args(argv)
    if args.render:
        src = Path(args.render)
        dst = Path(args.out) / "kernels.md" if args.out else src.with_suffix(".md")
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(markdown(json.loads(src.read_text())))
        print(f"wrote {dst}")
        return
    if not torch.cuda.is_available():
        sys.exit("bench/kernels.py needs a CUDA GPU")
    deadline = log.t0 + args.budget_s
    skip = set(filter(None, args.skip.split(",")))
    import triton

    zk = import_zoo().kernels
    ops, missing = load_ops(zk)
    out = {"card": torch.cuda.get_device_name(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "command": "python3 " + " ".join(sys.argv), "torch": torch.__version__, "triton": triton.__version__,
           "fla_version": ops.pop("fla.version", None), "missing": missing}
    log("card", out["card"], "torch", out["torch"], "triton", out["triton"], "fla", out["fla_version"], "missing", missing)
    out["copy_bandwidth_Bps"] = copy_bandwidth()
    log(f"copy bandwidth {out['copy_bandwidth_Bps'] / 1e12:.3f} TB/s")
    outdir = Path(args.out or os.environ.get("OUT", "bench/results"))
    outdir.mkdir(parents=True, exist_ok=True)

    def save():
        (outdir / "kernels.json").write_text(json.dumps(out, indent=1))
        (outdir / "kernels.md").write_text(markdown(out))

    global SAVE
    SAVE = save

    bw = out["copy_bandwidth_Bps"]
    # fla's gated op goes last: its backward refuses to run on Hopper with Triton < 3.7.1 and its
    # forward autotune takes minutes per (H, K), so it gets whatever time is left.
    chosen = [n for n in args.ops.split(",") if n] or ALL_TRAIN
    unknown = sorted(set(chosen) - set(ALL_TRAIN))
    if unknown:
        sys.exit(f"--ops: unknown {unknown}; choose from {ALL_TRAIN}")
    late = [n for n in ["fla.chunk_gated_delta_rule"] if n in chosen]
    first = [n for n in chosen if n not in late]
    sections = [("gates", lambda: run_gates(ops, zk, out, ["zoo.chunk_delta_rule", "zoo.chunk_gated_delta_rule",
                                                            "zoo.fused_recurrent_delta_rule",
                                                            "zoo.fused_recurrent_gated_delta_rule",
                                                            "fla.chunk_delta_rule"])),
                ("decode", lambda: (run_decode(ops, zk, out, deadline), run_decode(ops, zk, out, deadline, gated=True))),
                ("sweep", lambda: sweep_step(zk, out) if args.sweep else None),
                ("training", lambda: run_training(ops, bw, out, deadline, first)),
                ("recurrent", lambda: run_recurrent(ops, out, deadline)),
                ("recurrent_sweep", lambda: sweep_recurrent(out, deadline) if args.sweep else None),
                ("late", lambda: (run_gates(ops, zk, out, late, reference=False) if time.time() < deadline else None,
                                  run_training(ops, bw, out, deadline, late)))]
    for sec, fn in sections:
        if sec in skip:
            continue
        try:
            fn()
        except Exception:
            out.setdefault("section_errors", {})[sec] = traceback.format_exc()[-2000:]
            log(f"section {sec} failed:\n{traceback.format_exc()[-2000:]}")
        save()
    out["elapsed_s"] = time.time() - log.t0
    save()
    # short table last
    print("\nop                              shape            fwd+bwd ms   fwd ms   floor frac (fb)")
    for r in out.get("training", []):
        print(f"{r['op']:30s} {'x'.join(map(str, r['shape'])):16s} {fmt(r.get('fwdbwd_ms')):>10s} "
              f"{fmt(r.get('fwd_ms')):>8s} {fmt(r.get('floor_frac_fwdbwd'), 2):>8s} {r.get('error', '')[:60]}")
    for graph in (True, False):
        for s, a, b in ratio_rows(out, graph):
            print(f"zoo/fla {s} ({'graph' if graph else 'eager'}): fwd+bwd {fmt(a, 2)}  fwd {fmt(b, 2)}")
    for r in out.get("decode", []):
        print(f"decode gated={r['gated']} B={r['B']:3d}: zoo {fmt(r.get('zoo_eager_us'), 1)} / {fmt(r.get('zoo_graph_us'), 1)} us"
              f"  fla {fmt(r.get('fla_eager_us'), 1)} / {fmt(r.get('fla_graph_us'), 1)} us (eager / graph)")
    bad = [g["op"] for g in out.get("gates", []) if not g.get("pass")]
    print("gates failed:", bad or "none")


if __name__ == "__main__":
    main()
