"""Text sources -> ``Corpus``: local text/JSONL/Parquet files and Hugging Face datasets.

Local files (``data.path``: a file, a directory — searched recursively for the type's
extensions — or a glob), read in sorted path order:

- ``text`` (``.txt``, ``.md``): ``doc_split: blank_line`` (default) makes every block of
  text between blank lines a document (a paragraph); ``doc_split: file`` makes each file one.
- ``jsonl`` (``.jsonl``, ``.json``, ``.jsonl.gz``): one JSON object per line, the document
  in ``text_field`` (default ``text``). Blank lines are skipped.
- ``parquet`` (``.parquet``): the ``text_field`` column; needs pyarrow.

Hugging Face (``type: hf``): ``datasets.load_dataset(name, config_name, split=split,
streaming=True)``. Validation is ``val_split`` when given (capped at ``val_tokens``), else the
documents of ``split`` whose hash falls under ``val_fraction`` (see zoo.data.corpus).
"""
from __future__ import annotations

import glob as _glob
import gzip
import json
import os
import re
from pathlib import Path
from typing import Iterator, List, Sequence

from zoo.data.config import DataConfig, DataConfigError
from zoo.data.corpus import Corpus, CorpusError, embedded_corpus, in_validation

_EXTENSIONS = {"text": (".txt", ".md"), "jsonl": (".jsonl", ".json", ".jsonl.gz"), "parquet": (".parquet",)}
_BLANK = re.compile(r"\n[ \t]*\n")


def resolve_paths(path: str, kind: str) -> List[Path]:
    """Files named by ``path`` (file, directory or glob), sorted; CorpusError when none."""
    exts = _EXTENSIONS[kind]
    p = Path(os.path.expanduser(path))
    if p.is_file():
        files = [p]
    elif p.is_dir():
        files = [f for f in p.rglob("*") if f.is_file() and f.name.endswith(exts)]
    else:
        files = [Path(f) for f in _glob.glob(os.path.expanduser(path), recursive=True) if Path(f).is_file()]
    if not files:
        raise CorpusError(f"data.path={path!r} names no {kind} files (looked for {', '.join(exts)})")
    return sorted(files)


def text_documents(files: Sequence[Path], doc_split: str = "blank_line") -> Iterator[str]:
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        if doc_split == "file":
            if text.strip():
                yield text.strip()
        else:
            for block in _BLANK.split(text):
                if block.strip():
                    yield block.strip()


def jsonl_documents(files: Sequence[Path], text_field: str = "text") -> Iterator[str]:
    for f in files:
        opener = gzip.open if f.name.endswith(".gz") else open
        with opener(f, "rt", encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise CorpusError(f"{f}:{n}: not valid JSON ({err.msg}); JSONL needs one object per line") from None
                if not isinstance(row, dict) or text_field not in row:
                    keys = ", ".join(row) if isinstance(row, dict) else type(row).__name__
                    raise CorpusError(f"{f}:{n}: no field {text_field!r} (found: {keys}); set data.text_field")
                if not isinstance(row[text_field], str):
                    raise CorpusError(f"{f}:{n}: field {text_field!r} is {type(row[text_field]).__name__}, not text")
                yield row[text_field]


def parquet_documents(files: Sequence[Path], text_field: str = "text") -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CorpusError("data.type=parquet needs pyarrow: pip install pyarrow") from None
    for f in files:
        pf = pq.ParquetFile(f)
        if text_field not in pf.schema_arrow.names:
            raise CorpusError(f"{f}: no column {text_field!r} (found: {', '.join(pf.schema_arrow.names)}); set data.text_field")
        for batch in pf.iter_batches(columns=[text_field], batch_size=1024):
            for t in batch.column(0).to_pylist():
                if isinstance(t, str):
                    yield t


def _hf_stream(cfg: DataConfig, split: str):
    try:
        import datasets
    except ImportError:
        raise CorpusError("data.type=hf needs the datasets package: pip install datasets") from None
    from zoo.data.tokenizer import hub_reachable

    offline = os.environ.get("HF_DATASETS_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "")).lower() in ("1", "true", "yes")
    if not offline and not hub_reachable():
        raise CorpusError(
            f"cannot open Hugging Face dataset {cfg.name!r}: the hub is unreachable (offline?). Set "
            "HF_DATASETS_OFFLINE=1 to use a locally cached copy, or download it elsewhere and use "
            "data.type=jsonl/parquet/text with data.path"
        )
    try:
        ds = datasets.load_dataset(cfg.name, cfg.config_name, split=split, streaming=True)
    except Exception as err:  # offline, unknown dataset, unknown split/config
        first = str(err).splitlines()[0] if str(err) else ""
        raise CorpusError(
            f"cannot open Hugging Face dataset {cfg.name!r} (config {cfg.config_name!r}, split {split!r}): "
            f"{type(err).__name__}: {first}. Check the name and network access (offline machines: "
            "download it elsewhere and use data.type=jsonl/parquet/text with data.path)"
        ) from None
    if cfg.shuffle_buffer:
        ds = ds.shuffle(seed=cfg.seed, buffer_size=cfg.shuffle_buffer)
    return ds


def _hf_texts(ds, field: str) -> Iterator[str]:
    for row in ds:
        if field not in row:
            raise CorpusError(f"Hugging Face rows have no field {field!r} (found: {', '.join(row)}); set data.text_field")
        if isinstance(row[field], str) and row[field].strip():
            yield row[field]


def hf_corpus(cfg: DataConfig) -> Corpus:
    field = cfg.text_field or "text"
    split = cfg.split or "train"
    train_ds = _hf_stream(cfg, split)
    frac = cfg.val_fraction
    if cfg.val_split:
        val_ds = _hf_stream(cfg, cfg.val_split)
        train = lambda: _hf_texts(train_ds, field)  # noqa: E731
        val = lambda: _hf_texts(val_ds, field)  # noqa: E731
    else:
        train = lambda: (t for t in _hf_texts(train_ds, field) if not in_validation(t, frac))  # noqa: E731
        val = lambda: (t for t in _hf_texts(train_ds, field) if in_validation(t, frac))  # noqa: E731
    desc = f"Hugging Face dataset {cfg.name}" + (f"/{cfg.config_name}" if cfg.config_name else "") + f" [{split}]"
    return Corpus(desc, False, train, val)


def load_corpus(cfg: DataConfig) -> Corpus:
    """The text corpus a (non-synthetic) DataConfig names; errors say what is missing."""
    cfg.validate()
    if cfg.synthetic:
        raise DataConfigError(f"data.type={cfg.type} is synthetic: it has no text corpus (use build_datasets)")
    if cfg.type == "embedded":
        return embedded_corpus(cfg.name, cfg.val_fraction)
    if cfg.type == "hf":
        return hf_corpus(cfg)
    files = resolve_paths(cfg.path, cfg.type)
    if cfg.type == "text":
        docs = list(text_documents(files, cfg.doc_split or "blank_line"))
    elif cfg.type == "jsonl":
        docs = list(jsonl_documents(files, cfg.text_field or "text"))
    else:
        docs = list(parquet_documents(files, cfg.text_field or "text"))
    return Corpus.from_documents(docs, cfg.val_fraction, f"{cfg.type} files {cfg.path!r} ({len(files)} files)")
