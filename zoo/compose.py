"""`zoo compose`: the resolved per-layer table of a block spec — params, FLOPs/token, cache bytes.

The model is built on the meta device, so parameter counts are those of the real model at any size.
"""
from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, Dict, List

import torch

from zoo.config import ModelConfig
from zoo.model import ZooModel


def compose(config: ModelConfig, context: int, batch_size: int = 1, dtype_bytes: int = 2) -> Dict[str, Any]:
    """Per-layer rows and totals for ``config`` at ``context`` tokens (cache in ``dtype_bytes`` per element)."""
    with torch.device("meta"):
        model = ZooModel(config)
    rows: List[Dict[str, Any]] = []
    for block in model.layers:
        spec, mixer = block.spec, block.mixer
        rows.append({
            "index": spec.index,
            "name": spec.name,
            "mixer": spec.mixer,
            "options": _key_options(spec.config, model.config, spec.mixer),
            "params": sum(p.numel() for p in block.parameters()),
            "flops_per_token": mixer.flops_per_token(config.d_model, context) + block.mlp.flops_per_token(),
            "cache_bytes": mixer.cache_bytes(batch_size, context, dtype_bytes),
        })
    head_flops = 2.0 * config.d_model * config.vocab_size
    embed = model.embeddings.weight.numel()
    head = 0 if config.tie_embeddings else model.lm_head.weight.numel()
    return {
        "pattern": config.pattern,
        "d_model": config.d_model,
        "n_heads": config.n_heads,
        "vocab_size": config.vocab_size,
        "context": context,
        "batch_size": batch_size,
        "layers": rows,
        "totals": {
            "params": model.num_params(),
            "embedding_params": embed,
            "lm_head_params": head,
            "final_norm_params": model.norm.weight.numel(),
            "flops_per_token": sum(r["flops_per_token"] for r in rows) + head_flops,
            "cache_bytes": sum(r["cache_bytes"] for r in rows),
        },
    }


def _key_options(cfg: Any, model: ModelConfig, mixer: str) -> str:
    """The options that differ from the model's defaults for that mixer type, as k=v text.

    The defaults are the type's section with what the spec resolver fills from the model
    (n_heads, head_dim and, where the mixer has one, norm_eps) filled the same way."""
    base = asdict(getattr(model, mixer))
    base["n_heads"] = base["n_heads"] or model.n_heads
    base["head_dim"] = base["head_dim"] or model.d_model // base["n_heads"]
    if "norm_eps" in base and base["norm_eps"] is None:
        base["norm_eps"] = model.norm_eps
    shown = {f.name: getattr(cfg, f.name) for f in fields(cfg) if getattr(cfg, f.name) != base.get(f.name)}
    if mixer == "attention":
        shown.setdefault("window", cfg.window)
        if shown["window"] is None:
            shown["window"] = "global"
    return " ".join(f"{k}={v}" for k, v in shown.items())


def human(n: float, unit: str = "") -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def human_bytes(n: float) -> str:
    for scale, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= scale:
            return f"{n / scale:.2f} {suffix}"
    return f"{n:.0f} B"


def format_table(report: Dict[str, Any]) -> str:
    """A fixed-width text table of ``compose`` output, with a totals line."""
    head = ("#", "type", "options", "params", "FLOPs/tok", f"cache@{report['context']}")
    body = [(str(r["index"] + 1), r["name"], r["options"], human(r["params"]), human(r["flops_per_token"]),
             human_bytes(r["cache_bytes"])) for r in report["layers"]]
    t = report["totals"]
    total = ("", "total", f"{len(body)} layers", human(t["params"]), human(t["flops_per_token"]), human_bytes(t["cache_bytes"]))
    widths = [max(len(row[i]) for row in [head, *body, total]) for i in range(len(head))]
    line = lambda row: "  ".join(c.rjust(w) if i in (0, 3, 4, 5) else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
    rule = "-" * len(line(head))
    counts: Dict[str, int] = {}
    for r in report["layers"]:
        counts[r["name"]] = counts.get(r["name"], 0) + 1
    summary = ", ".join(f"{n} {name}" for name, n in counts.items())
    title = (f"{report['pattern']}  (d_model={report['d_model']}, heads={report['n_heads']}, vocab={report['vocab_size']}; "
             f"{summary}; params {t['params']:,} incl. embeddings {t['embedding_params']:,})")
    return "\n".join([title, line(head), rule, *map(line, body), rule, line(total)])
