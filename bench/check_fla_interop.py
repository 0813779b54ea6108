"""Does `zoo import` reproduce fla 0.6.0 models? Logits and greedy decoding, side by side on one GPU.

    python3 bench/check_fla_interop.py --out DIR                 # GPU: DIR/fla_interop.{json,md}, table last
    python3 bench/check_fla_interop.py --cpu-interpret --out DIR # CPU: DIR/fla_interop_cpu.{json,md}

``--cpu-interpret`` runs fla's Triton kernels through the Triton interpreter on CPU tensors
(TRITON_INTERPRET=1; the autotuner's timing is replaced by a constant, so each kernel takes its
first config), fp32 only, at smaller sizes (d=64, T=80, B=1, 12 greedy tokens): slow, but it needs
no GPU and runs fla's own model and kernel code.

Needs flash-linear-attention==0.6.0 + fla-core==0.6.0 (and transformers, einops) importable.
Give the GPU run a few minutes per case (with `--fla-autotune full`, fla compiles and times many Triton configs on
first use. Progress lines go to stdout unbuffered only if nothing buffers them: do not pipe the
command through grep (a run killed at its limit then loses all output).

For each case (DeltaNet; DeltaNet with output gate, expand_k=0.5, expand_v=2 and tied embeddings;
Gated DeltaNet; a DeltaNet hybrid with global GQA attention at layers 1 and 4 and a 32-key sliding
window at layer 3; a Gated DeltaNet hybrid with attention at layer 2):
1. build the fla model from its config class, re-draw every weight at O(1) scale (fla's own init,
   std 0.02 with unit norms, gives near-uniform logits that say little): linears N(0, 1/fan_in),
   residual outputs (o_proj, down_proj) times 1/sqrt(2L), logits of std about 3; save_pretrained;
2. `zoo.interop.fla.import_fla` into a zoo run directory; ZooModel.from_pretrained;
3. logits on random tokens (GPU: B=2, T=200, several 64-token chunks, so fla takes its chunk path):
   zoo vs fla in fp32 (gate 1e-4) and bf16 (gate 1e-2), relative RMS ||a-b||/||b||; and each
   against zoo's CPU float32 PyTorch path as a device-independent reference;
4. greedy continuation of 64 tokens after a 16-token prompt (GPU), fp32 and bf16: fla with its cache
   (prefill, then one token per step), zoo with ZooModel.generate; the count of leading equal tokens;
5. `zoo.interop.fla.export_fla` of the imported run, loaded back with fla's from_pretrained: every
   tensor of its state dict must equal the original fla model's.

fp32 runs with TRITON_F32_DEFAULT=ieee, so neither library's Triton dots drop to TF32.
fla's autotuner is told every config times the same (``--fla-autotune first``, the default), so
each kernel compiles and runs its first config only: this checks values, not speed, and fla's full
autotune took ~6 min for one Gated DeltaNet case on an H100 (``--fla-autotune full`` restores it).
Time: ``--budget S`` (from the start of main): a case starts only while the time left covers the
previous case's duration; the rest are recorded as skipped. DIR/<stem>.json is rewritten after
every case; SIGTERM (``timeout``) stops the run with the json, the md and the table written. GPU
runs use the default CUDA device (CUDA_VISIBLE_DEVICES picks it).
The GPU image has no flash-attn, which fla's Attention layer requires at construction; this
script then installs a stand-in ``flash_attn`` module (flash_attn_func / flash_attn_varlen_func
as masked float32 softmax with flash-attn's bottom-right causal alignment and window_size=(W-1, 0))
and says so in the results. fla's path per dtype is the first that runs of: its configured Triton
kernels (chunk mode for T > 64); its Triton fused_recurrent kernels (fla 0.6.0's chunk_delta_rule
asserts that it does not support float32); its model with fla's own naive recurrent ops
(fla.ops.*.naive) swapped in for the kernels. Each refusal is recorded.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TRITON_F32_DEFAULT", "ieee")
INTERPRET = "--cpu-interpret" in sys.argv
if INTERPRET:  # must precede the first import of triton
    os.environ["TRITON_INTERPRET"] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import types  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from _repo import import_zoo  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZES = {
    "gpu": dict(T=200, B=2, prompt=16, new=64, hidden=256, heads=4, head_dim=64, vocab=1024, window=32,
                dtypes=("fp32", "bf16")),
    "cpu-interpret": dict(T=80, B=1, prompt=8, new=12, hidden=64, heads=2, head_dim=32, vocab=128, window=16,
                          dtypes=("fp32",)),  # the interpreter's bf16 dots are not trustworthy
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
GATES = {"fp32": 1e-4, "bf16": 1e-2}


class Stopped(BaseException):
    """SIGTERM arrived (the device command's time limit): stop, write what was checked."""


def _stop(signum, frame):
    raise Stopped(f"signal {signum}")


# ---------------------------------------------------------------------------------------------
# Stand-ins used only where the real piece is missing or refuses to run


def _flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1), **kw):
    """flash-attn's dense entry: q [B,Tq,H,D], k/v [B,Tk,Hkv,D]; causal aligned bottom-right."""
    B, Tq, H, D = q.shape
    Tk, Hkv = k.shape[1], k.shape[2]
    scale = D ** -0.5 if softmax_scale is None else softmax_scale
    kf = k.float().repeat_interleave(H // Hkv, dim=2)
    vf = v.float().repeat_interleave(H // Hkv, dim=2)
    s = torch.einsum("bqhd,bkhd->bhqk", q.float(), kf) * scale
    i = torch.arange(Tq, device=q.device)[:, None] + (Tk - Tq)
    j = torch.arange(Tk, device=q.device)[None, :]
    ok = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device)
    if causal:
        ok &= j <= i
    left = window_size[0]
    if left >= 0:
        ok &= j >= i - left
    s = s.masked_fill(~ok, float("-inf"))
    return torch.einsum("bhqk,bkhd->bqhd", s.softmax(-1), vf).to(q.dtype)


def _flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None, **kw):
    outs = []
    for n in range(len(cu_seqlens_q) - 1):
        a, b = int(cu_seqlens_q[n]), int(cu_seqlens_q[n + 1])
        c, d = int(cu_seqlens_k[n]), int(cu_seqlens_k[n + 1])
        outs.append(_flash_attn_func(q[None, a:b], k[None, c:d], v[None, c:d], **kw)[0])
    return torch.cat(outs)


def ensure_flash_attn() -> str:
    try:
        import flash_attn  # noqa: F401
        return f"flash-attn {getattr(flash_attn, '__version__', '?')}"
    except ImportError:
        # transformers probes for flash_attn when these load: let it see none, then add the stand-in
        import importlib.machinery
        import transformers.activations  # noqa: F401
        import transformers.modeling_utils  # noqa: F401

        shim = types.ModuleType("flash_attn")
        shim.__spec__ = importlib.machinery.ModuleSpec("flash_attn", None)
        shim.flash_attn_func, shim.flash_attn_varlen_func = _flash_attn_func, _flash_attn_varlen_func
        shim.__version__ = "stand-in (bench/check_fla_interop.py)"
        sys.modules["flash_attn"] = shim
        return "stand-in: masked fp32 softmax (no flash-attn on this machine)"


@contextlib.contextmanager
def fla_naive_ops():
    """Within the block, fla's layer modules call fla's own naive recurrent references instead of
    their delta-rule kernels (restored afterwards)."""
    import fla.layers.delta_net as ldn
    import fla.layers.gated_deltanet as lgdn
    from fla.ops.delta_rule.naive import delta_rule_recurrence
    from fla.ops.gated_delta_rule.gate import naive_gdn_gate
    from fla.ops.gated_delta_rule.naive import naive_recurrent_gated_delta_rule

    def l2(x):
        x = x.float()
        return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + 1e-6)

    def gated(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None,
              use_qk_l2norm_in_kernel=False, use_beta_sigmoid_in_kernel=False, use_gate_in_kernel=False,
              A_log=None, dt_bias=None, allow_neg_eigval=False, state_v_first=False, **kw):
        assert cu_seqlens is None and not allow_neg_eigval
        dtype = q.dtype
        if use_qk_l2norm_in_kernel:
            q, k = l2(q), l2(k)
        beta = beta.float().sigmoid() if use_beta_sigmoid_in_kernel else beta.float()
        g = naive_gdn_gate(g, A_log, dt_bias) if use_gate_in_kernel else g.float()
        h0 = initial_state.transpose(-1, -2) if (initial_state is not None and state_v_first) else initial_state
        o, ht = naive_recurrent_gated_delta_rule(q, k, v, beta, g, scale, h0, output_final_state)
        if ht is not None and state_v_first:
            ht = ht.transpose(-1, -2)
        return o.to(dtype), ht

    def plain(q, k, v, beta, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None,
              use_qk_l2norm_in_kernel=False, **kw):
        assert cu_seqlens is None
        dtype = q.dtype
        if use_qk_l2norm_in_kernel:
            q, k = l2(q), l2(k)
        q, k, v, beta = (x.float().transpose(1, 2) for x in (q, k, v, beta))  # its layout is [B, H, T, ...]
        o, ht = delta_rule_recurrence(q, k, v, beta, initial_state, output_final_state)
        return o.transpose(1, 2).to(dtype), ht

    names = ((lgdn, "chunk_gated_delta_rule", gated), (lgdn, "fused_recurrent_gated_delta_rule", gated),
             (ldn, "chunk_delta_rule", plain), (ldn, "fused_recurrent_delta_rule", plain))
    saved = [(mod, attr, getattr(mod, attr)) for mod, attr, _ in names]
    for mod, attr, fn in names:
        setattr(mod, attr, fn)
    try:
        yield
    finally:
        for mod, attr, fn in saved:
            setattr(mod, attr, fn)


# ---------------------------------------------------------------------------------------------
# Cases

def cases(S: dict) -> list:
    base = dict(hidden_size=S["hidden"], num_heads=S["heads"], num_hidden_layers=4, vocab_size=S["vocab"],
                fuse_cross_entropy=False)
    H = S["heads"]
    return [
        ("deltanet", "delta_net", dict(base)),
        ("gated_deltanet", "gated_deltanet", dict(base, head_dim=S["head_dim"], expand_v=2.0)),
        ("deltanet_hybrid", "delta_net", dict(base, num_hidden_layers=6, attn=[
            {"layers": [1, 4], "num_heads": H, "num_kv_heads": H // 2},
            {"layers": [3], "num_heads": H, "window_size": S["window"]}])),
        ("gated_deltanet_hybrid", "gated_deltanet", dict(base, head_dim=S["head_dim"], expand_v=1.0,
                                                         attn={"layers": [2], "num_heads": 2 * H})),
        ("deltanet_gate_expand_tied", "delta_net", dict(base, use_gate=True, expand_k=0.5, expand_v=2.0,
                                                         tie_word_embeddings=True)),
    ]


def set_fla_mode(model, mode):
    """Force fla's DeltaNet/GatedDeltaNet layers to a kernel mode (None: back to the config's)."""
    for m in model.modules():
        if type(m).__name__ in ("DeltaNet", "GatedDeltaNet") and hasattr(m, "mode"):
            if not hasattr(m, "_configured_mode"):
                m._configured_mode = m.mode
            m.mode = mode or m._configured_mode


def build_fla(model_type: str, kw: dict, seed: int):
    from fla.models import DeltaNetConfig, DeltaNetForCausalLM, GatedDeltaNetConfig, GatedDeltaNetForCausalLM

    cfg_cls, model_cls = {"delta_net": (DeltaNetConfig, DeltaNetForCausalLM),
                          "gated_deltanet": (GatedDeltaNetConfig, GatedDeltaNetForCausalLM)}[model_type]
    torch.manual_seed(seed)
    model = model_cls(cfg_cls(**kw)).float().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("A_log", "dt_bias")):
                continue  # fla's own random init of the decay parameters
            if p.dim() == 1:  # norm weights
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif "conv1d" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif "embeddings" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:  # residual-branch outputs scaled by 1/sqrt(2L), as in GPT-2-style inits
                scale = 3.0 if name == "lm_head.weight" else 1.0
                if name.endswith(("o_proj.weight", "down_proj.weight")):
                    scale = (2 * kw["num_hidden_layers"]) ** -0.5
                p.copy_(scale * torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)
        if kw.get("tie_word_embeddings"):  # logits = norm(h) . E: keep their scale near the untied 3
            model.model.norm.weight.mul_(3.0 / kw["hidden_size"] ** 0.5)
    return model


def rel_rms(a, b) -> float:
    a, b = a.double(), b.double()
    if not torch.isfinite(a).all():
        return float("nan")
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def fla_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids, use_cache=False).logits.float()


def fla_greedy(model, prompt, n):
    with torch.no_grad():
        out = model(input_ids=prompt, use_cache=True)
        cache, tokens = out.past_key_values, []
        tok = out.logits[:, -1].argmax(-1)
        for _ in range(n):
            tokens.append(tok)
            if len(tokens) == n:
                break
            out = model(input_ids=tok[:, None], past_key_values=cache, use_cache=True)
            cache, tok = out.past_key_values, out.logits[:, -1].argmax(-1)
    return torch.stack(tokens, 1)


def leading_equal(a, b) -> int:
    diff = (a != b).flatten().nonzero()
    return int(diff[0]) if len(diff) else a.numel()


def run_case(name, model_type, kw, work: Path, device: str, zoo_device: str, S: dict) -> dict:
    from zoo.interop.fla import export_fla, import_fla
    from zoo.model import ZooModel

    t0 = time.time()

    def progress(what: str) -> None:
        print(f"  [{name}] {time.time() - t0:6.1f} s  {what}", flush=True)

    row = {"case": name, "model_type": model_type, "fla_config": kw}
    fla_model = build_fla(model_type, kw, seed=len(name))
    src, run = work / f"{name}_fla", work / f"{name}_zoo"
    fla_model.save_pretrained(src)
    result = import_fla(src, run)
    row.update(pattern=result.pattern, params=result.n_params, notices=result.notices)
    # and back: `zoo export` output loads in fla (transformers from_pretrained) with identical weights
    export_fla(run, work / f"{name}_back")
    back = type(fla_model).from_pretrained(work / f"{name}_back")
    ref_state, back_state = fla_model.state_dict(), back.state_dict()
    row["export_loads_in_fla_identical"] = ref_state.keys() == back_state.keys() and all(
        torch.equal(ref_state[k], back_state[k]) for k in ref_state)
    del back

    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, kw["vocab_size"], (S["B"], S["T"]), generator=g)
    prompt = torch.randint(0, kw["vocab_size"], (1, S["prompt"]), generator=g)
    ref_model = ZooModel.from_pretrained(run / "model").eval()
    with torch.no_grad():
        ref = ref_model(ids)
    row["zoo_cpu_fp32_finite"] = bool(torch.isfinite(ref).all())
    del ref_model
    progress("built, saved, imported, exported back; zoo CPU reference done")

    for tag in S["dtypes"]:
        dtype = DTYPES[tag]
        zoo_model = ZooModel.from_pretrained(run / "model", device=zoo_device, dtype=dtype).eval()
        for m in zoo_model.modules():
            if hasattr(m, "backend") and hasattr(m, "window"):
                m.backend = "sdpa"  # interop check, not a backend check: no FlexAttention compile here
        with torch.no_grad():
            z = zoo_model(ids.to(zoo_device)).cpu()
        zoo_tokens = zoo_model.generate(prompt.to(zoo_device), S["new"])[:, S["prompt"]:].cpu()
        row[f"zoo_{tag}_vs_zoo_cpu_fp32"] = rel_rms(z, ref)
        progress(f"zoo {tag} on {zoo_device}: logits and greedy done")
        fla_dev = fla_model.to(device=device, dtype=dtype)
        errors = []
        for path in ("triton", "triton fused_recurrent", "naive ops"):
            set_fla_mode(fla_dev, "fused_recurrent" if path == "triton fused_recurrent" else None)
            try:
                with fla_naive_ops() if path == "naive ops" else contextlib.nullcontext():
                    f = fla_logits(fla_dev, ids.to(device)).cpu()
                    fla_tokens = fla_greedy(fla_dev, prompt.to(device), S["new"]).cpu()
                break
            except Exception as err:  # fla refuses (e.g. fp32 chunk_delta_rule) or fails: next path
                errors.append(f"{path}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
                if path == "naive ops":
                    raise
        set_fla_mode(fla_dev, None)
        progress(f"fla {tag} ({path}): logits and greedy done")
        if errors:
            row[f"fla_{tag}_errors"] = errors
        row[f"fla_{tag}_path"] = path
        row[f"fla_{tag}_vs_zoo_cpu_fp32"] = rel_rms(f, ref)
        row[f"zoo_vs_fla_{tag}"] = rel_rms(z, f)
        row[f"greedy_{tag}_equal"] = leading_equal(zoo_tokens, fla_tokens)
        row[f"pass_{tag}"] = row[f"zoo_vs_fla_{tag}"] <= GATES[tag]
        del zoo_model
    fla_model.to("cpu", torch.float32)
    return row


def table(rows, S: dict) -> str:
    tags = S["dtypes"]
    cols = ([f"zoo vs fla {t} (≤{GATES[t]:.0e})" for t in tags] + ["zoo fp32 vs ref"]
            + [f"fla {t} vs ref" for t in tags if t != "fp32"] + [f"zoo {t} vs ref" for t in tags if t != "fp32"]
            + [f"greedy {t} equal /{S['new']}" for t in tags] + ["export -> fla identical", "fla path", "pass"])
    lines = ["| case | pattern | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | error: {r['error']} |" + " |" * len(cols))
            continue
        cells = ([f"{r[f'zoo_vs_fla_{t}']:.2e}" for t in tags] + [f"{r['zoo_fp32_vs_zoo_cpu_fp32']:.2e}"]
                 + [f"{r[f'fla_{t}_vs_zoo_cpu_fp32']:.2e}" for t in tags if t != "fp32"]
                 + [f"{r[f'zoo_{t}_vs_zoo_cpu_fp32']:.2e}" for t in tags if t != "fp32"]
                 + [str(r[f"greedy_{t}_equal"]) for t in tags]
                 + ["yes" if r["export_loads_in_fla_identical"] else "NO"]
                 + [" / ".join(r[f"fla_{t}_path"] for t in tags),
                    "yes" if all(r[f"pass_{t}"] for t in tags) and r["export_loads_in_fla_identical"] else "NO"])
        lines.append(f"| {r['case']} | `{r['pattern']}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="Directory for fla_interop[_cpu].json / .md")
    ap.add_argument("--cpu-interpret", action="store_true",
                    help="CPU: fla's kernels under the Triton interpreter, fp32, small sizes")
    ap.add_argument("--budget", type=float, default=480.0, help="Seconds after which remaining cases are skipped")
    ap.add_argument("--cases", default="", help="comma list of case names to run (default: all, in order)")
    ap.add_argument("--fla-autotune", choices=("first", "full"), default="first",
                    help="first: every Triton autotuner takes its first config (values only; minutes faster)")
    args = ap.parse_args()
    started = time.time()
    zoo = import_zoo()
    attn_backend = ensure_flash_attn()
    import fla
    import transformers
    import triton

    mode = "cpu-interpret" if args.cpu_interpret else "gpu"
    S = SIZES[mode]
    stem = "fla_interop" if mode == "gpu" else "fla_interop_cpu"
    cuda = mode == "gpu"
    if cuda and not torch.cuda.is_available():
        sys.exit("no CUDA device: fla's kernels need one (--cpu-interpret runs them through the Triton interpreter)")
    if not cuda or args.fla_autotune == "first":
        # every config times the same, so the first is taken (the interpreter has no benchmarker)
        import triton.runtime.autotuner as autotuner

        autotuner.Autotuner.do_bench = staticmethod(lambda fn, quantiles=None, **kw: [1.0] * 3 if quantiles else 1.0)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    have_zoo_kernels = all(hasattr(zoo.kernels, f) for f in ("chunk_delta_rule", "chunk_gated_delta_rule",
                                                              "fused_recurrent_delta_rule",
                                                              "fused_recurrent_gated_delta_rule"))
    device = "cuda" if cuda else "cpu"
    zoo_device = "cuda" if cuda and have_zoo_kernels else "cpu"
    env = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python3 " + " ".join([f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
        "card": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "torch": torch.__version__, "triton": triton.__version__, "transformers": transformers.__version__,
        "fla": getattr(fla, "__version__", "?"), "python": platform.python_version(),
        "fla_attention_backend": attn_backend, "zoo_device": zoo_device,
        "zoo_triton_kernels": have_zoo_kernels, "TRITON_F32_DEFAULT": os.environ.get("TRITON_F32_DEFAULT"),
        "mode": mode, "sizes": S, "fla_autotune": "first" if not cuda else args.fla_autotune,
    }
    print(json.dumps(env, indent=1), flush=True)
    if args.out:  # written first, so even a run killed in its first case leaves a record
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{stem}.json").write_text(json.dumps({"env": env, "rows": []}, indent=1))
    rows = []
    work = Path(tempfile.mkdtemp(prefix="fla_interop_"))
    last = 0.0  # seconds the previous case took: the estimate for the next
    stopped = ""
    try:
        known = [c[0] for c in cases(S)]
        wanted = [c for c in args.cases.split(",") if c] or known
        if set(wanted) - set(known):
            sys.exit(f"unknown case(s) {sorted(set(wanted) - set(known))}; the cases are {', '.join(known)}")
        for name, model_type, kw in (c for c in cases(S) if c[0] in wanted):
            t0 = time.time()
            if t0 + last - started > args.budget:
                rows.append({"case": name, "error": f"skipped: {args.budget - (t0 - started):.0f} s of the "
                                                    f"{args.budget:.0f} s budget left, the last case took {last:.0f} s"})
                continue
            try:
                row = run_case(name, model_type, kw, work, device, zoo_device, S)
            except Exception as err:
                traceback.print_exc()
                row = {"case": name, "error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}
            row["seconds"] = round(time.time() - t0, 1)
            last = row["seconds"]
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:  # partial results survive a timeout
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / f"{stem}.json").write_text(json.dumps({"env": env, "rows": rows}, indent=1))
    except Stopped as why:
        stopped = f"- stopped by {why} after {time.time() - started:.0f} s (time limit); the case in flight is lost"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    md = table(rows, S)
    notes = [f"- card: {env['card']}; {env['date_utc']}; torch {env['torch']}, triton {env['triton']}, "
             f"transformers {env['transformers']}, fla {env['fla']}",
             f"- command: `{env['command']}`",
             f"- zoo ran on {zoo_device} ({'its Triton kernels' if zoo_device == 'cuda' else 'its PyTorch chunkwise path'});"
             f" fla's attention layers used: {attn_backend}",
             f"- ref = zoo's CPU float32 PyTorch path; relative RMS ||a-b||/||b|| of logits [{S['B']}, {S['T']}, "
             f"{S['vocab']}]; greedy: leading equal tokens of {S['new']} after a {S['prompt']}-token prompt "
             "(fla: prefill then cached one-token steps; zoo: ZooModel.generate)",
             f"- total {time.time() - started:.0f} s"] + ([stopped] if stopped else [])
    for r in rows:
        for key, val in r.items():
            if key.endswith("_errors"):
                notes.append(f"- {r['case']}, fla {key.split('_')[1]}: " + "; ".join(val))
    title = "on one GPU" if cuda else "on CPU, fla's Triton kernels interpreted"
    text = f"# fla 0.6.0 -> zoo import check ({title})\n\n" + md + "\n" + "\n".join(notes) + "\n"
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{stem}.json").write_text(json.dumps({"env": env, "rows": rows}, indent=1))
        (args.out / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)
    main()
