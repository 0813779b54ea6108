"""Data: the embedded corpus, local and Hugging Face sources, tokenizers, packing, synthetic tasks.

The API the trainer uses (everything else is internal)::

    from zoo.data import DataConfig, build_tokenizer, build_datasets

    cfg = DataConfig(type="embedded", seq_len=256).validate()   # or from the run config
    tok = build_tokenizer(cfg)            # ZooTokenizer, or None for synthetic types (mqar, mad)
    train, val = build_datasets(cfg, tok, batch_size=8, rank=0, world_size=1, device="cpu")
    train.vocab_size                      # the model's vocab must be >= this (tokenizer or task vocab)
    train.seq_len                         # T (cfg.resolved_seq_len(): seq_len None takes the type default)
    train.eos_id                          # document separator (None for synthetic data)
    train.objective                       # "lm"; "autoencode" for MAD compression (needs a decoder head)
    tok.save(run_dir / "model")           # writes model/tokenizer.json (+ tokenizer_config.json)

    loader = DataLoader(train, batch_size=None, num_workers=0)   # batches are already collated
    val_loader = DataLoader(val, batch_size=None, num_workers=0) # map-style: shardable by Lightning
    # each batch: input_ids long [B, T], labels long [B, T] (-100 ignored), cu_seqlens int32 [N+1]
    # over the flattened B*T tokens (text only; synthetic batches have no cu_seqlens)
    # synthetic val batches carry test targets: accuracy(logits, batch["labels"]) scores the probes

    state = train.state_dict()            # {"batch_index": global batches yielded, ...}
    train.load_state_dict(state)          # exact resume; or train.seek(global_batch_index)

``train`` is an endless ``IterableDataset`` whose order is a pure function of
``(data.seed, batch index)``: epochs reshuffle rows (text) or draw fresh tasks (synthetic).
Because Lightning may prefetch a batch ahead, ``state_dict()['batch_index']`` can run one
ahead of the optimizer; for exact resume prefer ``seek(batches consumed)``, e.g.
``global_step * accumulate_grad_batches``. ``rank``/``world_size``: each rank gets its slice of
the same global batch (``batch_size * world_size`` rows), so DDP matches one device with the
global batch. ``val`` is a map-style ``Dataset`` of fixed batches.

Errors: ``DataConfigError`` (bad settings, unreachable hub) and ``CorpusError`` (empty,
unreadable or too-small corpus) are ``ValueError`` subclasses with the fix in the message.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import torch

from zoo.data.config import DataConfig, DataConfigError, MADConfig, MQARConfig, TokenizerConfig
from zoo.data.corpus import Corpus, CorpusError, embedded_corpus
from zoo.data.mad import AUTOENCODE_TASKS, MAD_GENERATORS, MAD_NUM_TEST_EXAMPLES, mad_batch, mad_settings
from zoo.data.mqar import mqar_batch
from zoo.data.packing import PackedTrainData, PackedValData, StreamingTrainData, pack_documents
from zoo.data.sources import load_corpus
from zoo.data.synthetic import SyntheticTrainData, SyntheticValData, accuracy
from zoo.data.tokenizer import ZooTokenizer, iter_token_ids, load_tokenizer, save_tokenizer
from zoo.data.tokenizer import build_tokenizer as _build_tokenizer

__all__ = [
    "DataConfig", "TokenizerConfig", "MQARConfig", "MADConfig", "DataConfigError", "CorpusError",
    "Corpus", "load_corpus", "embedded_corpus", "ZooTokenizer", "build_tokenizer", "load_tokenizer",
    "save_tokenizer", "build_datasets", "mqar_batch", "mad_batch", "accuracy", "PackedTrainData", "PackedValData",
    "StreamingTrainData", "SyntheticTrainData", "SyntheticValData",
]

HF_DEFAULT_VAL_TOKENS = 1 << 20


def build_tokenizer(cfg: DataConfig, corpus: Optional[Corpus] = None) -> Optional[ZooTokenizer]:
    """The tokenizer for ``cfg.tokenizer``; None for synthetic data types.

    A BPE is trained on the training split of ``corpus`` (loaded from ``cfg`` when not given)
    or loaded from its on-disk cache.
    """
    cfg.validate()
    if cfg.synthetic:
        return None
    if cfg.tokenizer.type != "bpe":
        return _build_tokenizer(cfg.tokenizer)
    corpus = corpus if corpus is not None else load_corpus(cfg)
    return _build_tokenizer(cfg.tokenizer, corpus.train_documents())


def build_datasets(cfg: DataConfig, tokenizer: Optional[ZooTokenizer], batch_size: int, *,
                   val_batch_size: Optional[int] = None, rank: int = 0, world_size: int = 1,
                   device: Any = "cpu", corpus: Optional[Corpus] = None) -> Tuple[Any, Any]:
    """(train, val) datasets for ``cfg``; see the module docstring for how to use them.

    ``batch_size``: rows per rank per step. ``device``: where synthetic batches are generated
    (text batches are CPU tensors; Lightning moves them). ``corpus``: reuse one already
    loaded for ``build_tokenizer``. Text types need ``tokenizer``. Raises CorpusError when the
    training split holds less than one global batch or validation less than one row.
    """
    cfg.validate()
    if batch_size < 1:
        raise DataConfigError(f"batch_size={batch_size} must be >= 1")
    vb = val_batch_size or batch_size
    if cfg.synthetic:
        return _synthetic_datasets(cfg, batch_size, vb, rank, world_size, device)
    if tokenizer is None:
        raise DataConfigError(f"data.type={cfg.type} needs a tokenizer: call build_tokenizer(cfg) first")
    corpus = corpus if corpus is not None else load_corpus(cfg)
    T, eos, V = cfg.resolved_seq_len(), tokenizer.eos_id, tokenizer.vocab_size
    val_cap = cfg.val_tokens if cfg.val_tokens is not None else (None if corpus.finite else HF_DEFAULT_VAL_TOKENS)
    val_tokens = pack_documents(iter_token_ids(tokenizer, corpus.val_documents()), eos, limit=val_cap)
    val = PackedValData(val_tokens, T, vb, eos, max_tokens=val_cap, vocab_size=V)
    if corpus.finite:
        tokens = pack_documents(iter_token_ids(tokenizer, corpus.train_documents()), eos)
        train = PackedTrainData(tokens, T, batch_size, eos, seed=cfg.seed, rank=rank, world_size=world_size,
                                vocab_size=V)
    else:
        train = StreamingTrainData(lambda: iter_token_ids(tokenizer, corpus.train_documents()), T, batch_size,
                                   eos, rank=rank, world_size=world_size, vocab_size=V)
    return train, val


def _synthetic_datasets(cfg: DataConfig, batch_size: int, val_batch_size: int, rank: int, world_size: int,
                        device: Any) -> Tuple[SyntheticTrainData, SyntheticValData]:
    objective, pool, T = "lm", 0, cfg.resolved_seq_len()
    if cfg.type == "mqar":
        m = cfg.mqar

        def generate(b, g):
            return mqar_batch(b, T, m.num_kv_pairs, m.vocab_size, m.power_a, m.random_non_queries,
                              generator=g)

        generate_val = generate
        vocab, name = m.vocab_size, f"mqar(T={T}, K={m.num_kv_pairs})"
        n_val = (cfg.val_batches or 8) * val_batch_size
    else:
        task = cfg.mad.task
        try:
            s = mad_settings(task, cfg.seq_len, cfg.mad.vocab_size, cfg.mad.options)
        except ValueError as err:
            raise DataConfigError(str(err)) from None
        pool = int(s.pop("num_train_examples"))
        fn = MAD_GENERATORS[task]

        def generate(b, g):
            return fn(b, g, True, **s)

        def generate_val(b, g):
            return fn(b, g, False, **s)

        T = s["seq_len"]
        vocab, name = s["vocab_size"], f"mad:{task}(T={s['seq_len']}, V={s['vocab_size']})"
        objective = "autoencode" if task in AUTOENCODE_TASKS else "lm"
        n_val = cfg.val_batches * val_batch_size if cfg.val_batches else MAD_NUM_TEST_EXAMPLES
        try:  # fail now, not at the first step, on settings the generator rejects
            generate(1, torch.Generator().manual_seed(0))
        except ValueError as err:
            raise DataConfigError(f"data.mad: {err}") from None
    try:
        train = SyntheticTrainData(generate, batch_size, seed=cfg.seed, device=device, rank=rank,
                                   world_size=world_size, vocab_size=vocab, name=name, pool_size=pool,
                                   objective=objective)
    except ValueError as err:
        raise DataConfigError(str(err)) from None
    val = SyntheticValData(generate_val, val_batch_size, n_val, seed=cfg.seed, device=device,
                           vocab_size=vocab, name=name, objective=objective)
    train.seq_len = val.seq_len = T
    return train, val

