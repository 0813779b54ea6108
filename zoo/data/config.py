"""Data configuration: which source feeds training, how it is tokenized and packed.

``DataConfig.type`` is the discriminator. Fields that only make sense for some types default
to ``None``; ``validate()`` rejects a field set for a type that does not use it, so a typo such
as ``type: embedded`` with ``path: my.txt`` is an error rather than silently ignored::

    data:                       # the embedded default (no network, see zoo.data.corpus)
      type: embedded
      seq_len: 256
    data:                       # local files; text_field for jsonl/parquet
      type: jsonl
      path: corpus/*.jsonl
      tokenizer: {type: bpe, vocab_size: 8192}
    data:                       # Hugging Face datasets, streamed
      type: hf
      name: HuggingFaceFW/fineweb-edu
      config_name: sample-10BT
      tokenizer: {type: pretrained, name: gpt2}
    data:                       # synthetic recall, generated on the training device
      type: mqar
      seq_len: 512
      mqar: {num_kv_pairs: 64}
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, Optional, Tuple

from zoo.errors import ZooError

SOURCE_TYPES = ("embedded", "text", "jsonl", "parquet", "hf", "mqar", "mad")
SYNTHETIC_TYPES = ("mqar", "mad")
TOKENIZER_TYPES = ("bpe", "pretrained", "file")
MAD_TASKS = (
    "in_context_recall",
    "fuzzy_recall",
    "noisy_recall",
    "selective_copying",
    "compression",
    "memorization",
)


class DataConfigError(ZooError):
    """A data or tokenizer setting that cannot work; the message names the fix."""


@dataclass
class TokenizerConfig:
    """How text becomes token ids.

    type: ``bpe`` trains a byte-level BPE on (the first ``train_chars`` characters of) the
    training documents and caches it under ``cache_dir`` keyed by text + settings, so reruns
    load it instead of retraining; ``pretrained`` loads ``name`` from the Hugging Face hub
    (network); ``file`` loads a ``tokenizer.json`` at ``path`` (e.g. a previous run's model dir).
    eos_token: the document separator; None picks the first special token found among
    ``<|endoftext|>``, ``</s>``, ``<|end_of_text|>``, ``<eos>``, ``[SEP]``.
    """

    type: str = "bpe"
    vocab_size: int = 4096  # bpe only: target size (a small corpus may give fewer merges)
    min_frequency: int = 2  # bpe only
    train_chars: int = 20_000_000  # bpe only: characters of training text it learns from
    name: Optional[str] = None  # pretrained only: hub name, e.g. "gpt2"
    path: Optional[str] = None  # file only: tokenizer.json, or a directory holding one
    eos_token: Optional[str] = None
    cache_dir: Optional[str] = None  # bpe cache; None: $ZOO_CACHE_DIR or ~/.cache/zoo/tokenizers

    def validate(self) -> "TokenizerConfig":
        if self.type not in TOKENIZER_TYPES:
            raise DataConfigError(
                f"tokenizer.type={self.type!r} is not one of {', '.join(TOKENIZER_TYPES)}"
            )
        if self.type == "pretrained" and not self.name:
            raise DataConfigError("tokenizer.type=pretrained needs tokenizer.name (e.g. gpt2)")
        if self.type == "file" and not self.path:
            raise DataConfigError("tokenizer.type=file needs tokenizer.path (a tokenizer.json or its dir)")
        if self.type == "bpe" and self.vocab_size < 260:
            raise DataConfigError(
                f"tokenizer.vocab_size={self.vocab_size} is too small for a byte-level BPE "
                "(256 byte tokens + specials); use >= 260"
            )
        return self


@dataclass
class MQARConfig:
    """Multi-query associative recall (Zoology): see ``zoo.data.mqar.mqar_batch``."""

    vocab_size: int = 8192
    num_kv_pairs: int = 64
    power_a: float = 0.01  # query gap distribution p(g) ~ g^(a-1): small a favours short gaps
    random_non_queries: bool = True  # fill non-query slots with random tokens instead of 0


@dataclass
class MADConfig:
    """One MAD task (arXiv 2403.17844); ``None`` fields take the task's standard setting.

    The standard settings per task are in ``zoo.data.mad.MAD_DEFAULTS``; ``seq_len`` comes
    from ``DataConfig.seq_len`` when set there, else from the task default. ``options`` holds
    the task's other settings (e.g. ``frac_noise``, ``num_tokens_to_copy``, and
    ``num_train_examples``: MAD's fixed training-set size; 0 draws fresh examples every step).
    """

    task: str = "in_context_recall"
    vocab_size: Optional[int] = None
    options: Dict[str, Any] = field(default_factory=dict)  # task-specific, see MAD_DEFAULTS


# Fields of DataConfig that belong to particular source types (the rest are common).
_TYPE_FIELDS: Dict[str, Tuple[str, ...]] = {
    "name": ("embedded", "hf"),
    "path": ("text", "jsonl", "parquet"),
    "text_field": ("jsonl", "parquet", "hf"),
    "doc_split": ("text",),
    "config_name": ("hf",),
    "split": ("hf",),
    "val_split": ("hf",),
    "shuffle_buffer": ("hf",),
    "val_batches": ("mqar", "mad"),
}


@dataclass
class DataConfig:
    """Where training data comes from and how it is cut into batches.

    type: one of ``embedded`` (a real English corpus shipped with Python, no network),
      ``text`` / ``jsonl`` / ``parquet`` (local files: a file, a directory or a glob in
      ``path``), ``hf`` (a Hugging Face dataset by ``name``, streamed), ``mqar`` / ``mad``
      (synthetic recall tasks, generated fresh each step on the training device).
    seq_len: tokens per row (input_ids and labels are [B, seq_len]); None takes the type's
      default (``resolved_seq_len()``): 256 for text, 512 for mqar, the task's standard for mad.
    val_fraction: share of documents held out for validation (chosen by a hash of each
      document's text, so the split is stable and needs no shuffling; at least one document).
    val_tokens: cap on validation tokens (None: all held-out tokens; hf: 1,048,576).
    seed: shuffling of training rows each epoch, and the synthetic generators.
    doc_split (text): ``blank_line`` — each blank-line-separated block of a file is a
      document; ``file`` — each file is one document.
    text_field (jsonl/parquet/hf): the column holding the text.
    config_name / split / val_split (hf): dataset subset, training split, and an optional
      split used for validation instead of holding out documents of ``split``.
    shuffle_buffer (hf): >0 shuffles the stream with a buffer of that many documents.
    name (embedded): ``pydoc`` (default; ~460 KB, CPython's documentation topics) or
      ``python`` (pydoc + standard-library docstrings, ~1.6 MB); (hf): the dataset name.
    val_batches (mqar/mad): number of fixed validation batches (same every evaluation;
      default 8 for mqar, MAD's 1,280 test examples for mad).
    """

    type: str = "embedded"
    seq_len: Optional[int] = None
    val_fraction: float = 0.05
    val_tokens: Optional[int] = None
    seed: int = 0
    name: Optional[str] = None
    path: Optional[str] = None
    text_field: Optional[str] = None
    doc_split: Optional[str] = None
    config_name: Optional[str] = None
    split: Optional[str] = None
    val_split: Optional[str] = None
    shuffle_buffer: Optional[int] = None
    val_batches: Optional[int] = None
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    mqar: MQARConfig = field(default_factory=MQARConfig)
    mad: MADConfig = field(default_factory=MADConfig)

    def resolved_seq_len(self) -> int:
        """``seq_len``, or the type's default when it is None (see the class docstring)."""
        if self.seq_len is not None:
            return int(self.seq_len)
        if self.type == "mad":
            from zoo.data.mad import MAD_DEFAULTS

            return int(MAD_DEFAULTS.get(self.mad.task, {}).get("seq_len", 128))
        return 512 if self.type == "mqar" else 256

    @property
    def synthetic(self) -> bool:
        """True for generated tasks (mqar, mad): no tokenizer, vocab fixed by the task."""
        return self.type in SYNTHETIC_TYPES

    def validate(self) -> "DataConfig":
        """Check the combination of fields; raises DataConfigError naming the fix. Returns self."""
        if self.type not in SOURCE_TYPES:
            raise DataConfigError(f"data.type={self.type!r} is not one of {', '.join(SOURCE_TYPES)}")
        for name, types in _TYPE_FIELDS.items():
            if getattr(self, name) is not None and self.type not in types:
                raise DataConfigError(
                    f"data.{name} is not used by data.type={self.type!r} "
                    f"(it applies to: {', '.join(types)}); remove it"
                )
        if self.seq_len is not None and self.seq_len < 2:
            raise DataConfigError(f"data.seq_len={self.seq_len} must be >= 2")
        for key in ("val_batches", "val_tokens"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise DataConfigError(f"data.{key}={getattr(self, key)} must be >= 1 (or unset for the default)")
        if self.shuffle_buffer is not None and self.shuffle_buffer < 0:
            raise DataConfigError(f"data.shuffle_buffer={self.shuffle_buffer} must be >= 0")
        if not 0.0 < self.val_fraction < 1.0:
            raise DataConfigError(f"data.val_fraction={self.val_fraction} must be in (0, 1)")
        if self.type in ("text", "jsonl", "parquet") and not self.path:
            raise DataConfigError(f"data.type={self.type} needs data.path (a file, directory or glob)")
        if self.type == "hf" and not self.name:
            raise DataConfigError("data.type=hf needs data.name (a Hugging Face dataset, e.g. roneneldan/TinyStories)")
        if self.doc_split is not None and self.doc_split not in ("blank_line", "file"):
            raise DataConfigError(f"data.doc_split={self.doc_split!r} must be 'blank_line' or 'file'")
        if self.type == "mad" and self.mad.task not in MAD_TASKS:
            raise DataConfigError(f"data.mad.task={self.mad.task!r} is not one of {', '.join(MAD_TASKS)}")
        if self.type == "mqar":
            m = self.mqar
            if m.vocab_size < 4 or m.vocab_size % 2:
                raise DataConfigError(f"data.mqar.vocab_size={m.vocab_size} must be even and >= 4")
            if 4 * m.num_kv_pairs > self.resolved_seq_len():
                raise DataConfigError(
                    f"data.mqar.num_kv_pairs={m.num_kv_pairs} needs seq_len >= {4 * m.num_kv_pairs} "
                    f"(pairs plus room for the queries); got seq_len={self.resolved_seq_len()}"
                )
        if not self.synthetic:
            self.tokenizer.validate()
        return self


def field_names(cls: type) -> Tuple[str, ...]:
    return tuple(f.name for f in fields(cls))
