"""Attention forward+backward on one GPU: sliding-window (W=2048, 512) and global attention across
T = 2K..32K on every available backend of zoo.layers.attention (FlexAttention, flash-attn-4 /
flash-attn 2, SDPA causal as the baseline), all in one run, after correctness checks at real
shapes (bf16 backends vs an fp32 masked-math reference, forward and gradients; the
W-keys-including-self convention; packed documents; the layer's cached decoding).

    python bench/attention.py --out DIR            # on the GPU: writes DIR/attention.json
    python bench/attention.py --render bench/results/attention.json   # -> attention.md beside it

Targets (issue 4): SWA W=2048 grows linearly, t(T=32768) <= 1.2 * 16 * t(T=2048); at T=8192 SWA is
>= 1.5x faster than global attention. Measurements are made in priority order under a time budget
(--budget seconds); anything left out is recorded as skipped, never guessed.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _import_attention():
    """zoo.layers.attention without zoo/layers/__init__ (which pulls the DeltaNet kernels, and the
    GPU machine runs this from a plain checkout where zoo.kernels is not installed)."""
    sys.path.insert(0, str(ROOT))
    if "zoo.layers" not in sys.modules:
        import zoo  # noqa: F401
        pkg = types.ModuleType("zoo.layers")
        pkg.__path__ = [str(ROOT / "zoo" / "layers")]
        sys.modules["zoo.layers"] = pkg
    import zoo.layers.attention as attn
    return attn


def rel_rms(a, b) -> float:
    a, b = a.float(), b.float()
    return ((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt().clamp_min(1e-30)).item()


class Bench:
    def __init__(self, out: Path, budget: float, smoke: bool = False):
        import torch
        self.torch = torch
        self.attn = _import_attention()
        self.out, self.budget, self.t0, self.smoke = out, budget, time.time(), smoke
        self.dev = torch.device("cpu" if smoke else "cuda")
        major = 0 if smoke else torch.cuda.get_device_capability()[0]
        self.major = major
        self.flash_name = None if smoke else self.attn._flash_impl(major)[0]
        # --smoke: the script's logic on the CPU at 1/64 of the lengths (CPU FlexAttention has no backward)
        self.backends = ["sdpa", "math"] if smoke else ["sdpa", "flex"] + (["flash"] if self.flash_name else [])
        self.H, self.D = (2, 16) if smoke else (16, 128)  # the T-scaling sweep's heads, head dim
        self.res = {
            "card": "CPU smoke test (not a benchmark)" if smoke else torch.cuda.get_device_name(),
            "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
            "torch": torch.__version__,
            "triton": _version("triton"),
            "flash": self.flash_name or f"not importable: {self.attn._flash_impl(major)[1][:300]}",
            "flash_version": _version("flash-attn-4") or _version("flash-attn"),
            "scaling": dict(B=1, H=self.H, D=self.D),
            "checks": [], "timings": [], "skipped": [], "errors": [],
        }

    def elapsed(self) -> float:
        return time.time() - self.t0

    def save(self):
        (self.out / "attention.json").write_text(json.dumps(self.res, indent=1))

    # ---------------------------------------------------------------- correctness
    def qkv(self, B, T, H, Hkv, D, grad=True):
        torch = self.torch
        mk = lambda h: torch.randn(B, T, h, D, device=self.dev, dtype=torch.bfloat16).requires_grad_(grad)  # noqa
        return mk(H), mk(Hkv), mk(Hkv)

    def L(self, T):
        """A length of the real plan, divided by 64 under --smoke."""
        return T // 64 if self.smoke else T

    def sync(self):
        if self.dev.type == "cuda":
            self.torch.cuda.synchronize()

    def check(self, name, backend, B, T, H, Hkv, D, W, cu=None):
        """bf16 backend vs fp32 masked math (out, dq, dk, dv) at a real shape."""
        torch, A = self.torch, self.attn
        if self.smoke:
            T, W, H, Hkv, D = self.L(T), W and self.L(W), H // 8, max(1, Hkv // 8), 16
            cu = cu and sorted({c // 64 for c in cu})
        q, k, v = self.qkv(B, T, H, Hkv, D)
        cu_t = None if cu is None else torch.tensor(cu, dtype=torch.int32, device=self.dev)
        qf, kf, vf = (t.detach().float().requires_grad_() for t in (q, k, v))
        ref = A.attention(qf, kf, vf, W, cu_t, backend="math")
        go = torch.randn_like(ref)
        rg = torch.autograd.grad(ref, (qf, kf, vf), go)
        t = time.time()
        out = A.attention(q, k, v, W, cu_t, backend=backend)
        g = torch.autograd.grad(out, (q, k, v), go.bfloat16())
        self.sync()
        row = dict(check=name, backend=self._label(backend), shape=[B, T, H, Hkv, D], window=W,
                   docs=None if cu is None else len(cu) - 1, first_call_s=round(time.time() - t, 2),
                   out=rel_rms(out, ref), dq=rel_rms(g[0], rg[0]), dk=rel_rms(g[1], rg[1]),
                   dv=rel_rms(g[2], rg[2]))
        row["ok"] = max(row["out"], row["dq"], row["dk"], row["dv"]) <= 1e-2
        del ref, rg, qf, kf, vf
        return row

    def pin_window(self, backend):
        """q = 0 -> uniform attention; v = one-hot(position): query i must see keys i-W+1..i."""
        torch, A = self.torch, self.attn
        T = D = 128
        bad = []
        for W in (1, 3, None):
            q = torch.zeros(1, T, 2, D, device=self.dev, dtype=torch.bfloat16)
            k = torch.randn(1, T, 2, D, device=self.dev, dtype=torch.bfloat16)
            v = torch.eye(T, D, device=self.dev, dtype=torch.bfloat16)[None, :, None, :].expand(1, T, 2, D).contiguous()
            with torch.no_grad():
                o = A.attention(q, k, v, W, backend=backend)[0, :, 0].float()
            Wn = W or T
            idx = torch.arange(T, device=self.dev)
            want = (idx[None, :] <= idx[:, None]) & (idx[:, None] - idx[None, :] < Wn)
            if not torch.equal(o > 1e-3, want):
                bad.append(W)
        return dict(check="window = W keys incl. self (W=1,3,global)", backend=self._label(backend),
                    ok=not bad, failing_windows=bad)

    def layer_checks(self):
        """Attention layer (auto backend, bf16): varlen == docs alone; cached decode == full forward."""
        torch, A = self.torch, self.attn
        rows = []
        for W in (None, 64):
            torch.manual_seed(0)
            layer = A.Attention(512, A.AttentionConfig(n_heads=4, n_kv_heads=2, window=W)).to(self.dev, torch.bfloat16)
            x = torch.randn(1, 512, 512, device=self.dev, dtype=torch.bfloat16)
            with torch.no_grad():
                cu = [0, 100, 101, 300, 512]
                y = layer(x, cu_seqlens=torch.tensor(cu, dtype=torch.int32, device=self.dev))
                alone = torch.cat([layer(x[:, a:b]) for a, b in zip(cu[:-1], cu[1:])], 1)
                full = layer(x[:, :200])
                cache = layer.init_cache(1)
                outs = [layer(x[:, :80], cache=cache)] + [layer(x[:, t:t + 1], cache=cache) for t in range(80, 200)]
                dec = torch.cat(outs, 1)
            chosen = A.select_backend("auto", self.dev.type, torch.bfloat16, self.major)
            rows.append(dict(check=f"layer W={W}: cu_seqlens == docs alone", backend=self._label(chosen),
                             rel_rms=rel_rms(y, alone), ok=rel_rms(y, alone) <= 1e-2))
            rows.append(dict(check=f"layer W={W}: prefill 80 + 120 cached steps == full forward",
                             backend=self._label(chosen) + " + cached sdpa", rel_rms=rel_rms(dec, full),
                             ok=rel_rms(dec, full) <= 1e-2))
        return rows

    def _label(self, backend):
        return {"flash": self.flash_name or "flash", "flex": "flex", "sdpa": "sdpa", "math": "math"}[backend]

    def run_checks(self):
        shape = (1, 2048, 16, 16, 128)  # (scaled down inside check() under --smoke)
        plan = []
        for b in self.backends:
            plan.append(("pin", b))
        for W in (None, 2048, 512):
            for b in self.backends:
                plan.append(("dense", b, W))
        for b in self.backends:
            plan.append(("gqa", b))
            plan.append(("varlen", b))
        for item in plan:
            if self.elapsed() > 0.35 * self.budget:
                self.res["skipped"].append(f"check {item}: time budget")
                continue
            try:
                if item[0] == "pin":
                    row = self.pin_window(item[1])
                elif item[0] == "dense":
                    row = self.check("dense", item[1], *shape, item[2])
                elif item[0] == "gqa":
                    row = self.check("GQA 16q/4kv", item[1], 1, 2048, 16, 4, 128, 512)
                else:
                    row = self.check("varlen 4 docs", item[1], 1, 4096, 16, 16, 128, 2048,
                                     cu=[0, 1000, 1001, 2500, 4096])
                self.res["checks"].append(row)
                print("check", row, flush=True)
            except Exception as exc:  # record and go on: one broken backend must not hide the rest
                self.res["errors"].append(f"check {item}: {type(exc).__name__}: {str(exc)[:400]}")
                print("ERROR check", item, exc, flush=True)
            self.save()
        try:
            if self.elapsed() > 0.45 * self.budget:
                raise TimeoutError("time budget")
            for row in self.layer_checks():
                self.res["checks"].append(row)
                print("check", row, flush=True)
        except Exception as exc:
            self.res["errors"].append(f"layer checks: {type(exc).__name__}: {str(exc)[:400]}")
        # a second cu_seqlens at the same length: does FlexAttention recompile per batch?
        if "flex" in self.backends and self.elapsed() < 0.5 * self.budget:
            try:
                q, k, v = self.qkv(1, 4096, 16, 16, 128)
                cu = self.torch.tensor([0, 7, 3000, 4096], dtype=self.torch.int32, device=self.dev)
                t = time.time()
                self.attn.attention(q, k, v, 2048, cu, backend="flex").sum().backward()
                self.sync()
                self.res["flex_new_cu_seqlens_first_call_s"] = round(time.time() - t, 3)
            except Exception as exc:
                self.res["errors"].append(f"flex new cu_seqlens: {type(exc).__name__}: {str(exc)[:300]}")
        self.save()

    # ---------------------------------------------------------------- timing
    def time_fwd_bwd(self, backend, B, T, H, D, W, min_s=0.3):
        torch, A = self.torch, self.attn
        q, k, v = self.qkv(B, T, H, H, D)
        go = torch.randn_like(q)

        def step():
            q.grad = k.grad = v.grad = None
            A.attention(q, k, v, W, None, backend=backend).backward(go)

        def timed():  # ms of one step: CUDA events on the GPU, a wall clock under --smoke
            if self.dev.type != "cuda":
                t = time.perf_counter()
                step()
                return (time.perf_counter() - t) * 1e3
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            step()
            e.record()
            torch.cuda.synchronize()
            return s.elapsed_time(e)

        t = time.time()
        step()
        self.sync()
        first = time.time() - t
        step()
        self.sync()
        est = timed()
        reps = int(min(100, max(5, min_s * 1e3 / max(est, 1e-3))))
        times = [timed() for _ in range(reps)]
        times.sort()
        return dict(ms=times[len(times) // 2], ms_min=times[0], reps=reps, first_call_s=round(first, 2))

    def run_timings(self):
        H, D, L = self.H, self.D, self.L
        swa = [b for b in self.backends if b != "sdpa"]  # SDPA has no window other than a dense mask
        plan = []
        for T in (2048, 8192, 32768, 4096, 16384):  # target-critical lengths first
            plan += [("sdpa", 1, T, None)] + [(b, 1, T, 2048) for b in swa]
            plan += [("flash", 1, T, None)] if "flash" in swa else []
        for T in (2048, 4096, 8192, 16384, 32768):
            plan += [(b, 1, T, 512) for b in swa]
        for T in (2048, 4096, 8192, 16384, 32768):
            plan += [("flex", 1, T, None)] if "flex" in self.backends else []
        table = [(8, 2048, 16, 128, 512), (4, 4096, 16, 128, 2048), (2, 8192, 16, 128, 2048),
                 (8, 2048, 32, 64, 512)]
        for B, T, h, d, W in table:
            plan += [("sdpa", B, T, None, h, d)] + [(b, B, T, W, h, d) for b in swa]
            plan += [("flash", B, T, None, h, d)] if "flash" in swa else []
        for item in plan:
            b, B, T, W = item[:4]
            h, d = item[4:] if len(item) > 4 else (H, D)
            if self.smoke:
                T, W = L(T), W and L(W)
                if len(item) > 4:
                    h, d = max(1, h // 8), 16
            tag = dict(backend=self._label(b), B=B, T=T, H=h, D=d, window=W)
            if self.elapsed() > self.budget:
                self.res["skipped"].append(tag)
                continue
            try:
                tag.update(self.time_fwd_bwd(b, B, T, h, d, W))
                self.res["timings"].append(tag)
                print("time", tag, flush=True)
            except Exception as exc:
                self.res["errors"].append(f"time {tag}: {type(exc).__name__}: {str(exc)[:300]}")
                print("ERROR time", tag, exc, flush=True)
                self.torch.cuda.empty_cache()
            self.save()

    def targets(self):
        t = {(r["backend"], r["B"], r["T"], r["H"], r["window"]): r["ms"] for r in self.res["timings"]}
        out, L, H = {}, self.L, self.H
        for b in sorted({r["backend"] for r in self.res["timings"]}):
            a, z = t.get((b, 1, L(2048), H, L(2048))), t.get((b, 1, L(32768), H, L(2048)))
            if a and z:
                out[f"{b} SWA-2048 linear: t(32K) / (16 t(2K)) <= 1.2"] = dict(
                    value=round(z / (16 * a), 3), ok=z <= 1.2 * 16 * a)
            s8 = t.get((b, 1, L(8192), H, L(2048)))
            if s8:
                for g in ("sdpa", b):
                    g8 = t.get((g, 1, L(8192), H, None))
                    if g8:
                        out[f"{b} SWA-2048 vs {g} global at T=8192: speed-up >= 1.5"] = dict(
                            value=round(g8 / s8, 3), ok=g8 / s8 >= 1.5)
        self.res["targets"] = out
        self.save()
        return out


def _version(dist: str):
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return None


def render(json_path: Path, note: str = "") -> Path:
    """attention.md beside attention.json: checks, timing tables, targets (+ a free-text note)."""
    r = json.loads(json_path.read_text())
    L = [f"# Attention benchmark ({r['card']})", "",
         f"- Date: {r['date_utc']}; torch {r['torch']}, triton {r['triton']}; flash: {r['flash']}"
         + (f" {r['flash_version']}" if r.get("flash_version") else ""),
         f"- Command: `{r['command']}` (one run; every number below, baselines included, comes from it)",
         "- Forward+backward of the attention op alone (bf16, q/k/v [B,T,H,D], MHA), median of CUDA-event "
         "timed steps after warm-up; window W = W keys including the query.", ""]
    if note:
        L += [note, ""]
    L += ["## Targets", "", "| target | value | met |", "|---|---|---|"]
    for k, v in r.get("targets", {}).items():
        L.append(f"| {k} | {v['value']} | {'yes' if v['ok'] else 'NO'} |")
    sc0 = r["scaling"]
    t = {(x["backend"], x["T"], x["window"]): x["ms"] for x in r["timings"]
         if (x["B"], x["H"], x["D"]) == (sc0["B"], sc0["H"], sc0["D"])}
    for b in sorted({k[0] for k in t}):
        T2 = sorted(T for (bb, T, W) in t if bb == b and W == 2048)
        if len(T2) >= 2:  # the last doubling, away from launch overhead at small T
            a, z = t[(b, T2[-2], 2048)], t[(b, T2[-1], 2048)]
            L.append(f"| (info) {b} SWA-2048 t({T2[-1]}) / t({T2[-2]}), linear = {T2[-1] / T2[-2]:.0f} | "
                     f"{z / a:.3f} | |")
    sc = r["scaling"]
    L += ["", f"## Scaling in T (B={sc['B']}, H={sc['H']}, D={sc['D']}), ms", ""]
    is_scaling = lambda x: (x["B"], x["H"], x["D"]) == (sc["B"], sc["H"], sc["D"])  # noqa: E731
    rows = [x for x in r["timings"] if is_scaling(x)]
    cols = sorted({(x["backend"], x["window"] or 0) for x in rows}, key=lambda c: (c[1] == 0, -c[1], c[0]))
    Ts = sorted({x["T"] for x in rows})
    name = lambda c: f"{c[0]} {'global' if c[1] == 0 else 'W=' + str(c[1])}"  # noqa: E731
    L.append("| T | " + " | ".join(name(c) for c in cols) + " |")
    L.append("|---|" + "---|" * len(cols))
    for T in Ts:
        cells = []
        for c in cols:
            m = [x["ms"] for x in rows if x["T"] == T and (x["backend"], x["window"] or 0) == c]
            cells.append(f"{m[0]:.3f}" if m else "—")
        L.append(f"| {T} | " + " | ".join(cells) + " |")
    other = [x for x in r["timings"] if not is_scaling(x)]
    if other:
        L += ["", "## DESIGN §9 shapes, ms", "", "| B×T×H×D | backend | window | ms |", "|---|---|---|---|"]
        for x in other:
            L.append(f"| {x['B']}×{x['T']}×{x['H']}×{x['D']} | {x['backend']} | {x['window'] or 'global'} | {x['ms']:.3f} |")
    L += ["", "## Correctness at real shapes (bf16 vs fp32 masked-math reference, rel. RMS; ok ≤ 1e-2)", "",
          "| check | backend | shape B,T,H,Hkv,D | window | out | dq | dk | dv | ok |", "|---|---|---|---|---|---|---|---|---|"]
    for c in r["checks"]:
        if "dq" in c:
            L.append(f"| {c['check']} | {c['backend']} | {c['shape']} | {c['window']} | {c['out']:.2e} | "
                     f"{c['dq']:.2e} | {c['dk']:.2e} | {c['dv']:.2e} | {'yes' if c['ok'] else 'NO'} |")
        else:
            extra = f"rel RMS {c['rel_rms']:.2e}" if "rel_rms" in c else f"failing W: {c.get('failing_windows')}"
            L.append(f"| {c['check']} | {c['backend']} | | | {extra} | | | | {'yes' if c['ok'] else 'NO'} |")
    if "flex_new_cu_seqlens_first_call_s" in r:
        L += ["", f"FlexAttention with a new cu_seqlens at an already-seen length: first call "
                  f"{r['flex_new_cu_seqlens_first_call_s']} s (fwd+bwd, block mask built; a recompile would take seconds)."]
    probe = json_path.with_name("attention.flex_probe.json")
    if probe.exists():
        pr = json.loads(probe.read_text())
        L += ["", f"## FlexAttention probe (`--flex-probe`, separate run: {pr['card']}, {pr['date_utc']}, "
              f"`{pr['command']}`), SWA W=2048 fwd+bwd, ms", "", "| B×T | variant | ms |", "|---|---|---|"]
        for x in pr["rows"]:
            L.append(f"| {x['B']}×{x['T']} | {x['variant']} | "
                     f"{('%.3f' % x['ms']) if 'ms' in x else x.get('error', x.get('skipped'))} |")
    if r["skipped"]:
        L += ["", f"Skipped for the time budget: {len(r['skipped'])} measurements: "
              + "; ".join(str(s) for s in r["skipped"][:20])]
    if r["errors"]:
        L += ["", "## Errors", ""] + [f"- {e}" for e in r["errors"]]
    md = json_path.with_suffix(".md")
    md.write_text("\n".join(L) + "\n")
    return md


def flex_probe(out: Path, budget: float) -> dict:
    """Where does FlexAttention time go? SWA-2048 fwd+bwd through zoo's wrapper ([B,T,H,D] strided
    views) against the same compiled kernel on contiguous [B,H,T,D] tensors, a contiguous copy
    inside the wrapper, and max-autotune; SDPA causal as the same-run baseline."""
    import torch
    from torch.nn.attention.flex_attention import flex_attention
    A = _import_attention()
    t0, rows = time.time(), []
    dev, H, D, W = torch.device("cuda"), 16, 128, 2048
    tuned = torch.compile(flex_attention, dynamic=False, mode="max-autotune-no-cudagraphs")

    def timeit(step, leaves, reps=30):
        def reset():
            for t in leaves:
                t.grad = None
        for _ in range(2):
            reset()
            step()
        torch.cuda.synchronize()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        ts = []
        for _ in range(reps):
            reset()
            s.record()
            step()
            e.record()
            torch.cuda.synchronize()
            ts.append(s.elapsed_time(e))
        return sorted(ts)[reps // 2]

    for B, T in ((1, 8192), (2, 8192), (1, 32768)):
        mk = lambda *shape: torch.randn(*shape, device=dev, dtype=torch.bfloat16, requires_grad=True)  # noqa
        q, k, v = mk(B, T, H, D), mk(B, T, H, D), mk(B, T, H, D)
        go = torch.randn_like(q)
        qh, kh, vh = (t.detach().transpose(1, 2).contiguous().requires_grad_() for t in (q, k, v))
        goh = go.transpose(1, 2).contiguous()
        bm = A._block_mask(T, A.window_left(W), None, dev)
        fn = A._flex_fn(True)

        def wrapper():
            A.attention(q, k, v, W, backend="flex").backward(go)

        def contiguous_in_wrapper():
            o = fn(*(t.transpose(1, 2).contiguous() for t in (q, k, v)), block_mask=bm)
            o.transpose(1, 2).backward(go)

        def raw():
            fn(qh, kh, vh, block_mask=bm).backward(goh)

        def raw_tuned():
            tuned(qh, kh, vh, block_mask=bm).backward(goh)

        def sdpa():
            A.attention(q, k, v, None, backend="sdpa").backward(go)

        for name, step in (("sdpa causal (global)", sdpa), ("flex via zoo wrapper", wrapper),
                           ("flex, contiguous copies in wrapper", contiguous_in_wrapper),
                           ("flex raw [B,H,T,D]", raw), ("flex raw, max-autotune", raw_tuned)):
            row = dict(B=B, T=T, H=H, D=D, window=None if name.startswith("sdpa") else W, variant=name)
            if time.time() - t0 > budget:
                row["skipped"] = "time budget"
            elif step is raw_tuned and (B, T) != (1, 8192):
                row["skipped"] = "max-autotune tried at 1x8192 only (its tuning takes minutes)"
            else:
                try:
                    t = time.time()
                    row["ms"] = timeit(step, (q, k, v, qh, kh, vh))
                    row["wall_s"] = round(time.time() - t, 1)
                except Exception as exc:
                    row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            rows.append(row)
            print("probe", row, flush=True)
    res = dict(card=torch.cuda.get_device_name(), torch=torch.__version__,
               date_utc=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               command=" ".join([os.path.basename(sys.executable)] + sys.argv), rows=rows)
    (out / "attention.flex_probe.json").write_text(json.dumps(res, indent=1))
    for r in rows:
        print(f"{r['B']}x{r['T']} {r['variant']:38s} {r.get('ms', float('nan')):8.3f} {r.get('error', r.get('skipped', ''))}")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT", "bench/results"), help="folder for attention.json")
    ap.add_argument("--budget", type=float, default=330.0, help="seconds after which no new measurement starts")
    ap.add_argument("--render", type=Path, help="write attention.md from this attention.json and exit")
    ap.add_argument("--note", default="", help="with --render: a paragraph to put under the header")
    ap.add_argument("--smoke", action="store_true", help="check the script's logic on the CPU (tiny shapes)")
    ap.add_argument("--flex-probe", action="store_true", help="only the FlexAttention layout/tuning probe")
    args = ap.parse_args()
    if args.render:
        print(render(args.render, args.note))
        return
    import torch
    if not torch.cuda.is_available() and not args.smoke:
        sys.exit("bench/attention.py needs a CUDA GPU (--smoke checks its logic on the CPU; --render "
                 "formats existing results)")
    import torch._dynamo
    torch._dynamo.config.cache_size_limit = 256  # one compiled graph per (shape, window): many here
    if hasattr(torch._dynamo.config, "recompile_limit"):
        torch._dynamo.config.recompile_limit = 256
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.flex_probe:
        flex_probe(out, args.budget)
        return
    b = Bench(out, args.budget, smoke=args.smoke)
    print("backends:", b.backends, "flash:", b.res["flash"], flush=True)
    b.run_checks()
    b.run_timings()
    tg = b.targets()
    print(f"\n{b.res['card']}  elapsed {b.elapsed():.0f}s  errors {len(b.res['errors'])}  skipped {len(b.res['skipped'])}")
    print(f"{'backend':14s} {'B':>2s} {'T':>6s} {'W':>6s} {'ms':>9s}")
    for x in b.res["timings"]:
        print(f"{x['backend']:14s} {x['B']:2d} {x['T']:6d} {str(x['window'] or '-'):>6s} {x['ms']:9.3f}")
    for c in b.res["checks"]:
        if not c["ok"]:
            print("CHECK FAILED", c)
    for k, v in tg.items():
        print(f"{'MET ' if v['ok'] else 'MISS'} {k}: {v['value']}")


if __name__ == "__main__":
    main()
