"""GPU check of zoo's chunk kernels at real shapes: correctness, timings vs fla, stage profile, config sweep.

    python3 bench/check_kernels_gpu.py [--out DIR] [--budget S] [--no-sweep]
    python3 bench/check_kernels_gpu.py --gate          # ~30 s: real-shape + varlen bf16 checks; exit 1 on failure
    TRITON_INTERPRET=1 python3 bench/check_kernels_gpu.py --smoke   # CPU logic check, tiny shapes

In order (each section guarded; a failure is recorded and the run goes on):
1. correctness: zoo chunk_delta_rule / chunk_gated_delta_rule against the PyTorch chunkwise
   reference (torch_chunk_*, float64 for small shapes, float32 at real shapes): output, final
   state and every gradient (q, k, v, beta, g, initial state) as relative RMS; odd lengths,
   K != V, head dims 32..256, varlen documents, fp32 inputs, B x T x H x D = 8x2048x16x128 bf16,
   T = 8192 and T = 65536 (finite).
2. timings (triton.testing.do_bench, median ms) of fwd and fwd+bwd at DESIGN §9's shapes for
   zoo (plain and gated) and fla-core chunk_delta_rule when importable.
3. per-kernel CUDA time of one fwd+bwd (torch.profiler) for zoo and fla at the first shape.
4. a sweep of launch parameters (kernels.chunk.TUNING) for the stage kernels.
Writes DIR/check_kernels_gpu.json (DIR defaults to $OUT or bench/results/kernels) and prints a
short table last.
"""
from __future__ import annotations

import argparse
import json
import os
import time
import traceback
from pathlib import Path

import torch

from _repo import import_zoo
from _timing import ms, time_graph
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [(8, 2048, 16, 128), (4, 4096, 16, 128), (2, 8192, 16, 128), (8, 2048, 32, 64)]
FLA_MS = {(8, 2048, 16, 128): 2.26, (4, 4096, 16, 128): 2.03, (2, 8192, 16, 128): 2.21, (8, 2048, 32, 64): 2.57}


def load_kernels():
    """zoo.kernels and its chunk module, installed or straight from ./kernels."""
    zk = import_zoo().kernels
    import zoo.kernels.chunk as ch

    return zk, ch


T0 = time.time()


def log(*a):
    print(f"[{time.time() - T0:6.1f}s]", *a, flush=True)


def rel_rms(x, ref) -> float:
    x, ref = x.double(), ref.double()
    if not torch.isfinite(x).all():
        return float("nan")
    return ((x - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt().clamp_min(1e-30)).item()


def make_inputs(B, T, H, K, V, gated, dtype, device, n_states=None, seed=0):
    gen = torch.Generator(device=device).manual_seed(seed)
    q = torch.randn(B, T, H, K, device=device, generator=gen)
    k = F.normalize(torch.randn(B, T, H, K, device=device, generator=gen), dim=-1)
    v = torch.randn(B, T, H, V, device=device, generator=gen)
    beta = torch.rand(B, T, H, device=device, generator=gen).sigmoid()
    g = F.logsigmoid(torch.randn(B, T, H, device=device, generator=gen) + 3.0) if gated else None
    h0 = torch.randn(n_states or B, H, K, V, device=device, generator=gen) * 0.5
    cast = [x.to(dtype) for x in (q, k, v, beta)]
    return dict(q=cast[0], k=cast[1], v=cast[2], beta=cast[3], g=g, h0=h0)


def run_op(fn, x, gated, dtype, cu=None, grads=True, seed=1):
    leaves = {n: t.detach().to(dtype if n not in ("h0", "g") else (torch.float64 if dtype == torch.float64 else torch.float32)).clone().requires_grad_(grads)
              for n, t in x.items() if t is not None}
    args = [leaves["q"], leaves["k"], leaves["v"]] + ([leaves["g"]] if gated else []) + [leaves["beta"]]
    o, s = fn(*args, initial_state=leaves["h0"], output_final_state=True, cu_seqlens=cu)
    out = {"o": o.detach(), "state": s.detach()}
    if grads:
        gen = torch.Generator(device=o.device).manual_seed(seed)
        do = torch.randn(o.shape, device=o.device, generator=gen, dtype=torch.float32)
        ds = torch.randn(s.shape, device=o.device, generator=gen, dtype=torch.float32)
        ((o.float() * do).sum() + (s.float() * ds).sum()).backward()
        out.update({"d" + n: t.grad for n, t in leaves.items()})
    return out


def check(zk, name, B, T, H, K, V, gated, dtype, ref_dtype, cu=None, grads=True, n_states=None, tol=None):
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x = make_inputs(B, T, H, K, V, gated, dtype, dev, n_states=n_states, seed=hash((B, T, H, K, V)) % 1000)
    fn = zk.chunk_gated_delta_rule if gated else zk.chunk_delta_rule
    ref = zk.torch_chunk_gated_delta_rule if gated else zk.torch_chunk_delta_rule
    got = run_op(fn, x, gated, dtype, cu=cu, grads=grads)
    # the reference sees the same rounded inputs
    xr = {n: (t.to(dtype).to(ref_dtype) if n not in ("h0", "g") else t.to(ref_dtype)) if t is not None else None
          for n, t in x.items()}
    want = run_op(ref, xr, gated, ref_dtype, cu=cu, grads=grads)
    errs = {n: rel_rms(got[n], want[n]) for n in want}
    tol = tol or (1e-4 if dtype == torch.float32 else 1e-2)
    ok = all(e == e and e <= tol for e in errs.values())
    worst = max(errs, key=lambda n: errs[n] if errs[n] == errs[n] else float("inf"))
    log(f"check {name}: {'PASS' if ok else 'FAIL'} worst {worst}={errs[worst]:.2e} (tol {tol:g})")
    return {"name": name, "shape": [B, T, H, K, V], "gated": gated, "dtype": str(dtype), "errors": errs,
            "tol": tol, "pass": ok}


def correctness(zk, smoke, quick=False, deadline=float("inf"), ch=None):
    res = []
    bf, f32, f64 = torch.bfloat16, torch.float32, torch.float64
    if quick:  # the real training shape first, plain and gated; fp32 inputs (tf32x3, ieee and one-pass tf32 dots)
        for gated in (False, True):
            res.append(check(zk, f"{'gated ' if gated else ''}real 8x2048x16x128 bf16", 8, 2048, 16, 128, 128,
                             gated, bf, f32))
        for mode in (() if smoke == "quick" else ("tf32x3", "ieee", "tf32")):
            ch.TUNING.clear()
            ch.TUNING["fp32_dot"] = mode
            try:  # one tf32 pass (torch's "high" matmul precision) keeps 10 mantissa bits: bf16-like tolerance
                res.append(check(zk, f"fp32 {mode} B2 T77 H3 K64 V32", 2, 77, 3, 64, 32, True, f32, f64,
                                 tol=3e-3 if mode == "tf32" else None))
            finally:
                ch.TUNING.clear()
        return res
    cases = [
        ("odd B2 T77 H3 K64 V32 fp32", 2, 77, 3, 64, 32, f32, f64),
        ("odd B2 T77 H3 K64 V32 bf16", 2, 77, 3, 64, 32, bf, f64),
        ("T1 K32 V128 fp32", 2, 1, 2, 32, 128, f32, f64),
        ("T130 K128 V64 bf16", 1, 130, 4, 128, 64, bf, f64),
        ("T200 K256 V256 bf16", 1, 200, 2, 256, 256, bf, f64),
        ("T200 K256 V256 fp32", 1, 200, 2, 256, 256, f32, f64),
        ("T300 K64 V256 fp16", 2, 300, 2, 64, 256, torch.float16, f64),
        ("T1000 H16 K128 fp32", 1, 1000, 16, 128, 128, f32, f64),
    ]
    if smoke:
        cases = [("smoke odd", 1, 70, 2, 32, 16, f32, f64), ("smoke bf16", 1, 40, 1, 16, 32, bf, f64)]
    for gated in (False, True):
        if time.time() > deadline:
            return res
        for (name, B, T, H, K, V, dt, rdt) in cases:
            if time.time() > deadline:
                log("correctness: budget reached")
                return res
            try:
                res.append(check(zk, f"{'gated ' if gated else ''}{name}", B, T, H, K, V, gated, dt, rdt))
            except Exception as e:
                log(f"check {name} ERROR {type(e).__name__}: {str(e)[:400]}")
                res.append({"name": name, "gated": gated, "error": traceback.format_exc()[-2000:], "pass": False})
        # varlen: documents of random lengths incl. empty and 1-token ones, per-document states
        try:
            lens = [1, 0, 700, 64, 129, 2000, 63, 555] if not smoke else [5, 0, 64, 1, 30]
            cu = torch.tensor([0] + lens).cumsum(0).to(torch.int32).to("cuda" if torch.cuda.is_available() else "cpu")
            H, D = (8, 128) if not smoke else (1, 16)
            res.append(check(zk, f"{'gated ' if gated else ''}varlen {len(lens)} docs", 1, int(cu[-1]), H, D, D,
                             gated, bf, f64 if smoke else f32, cu=cu, n_states=len(lens)))
        except Exception as e:
            log(f"varlen ERROR {type(e).__name__}: {str(e)[:400]}")
            res.append({"name": "varlen", "gated": gated, "error": traceback.format_exc()[-2000:], "pass": False})
        if smoke:
            continue
        try:  # T = 8192: forward + gradients against the fp32 reference
            res.append(check(zk, f"{'gated ' if gated else ''}T8192 1x8192x16x128 bf16", 1, 8192, 16, 128, 128,
                             gated, bf, f32))
        except Exception as e:
            res.append({"name": "T8192", "gated": gated, "error": traceback.format_exc()[-2000:], "pass": False})
        try:  # T = 65536: finite output, state and gradients
            x = make_inputs(1, 65536, 4, 128, 128, gated, bf, "cuda", seed=7)
            out = run_op(zk.chunk_gated_delta_rule if gated else zk.chunk_delta_rule, x, gated, bf)
            fin = {n: bool(torch.isfinite(t).all()) for n, t in out.items()}
            ok = all(fin.values())
            log(f"check T65536 finite ({'gated' if gated else 'plain'}): {'PASS' if ok else 'FAIL'} {fin}")
            res.append({"name": "T65536 finite", "gated": gated, "finite": fin, "pass": ok})
        except Exception as e:
            res.append({"name": "T65536", "gated": gated, "error": traceback.format_exc()[-2000:], "pass": False})
    return res


def timing_inputs(B, T, H, D, gated):
    x = make_inputs(B, T, H, D, D, gated, torch.bfloat16, "cuda", seed=11)
    leaves = [x[n].detach().clone().requires_grad_() for n in ("q", "k", "v", "beta")]
    if gated:
        leaves.append(x["g"].detach().clone().requires_grad_())
    do = torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16)
    return leaves, do


def time_op(fn, B, T, H, D, gated, fla=False, graph=False):
    """(fwd ms, fwd+bwd ms): eager (do_bench), or CUDA-graph replay when `graph`."""
    leaves, do = timing_inputs(B, T, H, D, gated)
    q, k, v, beta = leaves[:4]

    def call():
        if gated:
            return fn(q, k, v, g=leaves[4], beta=beta) if fla else fn(q, k, v, leaves[4], beta)
        return fn(q, k, v, beta)

    if graph:
        with torch.no_grad():
            f = time_graph([call] * 5)
        fb = time_graph([lambda: torch.autograd.grad(call()[0], leaves, do)] * 5)
        return f, fb
    with torch.no_grad():
        f = ms(call)

    def step():
        call()[0].backward(do)

    fb = ms(step, grad_to_none=leaves)
    return f, fb


def load_fla():
    try:
        from fla.ops.delta_rule import chunk_delta_rule
        import fla
        return chunk_delta_rule, getattr(fla, "__version__", "?")
    except Exception as e:
        log(f"fla not importable: {type(e).__name__}: {e}")
        return None, None


def timings(zk, ch, fla_fn, quick=False):
    rows = []
    runs = [("zoo", zk.chunk_delta_rule, False, False, None),
            ("zoo_gated", zk.chunk_gated_delta_rule, True, False, None),
            ("fla", fla_fn, False, True, None)]
    if not quick:
        runs += [("zoo_" + p, zk.chunk_delta_rule, False, False, p) for p in ("balanced",) if p != ch.DEFAULT_PRECISION]
    for s in SHAPES:
        row = {"shape": list(s)}
        for name, fn, gated, is_fla, preset in runs:
            if fn is None:
                continue
            ch.TUNING.clear()
            if preset:
                ch.TUNING["precision"] = preset
            try:
                row[name + "_fwd"], row[name + "_fb"] = time_op(fn, *s, gated, fla=is_fla)
                row[name + "_gfwd"], row[name + "_gfb"] = time_op(fn, *s, gated, fla=is_fla, graph=True)
            except Exception as e:
                row[name + "_error"] = f"{type(e).__name__}: {str(e)[:300]}"
                log(f"time {name} {s} ERROR {row[name + '_error']}")
            finally:
                ch.TUNING.clear()
        log("time", row)
        rows.append(row)
        torch.cuda.empty_cache()
    return rows


def presets(zk, ch):
    """Errors of each precision preset at real shapes (bf16 against the fp32 reference)."""
    res = []
    for p in ch.PRESETS:
        ch.TUNING.clear()
        ch.TUNING["precision"] = p
        for (B, T, H, D, gated) in ((1, 1000, 16, 128, False), (1, 1000, 16, 128, True)):
            try:
                r = check(zk, f"preset {p} {B}x{T}x{H}x{D}{' gated' if gated else ''}", B, T, H, D, D, gated,
                          torch.bfloat16, torch.float32)
                r["preset"] = p
                res.append(r)
            except Exception:
                res.append({"name": f"preset {p}", "error": traceback.format_exc()[-1500:], "pass": False})
        ch.TUNING.clear()
    return res


def profile_kernels(fn, shape, gated=False, fla=False):
    """CUDA time per kernel name (us per fwd+bwd) over 5 steps."""
    from torch.profiler import ProfilerActivity, profile

    leaves, do = timing_inputs(*shape, gated)
    q, k, v, beta = leaves[:4]

    def step():  # autograd.grad: no .grad accumulation kernels in the profile
        o = (fn(q, k, v, leaves[4], beta) if gated else fn(q, k, v, beta))[0]
        torch.autograd.grad(o, leaves, do)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            step()
        torch.cuda.synchronize()
    out = {}
    for e in prof.key_averages():
        t = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)
        if t:
            out[e.key[:80]] = round(t / 5, 1)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def sweep(zk, ch, budget_end, groups=None, shapes=None, gated=False):
    """Time fwd / fwd+bwd (CUDA-graph replay) under launch-parameter overrides, one knob group at a time."""
    fn = zk.chunk_gated_delta_rule if gated else zk.chunk_delta_rule
    res = []
    knobs = [
        ("solve", [dict(solve_warps=w) for w in (1, 2, 4)]),
        ("fuse_wu", [dict(fuse_wu=f) for f in (False, True)]),  # both paths of the recurrences
        ("keep", [dict(fuse_wu=f, keep_states=True) for f in (False, True)]),  # the backward skips its recompute
        ("overlap", [dict(fuse_wu=f, overlap=o) for f in (False, True) for o in (False, True)]),  # two streams
        ("dh_stages", [dict(bwd_dh_stages=st, bwd_dh_bv=bv) for st, bv in ((1, 32), (2, 16), (2, 64), (3, 32))]),
        ("bwd_stages", [dict(bwd_stages=2), dict(bwd_stages=2, bwd_warps=4), dict(bwd_warps=4)]),
        ("bwd4", [dict(bwd_bv=32), dict(bwd_bk=128, bwd_bv=32), dict(bwd_stages=3)]),  # around 4 warps, 2 stages
        ("wu", [dict(fuse_wu=False, wu_warps=w, wu_stages=st) for w in (4, 8) for st in (1, 2)]),  # unfused only
        ("bwd", [dict(bwd_warps=w, bwd_bk=bk, bwd_bv=bv) for w in (4, 8)
                 for (bk, bv) in ((64, 64), (64, 128), (128, 32), (128, 64))]),  # bk 32: illegal address at K=128
        # 16-wide V blocks last (an illegal address would end the sweep): twice the programs of 32 for few heads
        ("bwd_dh", [dict(bwd_dh_bv=bv, bwd_dh_warps=w) for bv in (32, 64, 16) for w in (4, 8)]
         + [dict(bwd_dh_bv=16, bwd_dh_warps=2)]),
        ("fwd", [dict(fwd_bv=bv, fwd_stages=st) for bv in (32, 64, 16) for st in (1, 2)]
         + [dict(fwd_bv=16, fwd_warps=2, fwd_stages=2)]),
    ]
    knobs = [kv for kv in knobs if groups is None or kv[0] in groups]
    for shape in shapes or (SHAPES[0], SHAPES[2], SHAPES[3]):
        for gname, cfgs in [("default", [{}])] + knobs:
            for cfg in cfgs:
                if time.time() > budget_end:
                    log("sweep: budget reached")
                    return res
                ch.TUNING.clear()
                ch.TUNING.update(cfg)
                try:
                    f, fb = time_op(fn, *shape, gated, graph=True)
                    res.append({"shape": list(shape), "gated": gated, "group": gname, "cfg": cfg, "fwd": f, "fb": fb})
                    log(f"sweep {shape} {cfg}: fwd {f:.3f} fb {fb:.3f}")
                except Exception as e:
                    res.append({"shape": list(shape), "gated": gated, "group": gname, "cfg": cfg,
                                "error": f"{type(e).__name__}: {str(e)[:200]}"})
                    log(f"sweep {shape} {cfg}: ERROR {type(e).__name__}: {str(e)[:200]}")
                finally:
                    ch.TUNING.clear()
    return res


def print_sweep(rows) -> None:
    """The best fwd+bwd of each (shape, knob group) of a sweep."""
    best = {}
    for r in rows:
        if "fb" in r:
            key = (tuple(r["shape"]), r["group"])
            if key not in best or r["fb"] < best[key]["fb"]:
                best[key] = r
    print("\n== sweep: best fwd+bwd per knob group ==")
    for (shape, g), r in best.items():
        print(f"{'x'.join(map(str, shape)):<16} {g:<7} {r['cfg']} fwd {r['fwd']:.3f} fb {r['fb']:.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "bench" / "results" / "kernels"))
    ap.add_argument("--budget", type=float, default=540.0, help="seconds; the sweep stops there")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="real-shape checks, zoo timings and one profile only (short device budgets)")
    ap.add_argument("--smoke", action="store_true", help="tiny CPU shapes under TRITON_INTERPRET=1")
    ap.add_argument("--gate", action="store_true",
                    help="only the real-shape bf16 checks (plain, gated), varlen ones and fp32 at head dim 256 "
                         "(3-pass and 1-pass tf32); exit 1 unless all pass")
    ap.add_argument("--gate-fp32", action="store_true",
                    help="with --gate: only its fp32 head-dim-256 checks (what MQAR's fp32 runs at d_model >= 256 use)")
    ap.add_argument("--sweep-groups", default="", help="with --quick: sweep only these knob groups (comma list)")
    ap.add_argument("--only-sweep", action="store_true", help="the sweep alone (--sweep-groups, --sweep-shapes)")
    ap.add_argument("--sweep-gated", action="store_true", help="sweep the gated rule (default: the plain one)")
    ap.add_argument("--no-fla", action="store_true", help="leave fla-core out (its autotuner takes minutes per shape)")
    ap.add_argument("--only-profile", action="store_true",
                    help="per-kernel CUDA time of one fwd+bwd, zoo beside fla, at --profile-shapes; then stop")
    ap.add_argument("--profile-shapes", default="", help="BxTxHxD shapes for --only-profile (comma list; default: "
                    "DESIGN §9's first), e.g. 8x2048x16x128,1x16384x16x128")
    ap.add_argument("--sweep-shapes", default="", help="BxTxHxD shapes to sweep (comma list; default: three of "
                    "DESIGN §9's), e.g. 1x16384x16x128,2x8192x16x128")
    a = ap.parse_args()
    sweep_shapes = [tuple(int(n) for n in sh.split("x")) for sh in a.sweep_shapes.split(",") if sh] or None
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    zk, ch = load_kernels()
    res = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
           "torch": torch.__version__}
    import triton
    res["triton"] = triton.__version__

    def save():
        (out / "check_kernels_gpu.json").write_text(json.dumps(res, indent=1, default=str))

    log("device", res["device"], "torch", res["torch"], "triton", res["triton"])
    if a.smoke:
        res["correctness"] = correctness(zk, a.smoke)
        save()
        print("smoke:", "PASS" if all(r["pass"] for r in res["correctness"]) else "FAIL")
        return
    if a.gate:
        try:
            res["correctness"] = []
            if not a.gate_fp32:
                res["correctness"] += correctness(zk, "quick", quick=True, ch=ch)
                cu = torch.tensor([0, 1, 700, 764, 2000], device="cuda", dtype=torch.int32)
                for gated in (False, True):
                    res["correctness"].append(check(zk, f"{'gated ' if gated else ''}varlen 4 docs", 1, 2000, 4, 128,
                                                    128, gated, torch.bfloat16, torch.float32, cu=cu, n_states=4))
            # fp32 keys of 256 (MQAR at d_model 256 / 512): the solve in four key slices, and the one-pass
            # recurrences' 16-wide V blocks (with 32 the plain rule's needed more shared memory than sm_90 has)
            for mode, tol in (("tf32x3", None), ("tf32", 3e-3)):
                ch.TUNING["fp32_dot"] = mode
                try:
                    for gated in (False, True):
                        res["correctness"].append(check(zk, f"{'gated ' if gated else ''}fp32 {mode} B2 T200 H2 K256 V256",
                                                        2, 200, 2, 256, 256, gated, torch.float32, torch.float64, tol=tol))
                finally:
                    ch.TUNING.pop("fp32_dot", None)
        except Exception:
            log("gate ERROR", traceback.format_exc()[-800:])
            raise SystemExit(1)
        save()
        ok = all(r["pass"] for r in res["correctness"])
        print("gate:", "PASS" if ok else "FAIL")
        raise SystemExit(0 if ok else 1)
    deadline = T0 + a.budget
    if a.only_profile:
        fla_fn, res["fla_version"] = load_fla() if not a.no_fla else (None, "not loaded (--no-fla)")
        shapes = [tuple(int(n) for n in sh.split("x")) for sh in a.profile_shapes.split(",") if sh] or SHAPES[:1]
        res["profiles"] = {}
        for shape in shapes:
            for who, fn in (("zoo", zk.chunk_delta_rule), ("fla", fla_fn)):
                if fn is not None:
                    res["profiles"][f"{who} {'x'.join(map(str, shape))}"] = profile_kernels(fn, shape)
                    save()
        print("\n== CUDA time per kernel, one fwd+bwd (us) ==")
        for name, kernels in res["profiles"].items():
            print(f"{name}: total {sum(kernels.values()):.0f}; "
                  + ", ".join(f"{k.split('(')[0][:40]} {t:.0f}" for k, t in list(kernels.items())[:8]))
        return
    if a.only_sweep:
        res["sweep"] = sweep(zk, ch, deadline, groups=a.sweep_groups.split(",") if a.sweep_groups else None,
                             shapes=sweep_shapes, gated=a.sweep_gated)
        save()
        print_sweep(res["sweep"])
        return
    try:
        res["correctness"] = correctness(zk, "quick" if a.quick else False, quick=True, ch=ch)
    except Exception:
        res["correctness"] = [{"name": "real shape", "error": traceback.format_exc()[-2000:], "pass": False}]
        log("quick correctness ERROR", res["correctness"][0]["error"][-500:])
    save()
    fla_fn, fla_ver = load_fla() if not a.no_fla else (None, "not loaded (--no-fla)")
    res["fla_version"] = fla_ver
    res["timings"] = timings(zk, ch, fla_fn, quick=a.quick)
    save()
    if a.quick:
        try:
            res["profile_zoo"] = profile_kernels(zk.chunk_delta_rule, SHAPES[0])
            res["profile_zoo_gated"] = profile_kernels(zk.chunk_gated_delta_rule, SHAPES[0], gated=True)
            if fla_fn is not None:
                res["profile_fla"] = profile_kernels(fla_fn, SHAPES[0])
            for key in ("profile_zoo", "profile_zoo_gated", "profile_fla"):
                if key in res:
                    log(key, json.dumps(dict(list(res[key].items())[:10])))
        except Exception:
            res["profile_error"] = traceback.format_exc()[-1500:]
        save()
        if a.sweep_groups:
            res["sweep"] = sweep(zk, ch, deadline, groups=a.sweep_groups.split(","), shapes=sweep_shapes)
            save()
        a.no_sweep = True
    try:
        res["profile_zoo"] = profile_kernels(zk.chunk_delta_rule, SHAPES[0])
        res["profile_zoo_gated"] = profile_kernels(zk.chunk_gated_delta_rule, SHAPES[0], gated=True)
        res["profile_zoo_2x8192"] = profile_kernels(zk.chunk_delta_rule, SHAPES[2])
        if fla_fn is not None:
            res["profile_fla"] = profile_kernels(fla_fn, SHAPES[0])
        for key in ("profile_zoo", "profile_zoo_gated", "profile_zoo_2x8192", "profile_fla"):
            if key in res:
                log(key, json.dumps(dict(list(res[key].items())[:12])))
    except StopIteration:
        pass
    except Exception:
        res["profile_error"] = traceback.format_exc()[-1500:]
        log("profile ERROR", res["profile_error"][-300:])
    save()
    if not a.quick:
        res["correctness"] += correctness(zk, False, deadline=T0 + 0.62 * a.budget)
        save()
        res["presets"] = presets(zk, ch)
        save()
    if not a.no_sweep:
        res["sweep"] = sweep(zk, ch, deadline, shapes=sweep_shapes)
        save()

    # short table last
    print("\n== correctness (rel RMS, worst tensor) ==")
    for r in res["correctness"]:
        if "errors" in r:
            w = max(r["errors"], key=lambda n: r["errors"][n] if r["errors"][n] == r["errors"][n] else 9e9)
            print(f"{'PASS' if r['pass'] else 'FAIL'}  {r['name']:<42} {w:>7} {r['errors'][w]:.2e}")
        else:
            print(f"{'PASS' if r['pass'] else 'FAIL'}  {r['name']:<42} {'gated' if r.get('gated') else ''} {r.get('error', '')[-160:]}")
    print("\n== precision presets (bf16 vs fp32 reference, worst tensor) ==")
    for r in res.get("presets", []):
        if "errors" in r:
            w = max(r["errors"], key=lambda n: r["errors"][n] if r["errors"][n] == r["errors"][n] else 9e9)
            print(f"{'PASS' if r['pass'] else 'FAIL'}  {r['name']:<42} {w:>7} {r['errors'][w]:.2e}")
    print(f"\n== {res['device']} bf16 ms (median), fwd / fwd+bwd; default preset {ch.DEFAULT_PRECISION} ==")
    cols = [c[:-3] for c in res["timings"][0] if c.endswith("_fb")] if res.get("timings") else []
    print(f"{'shape':<16} " + " | ".join(f"{c:>15}" for c in cols) + " | zoo/fla fb")
    for r in res["timings"]:
        f = lambda k: f"{r[k]:.3f}" if k in r else "  -  "  # noqa: E731
        ratio = f"{r['zoo_fb'] / r['fla_fb']:.2f}" if "zoo_fb" in r and "fla_fb" in r else "-"
        print(f"{'x'.join(map(str, r['shape'])):<16} " + " | ".join(f"{f(c + '_fwd')} / {f(c + '_fb')}" for c in cols)
              + f" | {ratio}")
    print("CUDA-graph replay (GPU time only):")
    for r in res["timings"]:
        f = lambda k: f"{r[k]:.3f}" if k in r else "  -  "  # noqa: E731
        ratio = "/".join(f"{r['zoo_' + x] / r['fla_' + x]:.2f}" if "zoo_" + x in r and "fla_" + x in r else "-"
                         for x in ("gfwd", "gfb"))
        print(f"{'x'.join(map(str, r['shape'])):<16} " + " | ".join(f"{f(c + '_gfwd')} / {f(c + '_gfb')}" for c in cols)
              + f" | {ratio}")
    if res.get("sweep"):
        print_sweep(res["sweep"])
    print(f"\nall correctness checks: {'PASS' if all(r['pass'] for r in res['correctness']) else 'FAIL'}; wrote {out}")


if __name__ == "__main__":
    main()
