"""Run directories and the ``runs/LATEST`` pointer.

A run written by ``zoo train`` is ``<root>/<name>/`` with ``config.yaml`` (resolved run config),
``model/`` (``config.json``, ``model.safetensors``, ``tokenizer.json``), ``checkpoints/``,
``logs/`` (``csv/version_*/metrics.csv`` and ``tensorboard/``) and ``loss.png``. ``<root>/LATEST``
holds the name of the most recent run; ``zoo eval`` / ``zoo generate`` use it when no run is named.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Optional

from zoo.errors import ZooError

LATEST = "LATEST"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class RunError(ZooError):
    """A missing or malformed run directory; the message says what to do."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace`` (never half-written)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise RunError(f"run name {name!r} is not valid: use letters, digits, '.', '_' and '-' (no '/')")
    return name


def new_run_name(stem: str) -> str:
    """``<recipe stem>-<UTC timestamp>``, e.g. ``hybrid_swa-20261127-043012``."""
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


def set_latest(root: str | Path, name: str) -> None:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / LATEST, name + "\n")


def latest_run(root: str | Path = "runs") -> Path:
    """The directory of the most recent run under ``root`` (read from ``root/LATEST``)."""
    root = Path(root)
    pointer = root / LATEST
    if not pointer.is_file():
        raise RunError(f"no run found: {pointer} does not exist. Train one first (zoo train recipes/hybrid_swa.yaml) "
                       f"or name a run directory explicitly")
    name = pointer.read_text().strip()
    run = root / name
    if not name or not run.is_dir():
        raise RunError(f"{pointer} names run {name!r}, but {run} is not a directory; name a run directory explicitly")
    return run


def latest_checkpoint(run_dir: str | Path) -> Optional[Path]:
    """The newest ``*.ckpt`` in ``run_dir/checkpoints`` by training step (None when there is none)."""
    from zoo.train.checkpoint import list_checkpoints

    ckpts = list_checkpoints(Path(run_dir) / "checkpoints")
    return ckpts[-1] if ckpts else None


def find_resumable(root: str | Path, stem: str) -> Path:
    """The run to continue for ``resume=true`` without a name: LATEST if it came from this recipe,
    else the newest ``<stem>-*`` directory that holds a checkpoint."""
    root = Path(root)
    try:
        run = latest_run(root)
        if run.name.startswith(f"{stem}-") and latest_checkpoint(run) is not None:
            return run
    except RunError:
        pass
    candidates = [p for p in root.glob(f"{stem}-*") if p.is_dir() and latest_checkpoint(p) is not None]
    if not candidates:
        raise RunError(f"resume=true: no run of recipe {stem!r} with a checkpoint under {root}/. "
                       f"Start one without resume, or pass --resume RUN_DIR")
    return max(candidates, key=lambda p: p.stat().st_mtime)
