"""Decode speed and memory against context length: zoo DeltaNet, hybrid SWA and Transformer
(eager and, where the caches allow, CUDA-graphed decode steps) against fla's DeltaNet model
through Hugging Face ``generate``.

    python3 bench/generate.py --out DIR      # GPU sweep: DIR/generate.json, DIR/generate.md; table last
    python3 bench/generate.py --smoke        # CPU: tiny models, the logic only (no fla, no graphs)
    python3 bench/generate.py --render JSON [--out DIR]   # rewrite generate.md from a generate.json

Needs torch (+ Triton on CUDA) and zoo's own modules; fla's baseline also needs
flash-linear-attention==0.6.0, fla-core==0.6.0, transformers and einops. Imports neither
lm-eval nor the recipe loader; models are built from zoo's config dataclasses.

Models (the paper's 340M shape, bf16): d_model 1024, 24 layers, 8 heads of 128, SwiGLU 2816
(fla's hidden_ratio 4 rule), 32k vocabulary, untied head. ``deltanet`` = delta*24;
``hybrid_swa`` = (delta swa)*12 with a 2048-key window; ``transformer`` = attn*24 (RoPE, MHA).
fla's model is built from ``zoo.interop.fla.zoo_to_fla_config`` of the deltanet config, so both
have the same architecture.

Method, per (model, batch B, context C):
- the cache is brought to C tokens by chunked prefill (4096-token chunks, random tokens) at
  batch 1, then its batch-1 tensors are repeated to B rows (decode cost does not depend on
  what the tokens were); contexts are visited in increasing order, prefilling only the gap;
- decode: greedy steps, each feeding the argmax of the previous step back (the real loop,
  argmax included); ``--warmup`` steps, then ``--steps`` timed with CUDA synchronisation;
  tokens/s = B · steps / seconds;
- ``graph``: the decode step captured once as a CUDA graph and replayed (caches whose tensors
  keep their shapes: the DeltaNet state and conv tails; the attention caches keep positions as
  Python ints, which a graph would freeze, so attention models run eager only). Before timing,
  the graphed steps are checked against eager steps from a copy of the same cache;
- memory: ``cache`` = bytes of every tensor in the model cache at C (the recurrent state is
  constant, the SWA ring is W slots, the KV cache grows); ``peak`` = CUDA peak allocated
  during the timed decode (weights + cache + temporaries);
- fla: one ``generate`` call on a [B, C] prompt for 1 + warmup + steps tokens (min tokens equal,
  so no early stop), with a streamer that stamps the time each new token reaches the host
  (``generate`` copies it there every step, which synchronises); decode tokens/s = B · steps /
  (stamp[warmup + steps] − stamp[warmup]); token 0 comes from the prefill, so the prefill, and
  fla's compiling and autotuning of its chunk kernels for each new prompt length, are outside the
  timed steps (the decode kernels are compiled by an untimed call per batch size); peak = CUDA
  peak of the call (prefill included).
- validity: a time that is not positive and finite, a missing token stamp, or a step over 10× the
  median step (compilation inside the timed steps) is recorded as ``invalid: why`` with no speed;
  the tables show such a point as invalid and the ratios leave it out.
An out-of-memory point is recorded as OOM and the sweep continues. ``--budget S`` counts from the
start of the process: a model whose section would start after it is not built, and a context starts
only while the time left covers the model's previous context; what is left is marked as skipped.
With ``--out``, generate.json and generate.md are rewritten after every row (``complete`` false until
the end), and SIGTERM (``timeout``) stops the sweep with both written and the table printed. The
device is the default CUDA device (CUDA_VISIBLE_DEVICES picks it).
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import platform
import signal
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from _repo import import_zoo

ROOT = Path(__file__).resolve().parents[1]
GiB = 2 ** 30
START = time.time()  # --budget counts from here


class Stopped(BaseException):
    """SIGTERM arrived (the device command's time limit): stop, write what was measured."""


def stop_on_sigterm() -> None:
    def handler(signum, frame):
        raise Stopped(f"signal {signum}")
    signal.signal(signal.SIGTERM, handler)


class Results:
    """Rows and notes of a sweep; with ``out`` set, generate.json / generate.md follow every row."""

    def __init__(self, meta: Dict[str, Any], out: Optional[Path]):
        self.meta, self.out = meta, out
        self.rows: List[dict] = []
        self.notes: List[str] = []

    def add(self, *rows: dict) -> None:
        for row in rows:
            self.rows.append(row)
            print(json.dumps(row), flush=True)
        self.save()

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def result(self, complete: bool = False) -> Dict[str, Any]:
        return {**self.meta, "complete": complete, "notes": self.notes, "rows": self.rows}

    def save(self, complete: bool = False) -> None:
        if self.out:
            result = self.result(complete)
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "generate.json").write_text(json.dumps(result, indent=1) + "\n")
            (self.out / "generate.md").write_text(render(result))


PATTERNS = {"deltanet": "delta*24", "hybrid_swa": "(delta swa)*12", "transformer": "attn*24"}
SMOKE_PATTERNS = {"deltanet": "delta*2", "hybrid_swa": "(delta swa[window=16])", "transformer": "attn*2"}


def zoo_config(pattern: str, smoke: bool, max_ctx: int):
    from zoo.config import ModelConfig
    from zoo.layers.attention import AttentionConfig
    from zoo.layers.deltanet import DeltaNetConfig

    if smoke:
        dims = dict(d_model=64, n_heads=2, vocab_size=256, mlp_hidden=128)
    else:
        dims = dict(d_model=1024, n_heads=8, vocab_size=32000, mlp_hidden=2816)
    return ModelConfig(pattern=pattern, tie_embeddings=False, norm_eps=1e-6, max_seq_len=max_ctx,
                       deltanet=DeltaNetConfig(norm_eps=1e-6), attention=AttentionConfig(backend="sdpa"), **dims)


# ---------------------------------------------------------------------------------------------
# Cache helpers: generic over the per-layer cache objects (their tensor attributes).

def _layer_tensors(cache):
    for layer in cache.layers:
        for name, value in vars(layer).items():
            if isinstance(value, torch.Tensor):
                yield layer, name, value


def cache_bytes(cache) -> int:
    seen, total = set(), 0
    for _, _, t in _layer_tensors(cache):
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total


def replicate(cache, batch: int):
    """A batch-``batch`` copy of a batch-1 model cache: tensors with leading dim 1 are repeated."""
    new = copy.copy(cache)
    new.layers = []
    for layer in cache.layers:
        lc = copy.copy(layer)
        for name, value in vars(layer).items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == 1:
                setattr(lc, name, value.expand(batch, *value.shape[1:]).contiguous())
            elif isinstance(value, torch.Tensor):
                setattr(lc, name, value.clone())
        if hasattr(lc, "batch_size"):
            lc.batch_size = batch
        new.layers.append(lc)
    new.batch_size = batch
    return new


def clone_cache(cache):
    new = copy.copy(cache)
    new.layers = []
    for layer in cache.layers:
        lc = copy.copy(layer)
        for name, value in vars(layer).items():
            if isinstance(value, torch.Tensor):
                setattr(lc, name, value.clone())
        new.layers.append(lc)
    return new


def graphable(cache) -> Optional[str]:
    """None when every layer cache holds only tensors (static shapes); else why not."""
    for layer in cache.layers:
        for name, value in vars(layer).items():
            if isinstance(value, int) and not isinstance(value, bool) and name not in ("batch_size", "chunk", "window"):
                return f"{type(layer).__name__}.{name} is a Python int (positions would be frozen in a graph)"
    return None


class GraphStep:
    """One decode step ``logits = model(tok [B, 1], cache)`` captured as a CUDA graph.

    The layers may update their caches in place or rebind new tensors; after the captured
    forward, rebound tensors are copied back into the buffers the graph reads, inside the graph,
    so each replay continues from the last. ``cache.seen`` is advanced on the host per replay.
    """

    def __init__(self, model, cache, batch: int, warmup: int = 2):
        self.model, self.cache = model, cache
        self.tok = torch.zeros(batch, 1, dtype=torch.long, device=model.embeddings.weight.device)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):  # compiles Triton kernels, settles allocations
                model(self.tok, cache=cache)
        torch.cuda.current_stream().wait_stream(side)
        bufs = list(_layer_tensors(cache))
        seen = cache.seen
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = model(self.tok, cache=cache)[:, -1]
            for layer, name, buf in bufs:
                new = getattr(layer, name)
                if new is not buf:
                    buf.copy_(new)
                    setattr(layer, name, buf)
        cache.seen = seen

    def __call__(self, tok: torch.Tensor) -> torch.Tensor:
        self.tok.copy_(tok)
        self.graph.replay()
        self.cache.seen += 1
        return self.logits


# ---------------------------------------------------------------------------------------------
# Measurements

def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def prefill_to(model, cache, target: int, vocab: int, chunk: int, gen: torch.Generator) -> None:
    device = model.embeddings.weight.device
    while cache.seen < target:
        n = min(chunk, target - cache.seen)
        ids = torch.randint(0, vocab, (1, n), generator=gen).to(device)
        model(ids, cache=cache)


@torch.no_grad()
def decode(step, batch: int, steps: int, warmup: int, device) -> float:
    """Seconds for ``steps`` greedy steps of ``step(tok) -> logits [B, V]`` after ``warmup`` steps."""
    tok = torch.zeros(batch, 1, dtype=torch.long, device=device)
    for _ in range(warmup):
        tok = step(tok).argmax(-1, keepdim=True)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        tok = step(tok).argmax(-1, keepdim=True)
    sync(device)
    return time.perf_counter() - start


def rate(batch: int, steps: int, secs: float) -> Dict[str, Any]:
    """Row fields for ``steps`` decode steps of ``batch`` rows in ``secs`` seconds; a status
    ``invalid: why`` and no numbers when the time is impossible (not positive and finite)."""
    if not (isinstance(secs, (int, float)) and math.isfinite(secs) and secs > 0):
        return {"status": f"invalid: {steps} decode steps timed at {secs!r} s (not a positive time)"}
    return {"status": "ok", "tokens_per_s": batch * steps / secs, "ms_per_step": 1e3 * secs / steps}


MAX_STEP_OVER_MEDIAN = 10.0  # a slower step means compiling or autotuning inside the timed steps


def decode_rate(stamps: List[float], batch: int, steps: int, warmup: int) -> Dict[str, Any]:
    """Row fields from the host times at which generated tokens 0, 1, ... arrived (token 0 from
    the prefill): steps warmup+1 … warmup+steps are timed; invalid if a stamp is missing, a step
    is not positive, or one step is over MAX_STEP_OVER_MEDIAN × the median step."""
    need = 1 + warmup + steps
    if steps < 1:
        return {"status": f"invalid: {steps} timed steps"}
    if len(stamps) != need:
        return {"status": f"invalid: {len(stamps)} token time stamps from generate, expected {need}"}
    gaps = [b - a for a, b in zip(stamps[warmup:-1], stamps[warmup + 1:])]
    median = sorted(gaps)[len(gaps) // 2]
    if min(gaps) <= 0 or median <= 0:
        return {"status": f"invalid: a decode step took {min(gaps):.3g} s (not a positive time)"}
    if max(gaps) > MAX_STEP_OVER_MEDIAN * median:
        return {"status": f"invalid: slowest step {max(gaps):.3g} s is over {MAX_STEP_OVER_MEDIAN:g}× the median "
                          f"{median:.3g} s (compiling or autotuning inside the timed steps)"}
    return {**rate(batch, steps, stamps[-1] - stamps[warmup]), "ms_per_step_max": 1e3 * max(gaps)}


class TokenClock:
    """A ``generate`` streamer: the host time at which each generated token arrives.

    ``generate`` puts the prompt first ([B, C]), then each step's new tokens ([B]); only the
    latter are stamped."""

    def __init__(self, device):
        self.device, self.stamps = device, []

    def put(self, value: torch.Tensor) -> None:
        if value.dim() == 1:
            sync(self.device)
            self.stamps.append(time.perf_counter())

    def end(self) -> None:
        pass


def fla_point(model, ids: torch.Tensor, steps: int, warmup: int, device) -> Dict[str, Any]:
    """Decode speed of ``model.generate`` after the prompt ``ids`` [B, C], from one call of
    1 + warmup + steps tokens timed per token (see decode_rate); peak memory of the call."""
    n = 1 + warmup + steps
    clock = TokenClock(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, use_cache=True, pad_token_id=0,
                         max_new_tokens=n, min_new_tokens=n, streamer=clock)
    if out.shape[1] != ids.shape[1] + n:
        raise RuntimeError(f"generate returned {out.shape[1] - ids.shape[1]} tokens, asked {n}")
    row = decode_rate(clock.stamps, ids.shape[0], steps, warmup)
    if device.type == "cuda":
        row["peak_gib"] = torch.cuda.max_memory_allocated() / GiB
    return row


@torch.no_grad()
def check_graph(model, graph: GraphStep, steps: int = 8) -> Dict[str, Any]:
    """Graph replays vs eager steps from a copy of the same cache: greedy tokens and logits."""
    ref = clone_cache(graph.cache)
    tok_g = tok_e = torch.zeros(graph.tok.shape, dtype=torch.long, device=graph.tok.device)
    same, worst = 0, 0.0
    for _ in range(steps):
        lg = graph(tok_g).clone()
        le = model(tok_e, cache=ref)[:, -1]
        worst = max(worst, float((lg - le).norm() / le.norm().clamp_min(1e-12)))
        tok_g, tok_e = lg.argmax(-1, keepdim=True), le.argmax(-1, keepdim=True)
        same += int(torch.equal(tok_g, tok_e))
        tok_g = tok_e  # keep both on one trajectory
    return {"graph_vs_eager_rel_rms_max": worst, "graph_vs_eager_equal_steps": f"{same}/{steps}"}


@torch.no_grad()
def check_decode(model, vocab: int, device, prompt: int, steps: int = 16) -> Dict[str, Any]:
    """Cached greedy steps vs one full forward over prompt + generated tokens (same dtype)."""
    ids = torch.randint(0, vocab, (1, prompt), generator=torch.Generator().manual_seed(1)).to(device)
    cache = model.init_cache(1)
    logits = model(ids, cache=cache)[:, -1]
    fed, got = [], []
    for _ in range(steps):
        fed.append(logits.argmax(-1, keepdim=True))
        logits = model(fed[-1], cache=cache)[:, -1]
        got.append(logits[0])
    got = torch.stack(got).float()
    want = model(torch.cat([ids] + fed, dim=1))[0, prompt:].float()
    return {"prompt": prompt, "steps": steps,
            "cached_vs_full_rel_rms": float((got - want).norm() / want.norm()),
            "argmax_agree": f"{int((got.argmax(-1) == want.argmax(-1)).sum())}/{steps}"}


def is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def free(device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _skipped(name: str, contexts: List[int], batches: List[int], why: str = "skipped (time budget)") -> List[dict]:
    return [dict(model=name, impl=impl, batch=B, context=C, status=why)
            for C in contexts for B in batches for impl in ("zoo eager", "zoo graph")]


def bench_zoo(name: str, pattern: str, args, device, deadline: float, res: Results) -> None:
    from zoo.model import ZooModel

    if time.time() > deadline:
        res.add(*_skipped(name, args.contexts, args.batches))
        return
    dtype = torch.float32 if args.smoke else torch.bfloat16
    cfg = zoo_config(pattern, args.smoke, max(args.contexts) + args.steps + args.warmup + 64)
    torch.manual_seed(0)
    with torch.device(device):
        model = ZooModel(cfg).to(dtype=dtype).eval()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    res.note(f"zoo {name}: `{pattern}`, {model.num_params() / 1e6:.1f}M params, weights {weights / GiB:.2f} GiB")
    try:
        check = check_decode(model, cfg.vocab_size, device, prompt=40 if args.smoke else 2600)
    except Exception as err:
        check = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
        traceback.print_exc()
    res.add(dict(model=name, impl="zoo cached vs full forward", batch=1, context=check.get("prompt"),
                 status="check", **check))
    free(device)
    gen = torch.Generator().manual_seed(0)
    base = model.init_cache(1, device=device, dtype=dtype)
    why_not = graphable(base)
    use_graph = device.type == "cuda" and not args.no_graphs
    checked = set()
    last = 0.0  # seconds the previous context took: the estimate for the next
    for C in args.contexts:
        if time.time() + last > deadline:
            res.add(*_skipped(name, [C], args.batches))
            continue
        t0 = time.time()
        try:
            prefill_to(model, base, C, cfg.vocab_size, args.chunk, gen)
        except Exception as err:  # OOM at batch 1: nothing larger will fit either
            status = "OOM" if is_oom(err) else f"error: {type(err).__name__}: {err}"
            res.add(*[dict(model=name, impl="zoo eager", batch=B, context=C, status=f"prefill {status}")
                      for B in args.batches])
            free(device)
            break
        for B in args.batches:
            impls = ["zoo eager"] + (["zoo graph"] if use_graph else [])
            for impl in impls:
                row = dict(model=name, impl=impl, batch=B, context=C)
                if impl == "zoo graph" and why_not:
                    row["status"] = f"n/a: {why_not}"
                    res.add(row)
                    continue
                cache = graph = None
                try:
                    cache = replicate(base, B) if B != 1 else clone_cache(base)
                    row["cache_mib"] = cache_bytes(cache) / 2 ** 20
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    if impl == "zoo graph":
                        graph = GraphStep(model, cache, B)
                        if B not in checked:
                            row.update(check_graph(model, graph))
                            checked.add(B)
                        step = graph
                    else:
                        step = (lambda tok, c=cache: model(tok, cache=c)[:, -1])
                    row.update(rate(B, args.steps, decode(step, B, args.steps, args.warmup, device)))
                    if device.type == "cuda":
                        row["peak_gib"] = torch.cuda.max_memory_allocated() / GiB
                except Exception as err:
                    row["status"] = "OOM" if is_oom(err) else f"error: {type(err).__name__}: {str(err)[:300]}"
                    if not is_oom(err):
                        traceback.print_exc()
                del cache, graph
                free(device)
                res.add(row)
        last = time.time() - t0
    del model, base
    free(device)


def bench_fla(args, device, deadline: float, res: Results, batches: List[int]) -> None:
    try:
        from fla.models import DeltaNetConfig, DeltaNetForCausalLM
        import transformers
    except Exception as err:
        res.note(f"fla baseline not run: {type(err).__name__}: {err}")
        return
    from zoo.interop.fla import zoo_to_fla_config

    cfg = zoo_config(PATTERNS["deltanet"], False, max(args.contexts) + 64)
    fcfg = zoo_to_fla_config(cfg)
    fcfg.pop("architectures", None)
    fcfg.pop("model_type", None)  # a class attribute of fla's DeltaNetConfig
    torch.manual_seed(0)
    with torch.device(device):
        model = DeltaNetForCausalLM(DeltaNetConfig(**fcfg)).to(dtype=torch.bfloat16).eval()
    import fla

    res.note(f"fla {getattr(fla, '__version__', '?')} DeltaNetForCausalLM via transformers {transformers.__version__} "
             f"generate: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params; config "
             + json.dumps({k: fcfg[k] for k in ('hidden_size', 'num_hidden_layers', 'num_heads', 'intermediate_size', 'vocab_size') if k in fcfg}))
    gen = torch.Generator().manual_seed(0)
    dead = set()
    last = 0.0  # seconds the previous point took: the estimate for the next
    for B in batches:
        warm = True
        for C in args.contexts:
            row = dict(model="deltanet", impl="fla HF generate", batch=B, context=C)
            if B in dead:
                row["status"] = "skipped (a shorter context ran out of memory)"
            elif time.time() + last > deadline:
                row["status"] = "skipped (time budget)"
            else:
                t0 = time.time()
                try:
                    ids = torch.randint(0, cfg.vocab_size, (B, C), generator=gen).to(device)
                    if warm:  # once per batch size, untimed: the decode kernels compile, cuBLAS plans
                        model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, use_cache=True,
                                       pad_token_id=0, max_new_tokens=2, min_new_tokens=2)
                        warm = False
                    row.update(fla_point(model, ids, args.fla_steps, args.warmup, device))
                    if row["status"] != "ok":
                        print(f"fla B={B} C={C}: {row['status']}", flush=True)
                except Exception as err:
                    row["status"] = "OOM" if is_oom(err) else f"error: {type(err).__name__}: {str(err)[:300]}"
                    if is_oom(err):
                        dead.add(B)
                    else:
                        traceback.print_exc()
                free(device)
                last = time.time() - t0
            res.add(row)
    del model
    free(device)


def cache_table(args) -> str:
    """Markdown: each model's cache size from its mixers' ``cache_bytes`` (computed, on the meta device)."""
    from zoo.model import ZooModel

    patterns = SMOKE_PATTERNS if args.smoke else PATTERNS
    unit, scale = ("KiB", 2 ** 10) if args.smoke else ("MiB", 2 ** 20)
    lines = [f"| model ({unit}) | batch | " + " | ".join(_fmt_ctx(c) for c in args.contexts) + " |\n",
             "|---|---|" + "---|" * len(args.contexts) + "\n"]
    for name in [m for m in args.models.split(",") if m]:
        with torch.device("meta"):
            model = ZooModel(zoo_config(patterns[name], args.smoke, max(args.contexts)))
        for B in args.batches:
            size = [sum(layer.mixer.cache_bytes(B, C, 2) for layer in model.layers) / scale for C in args.contexts]
            lines.append(f"| {name} | {B} | " + " | ".join(f"{m:,.1f}" for m in size) + " |\n")
    return "".join(lines)


# ---------------------------------------------------------------------------------------------
# Report

def _fmt_ctx(c: int) -> str:
    return f"{c // 1024}K" if c >= 1024 and c % 1024 == 0 else str(c)


LEGACY_FLA_INVALID = "autotune inside the timed prefill"


def invalid_timing(row: Dict[str, Any]) -> Optional[str]:
    """Why the row's speed is not a measurement, or None. Besides ``invalid: why`` rows, catches
    rows of older runs that stored an impossible speed as ok: fla's speed then came from
    t(1 + steps) − t(1) of two generate calls, and t(1) held the autotuning for each new prompt
    length, so the difference went negative."""
    status = row.get("status", "")
    if status.startswith("invalid"):
        return status.partition(": ")[2] or status
    tps = row.get("tokens_per_s")
    if status == "ok" and tps is not None and not (math.isfinite(tps) and tps > 0):
        return LEGACY_FLA_INVALID if "prefill_plus_1_s" in row else f"impossible speed {tps:.3g} tokens/s"
    return None


def render(result: Dict[str, Any]) -> str:
    rows, contexts = result["rows"], result["contexts"]
    checks_decode = [r for r in rows if r.get("status") == "check"]
    rows = [r for r in rows if r.get("status") != "check"]
    keys = []
    for r in rows:
        k = (r["model"], r["impl"], r["batch"])
        if k not in keys:
            keys.append(k)

    def cell(k, c, field, fmt):
        r = next((r for r in rows if (r["model"], r["impl"], r["batch"]) == k and r["context"] == c), None)
        if r is None:
            return ""
        why = invalid_timing(r)
        if why and field == "tokens_per_s":
            return f"invalid ({why})"
        if why and field in r:  # memory is measured whatever the timing did
            return fmt(r[field])
        if r.get("status") == "ok" and field not in r:
            return "—"
        if r.get("status") != "ok":
            s = r.get("status", "")
            return "OOM" if "OOM" in s else ("n/a" if s.startswith("n/a") else ("skip" if "skip" in s else ("err" if s else "")))
        return fmt(r[field])

    head = "| model | impl | batch | " + " | ".join(_fmt_ctx(c) for c in contexts) + " |\n"
    rule = "|---|---|---|" + "---|" * len(contexts) + "\n"
    out = [f"Decode tokens/s (batch × steps / s) against context length — {result['device']}\n\n", head, rule]
    if result.get("complete") is False:
        out.insert(0, "**Partial**: the sweep had not finished when this was written (see the notes).\n\n")
    for k in keys:
        out.append(f"| {k[0]} | {k[1]} | {k[2]} | " + " | ".join(cell(k, c, "tokens_per_s", lambda v: f"{v:,.0f}") for c in contexts) + " |\n")
    out += ["\nCache MiB at the context (every tensor of the model cache)\n\n", head, rule]
    for k in keys:
        if k[1] != "zoo eager":
            continue
        out.append(f"| {k[0]} | {k[1]} | {k[2]} | " + " | ".join(cell(k, c, "cache_mib", lambda v: f"{v:,.1f}") for c in contexts) + " |\n")
    out += ["\nPeak GiB allocated while decoding (weights + cache + temporaries; fla: its generate call, prefill included)\n\n", head, rule]
    for k in keys:
        out.append(f"| {k[0]} | {k[1]} | {k[2]} | " + " | ".join(cell(k, c, "peak_gib", lambda v: f"{v:.2f}") for c in contexts) + " |\n")
    checks = [r for r in rows if "graph_vs_eager_equal_steps" in r]
    if checks:
        out.append("\nCUDA graph vs eager (same cache, same tokens): " + "; ".join(
            f"{r['model']} B={r['batch']}: greedy equal {r['graph_vs_eager_equal_steps']}, logits rel-RMS ≤ {r['graph_vs_eager_rel_rms_max']:.1e}"
            for r in checks) + "\n")
    if checks_decode:
        out.append("\nCached decoding vs one full forward (greedy steps after a prompt, logits rel-RMS, argmax agreement): " + "; ".join(
            f"{r['model']}: " + (r["error"] if "error" in r else f"{r['cached_vs_full_rel_rms']:.1e}, {r['argmax_agree']} (prompt {r['prompt']})")
            for r in checks_decode) + "\n")
    bad = {}  # (model, impl, batch, why) -> contexts
    for r in rows:
        if invalid_timing(r):
            bad.setdefault((r["model"], r["impl"], r["batch"], invalid_timing(r)), []).append(_fmt_ctx(r["context"]))
    if bad:
        out.append("\nInvalid timings (no speed shown; left out of the ratios below): " + "; ".join(
            f"{m} {impl} B={b} at {', '.join(cs)}: {why}" for (m, impl, b, why), cs in bad.items()) + "\n")
        if any(k[3] == LEGACY_FLA_INVALID for k in bad):
            out.append("\n(This run timed fla's decode as t(1 + steps) − t(1) of two generate calls; for each new "
                       "prompt length fla compiled and autotuned its chunk kernels inside the timed t(1), so the "
                       "difference went negative. Later runs time each decode step inside one call.)\n")
    speed = {}
    for r in rows:
        if r.get("status") == "ok" and r["model"] == "deltanet" and not invalid_timing(r):
            speed.setdefault((r["impl"], r["batch"]), {})[r["context"]] = r["tokens_per_s"]
    for B in result["batches"]:
        fla_s = speed.get(("fla HF generate", B), {})
        for impl in ("zoo eager", "zoo graph"):
            z = speed.get((impl, B), {})
            both = [c for c in contexts if c in fla_s and c in z]
            if both:
                ratios = [z[c] / fla_s[c] for c in both]
                span = f"{min(ratios):.1f}×" if len(both) == 1 else f"{min(ratios):.1f}×–{max(ratios):.1f}×"
                out.append(f"\ndeltanet {impl} / fla HF generate at batch {B}: {span} "
                           f"over context{'s' * (len(both) > 1)} {', '.join(_fmt_ctx(c) for c in both)}")
    out.append("\n\nNotes:\n" + "".join(f"- {n}\n" for n in result["notes"]))
    return "".join(out)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="folder for generate.json and generate.md")
    ap.add_argument("--smoke", action="store_true", help="CPU logic check with tiny models")
    ap.add_argument("--contexts", type=lambda s: [int(x) for x in s.split(",")], default=None)
    ap.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=None)
    ap.add_argument("--models", default="deltanet,hybrid_swa,transformer")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--fla-steps", type=int, default=16)
    ap.add_argument("--chunk", type=int, default=4096, help="prefill chunk (tokens)")
    ap.add_argument("--budget", type=float, default=400.0, help="seconds before the rest is skipped")
    ap.add_argument("--no-graphs", action="store_true")
    ap.add_argument("--no-fla", action="store_true")
    ap.add_argument("--cache-table", action="store_true",
                    help="print the computed cache sizes (mixers' cache_bytes, bf16) and exit; no GPU needed")
    ap.add_argument("--render", type=Path, metavar="JSON",
                    help="only rewrite generate.md from this generate.json (into --out, else beside it)")
    args = ap.parse_args(argv)
    if args.render:
        result = json.loads(args.render.read_text())
        dst = (args.out or args.render.parent) / "generate.md"
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(render(result))
        print(f"wrote {dst}")
        return result
    if args.smoke:
        args.contexts = args.contexts or [32, 80]
        args.batches = args.batches or [1, 3]
        args.steps, args.warmup, args.chunk, args.no_fla = min(args.steps, 4), 1, 48, True
    else:
        args.contexts = args.contexts or [1024 * 2 ** i for i in range(7)]
        args.batches = args.batches or [1, 64]
    args.contexts = sorted(args.contexts)
    if args.cache_table:
        import_zoo()
        table = cache_table(args)
        print(table)
        return {"cache_table": table}
    with torch.no_grad():
        return run(args)


def run(args) -> Dict[str, Any]:
    device = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    import_zoo()
    deadline = START + args.budget
    patterns = SMOKE_PATTERNS if args.smoke else PATTERNS
    order = [m for m in args.models.split(",") if m]
    for name in order:
        if name not in patterns:
            raise SystemExit(f"unknown model {name!r}; choose from {', '.join(patterns)}")
    meta = {
        "script": "bench/generate.py", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()})",
        "torch": torch.__version__, "python": platform.python_version(), "smoke": args.smoke,
        "contexts": args.contexts, "batches": args.batches, "steps": args.steps, "warmup": args.warmup,
        "fla_steps": args.fla_steps, "budget_s": args.budget,
    }
    try:
        import triton

        meta["triton"] = triton.__version__
    except ImportError:
        pass
    res = Results(meta, args.out)
    fla = "deltanet" in order and not args.no_fla and device.type == "cuda"
    sections = []
    if "deltanet" in order:  # the comparison that matters first: zoo vs fla at batch 1
        sections.append(lambda: bench_zoo("deltanet", patterns["deltanet"], args, device, deadline, res))
        if fla:
            sections.append(lambda: bench_fla(args, device, deadline, res, [b for b in args.batches if b == 1]))
    for name in order:
        if name != "deltanet":
            sections.append(lambda name=name: bench_zoo(name, patterns[name], args, device, deadline, res))
    if fla:  # large-batch fla last: its prefill through HF generate is the slowest part
        sections.append(lambda: bench_fla(args, device, deadline, res, [b for b in args.batches if b != 1]))
    complete = False
    try:
        for section in sections:
            try:
                section()
            except Exception as err:  # one broken section must not lose the others' numbers
                traceback.print_exc()
                res.note(f"a section failed: {type(err).__name__}: {str(err)[:300]}")
                free(device)
            res.save()
        complete = True
    except Stopped as why:
        res.note(f"stopped by {why} after {time.time() - START:.0f}s (time limit); the row in flight is lost")
    res.meta["seconds"] = round(time.time() - START, 1)
    res.save(complete)
    result = res.result(complete)
    print(render(result))
    return result


if __name__ == "__main__":
    stop_on_sigterm()
    main()
