"""Loss curves from a run's CSV logs → ``loss.png`` (matplotlib, Agg backend, no display needed).

A resumed run appends a new ``logs/csv/version_<n>/metrics.csv``; ``read_metrics`` merges all
versions by step, later versions winning, so the curve is continuous across resumes.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Dict, List, Tuple

Series = Dict[str, List[Tuple[int, float]]]


def read_metrics(run_dir: str | Path, keys: Tuple[str, ...] = ("train/loss", "val/loss")) -> Series:
    """``{key: [(step, value), ...]}`` sorted by step, from every CSV version under ``run_dir/logs/csv``."""
    root = Path(run_dir) / "logs" / "csv"
    versions = sorted(root.glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
    merged: Dict[str, Dict[int, float]] = {k: {} for k in keys}
    for path in versions:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                step = row.get("step")
                if step in (None, ""):
                    continue
                for key in keys:
                    value = row.get(key)
                    if value not in (None, ""):
                        merged[key][int(float(step))] = float(value)
    return {k: sorted(v.items()) for k, v in merged.items()}


def plot_loss(run_dir: str | Path, title: str = "") -> Path:
    """Write ``run_dir/loss.png``: training loss per step and validation loss (atomic replace)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    series = read_metrics(run_dir)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    train, val = series["train/loss"], series["val/loss"]
    if train:
        ax.plot([s for s, _ in train], [v for _, v in train], lw=1.2, label="train loss", color="#1f77b4")
    if val:
        ax.plot([s for s, _ in val], [v for _, v in val], "o-", ms=4, lw=1.5, label="validation loss", color="#d62728")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.set_title(title or run_dir.name)
    ax.grid(alpha=0.3)
    if train or val:
        ax.legend()
    fig.tight_layout()
    out = run_dir / "loss.png"
    tmp = run_dir / f".loss.png.tmp{os.getpid()}.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out)
    return out
