"""Offline mirrors of lm-eval's swde, fda and squad_completion tasks over local JSON files.

Each mirror subclasses lm-eval's own task class and replaces only where the documents come
from, so prompts (``doc["text"].strip()``), targets, requests and the ``contains`` metric are
lm-eval's code, unchanged. squad_completion's generation settings are pinned to the paper's
(stop at "\\n", 48 tokens), as ``zoo eval`` does for the online task.

A data file is a JSON array of rows with the real dataset's columns (see ``tasks.SCHEMAS``):
``<dir>/swde.json``, ``<dir>/fda.json``, ``<dir>/squad_completion.json``.
Two sources, chosen by the task YAML (``metadata.zoo_source``):

- ``offline``: the directory ``zoo eval download DIR`` filled while online — the task
  metadata key ``zoo_eval_data`` (``zoo eval --data-dir`` or lm-eval's ``--metadata``), else
  ``$ZOO_EVAL_DATA``, else ``~/.cache/zoo/eval-data``.
- ``sample``: the few synthetic documents shipped in ``eval/data`` (SAMPLE scores only).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import datasets
from lm_eval.tasks.fda.task import FDA
from lm_eval.tasks.squad_completion.task import SQUADCompletion
from lm_eval.tasks.swde.task import SWDE

from zoo.errors import ZooError
from zoo.eval.tasks import HF_DATASETS, RECALL_GEN_KWARGS, SAMPLE_DIR, SCHEMAS

DEFAULT_DATA_DIR = Path("~/.cache/zoo/eval-data")


def data_dir(explicit: Optional[str | Path] = None) -> Path:
    """Where offline copies live: explicit > $ZOO_EVAL_DATA > ~/.cache/zoo/eval-data."""
    chosen = explicit or os.environ.get("ZOO_EVAL_DATA") or DEFAULT_DATA_DIR
    return Path(chosen).expanduser()


def has_offline_copy(directory: Path, tasks=tuple(SCHEMAS)) -> bool:
    """True when ``directory`` holds a data file for every task in ``tasks``."""
    return all((directory / f"{t}.json").is_file() for t in tasks)


def load_rows(path: Path, task: str) -> List[Dict[str, Any]]:
    """Read and check one data file: a JSON array of rows with exactly the task's columns."""
    if not path.is_file():
        raise ZooError(
            f"no offline copy of {task} at {path}: run `zoo eval download {path.parent}` while online, "
            "or use the shipped samples (`zoo eval --offline` picks them when no copy exists)"
        )
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ZooError(f"{path} is not valid JSON ({err}); re-run `zoo eval download`") from None
    want = set(SCHEMAS[task])
    if not isinstance(rows, list) or not rows:
        raise ZooError(f"{path} must be a non-empty JSON array of rows with columns {sorted(want)}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or set(row) != want:
            got = sorted(row) if isinstance(row, dict) else type(row).__name__
            raise ZooError(f"{path} row {i} has columns {got}; {task} rows have exactly {sorted(want)}")
    return rows


class _Mirror:
    """Mixin: documents from a local JSON file instead of the Hugging Face Hub."""

    TASK: str = ""

    def __init__(self, config: Optional[Dict[str, Any]] = None):
        meta = dict((config or {}).get("metadata") or {})
        source = meta.get("zoo_source", "offline")
        if source == "sample":
            self.zoo_data_file = SAMPLE_DIR / f"{self.TASK}.json"
        elif source == "offline":
            self.zoo_data_file = data_dir(meta.get("zoo_eval_data")) / f"{self.TASK}.json"
        else:
            raise ZooError(f"metadata.zoo_source must be 'sample' or 'offline', got {source!r}")
        self.zoo_source = source
        super().__init__()  # lm-eval's class: builds its config, then calls self.download()

    def download(self, *args, **kwargs) -> None:
        rows = load_rows(self.zoo_data_file, self.TASK)
        self.dataset = datasets.DatasetDict({"validation": datasets.Dataset.from_list(rows)})


class SWDEMirror(_Mirror, SWDE):
    TASK = "swde"
    DATASET_PATH = HF_DATASETS["swde"]


class FDAMirror(_Mirror, FDA):
    TASK = "fda"
    DATASET_PATH = HF_DATASETS["fda"]


class SQuADCompletionMirror(_Mirror, SQUADCompletion):
    TASK = "squad_completion"
    DATASET_PATH = HF_DATASETS["squad_completion"]

    def __init__(self, config: Optional[Dict[str, Any]] = None):
        super().__init__(config)
        self.config.generation_kwargs = dict(RECALL_GEN_KWARGS, until=list(RECALL_GEN_KWARGS["until"]))
