"""Packing: boundaries, label shift, determinism, exact resume, too-small corpora."""
import numpy as np
import pytest
import torch

from zoo.data import DataConfig, build_datasets, build_tokenizer
from zoo.data.corpus import CorpusError
from zoo.data.packing import PackedTrainData, PackedValData, StreamingTrainData, pack_documents

EOS = 0


def _stream(n_docs=40, seed=1):
    rng = np.random.default_rng(seed)
    docs = [list(rng.integers(1, 50, size=int(rng.integers(1, 30)))) for _ in range(n_docs)]
    return docs, pack_documents(docs, EOS)


def _check_batch(b, T):
    x, y, cu = b["input_ids"], b["labels"], b["cu_seqlens"]
    B = x.shape[0]
    assert x.shape == y.shape == (B, T) and x.dtype == y.dtype == torch.long and cu.dtype == torch.int32
    flat = x.reshape(-1)
    starts = set(torch.nonzero(flat == EOS).squeeze(1).tolist()) | set(range(0, B * T, T))
    assert cu.tolist() == sorted(starts) + [B * T]
    assert bool((y != -100).all())  # EOS opens each document, so no label is dropped


def test_pack_documents_layout():
    s = pack_documents([[5, 6], [], [7]], EOS)
    assert s.tolist() == [EOS, 5, 6, EOS, 7, EOS]


def test_rows_keep_boundaries_and_shift_labels():
    docs, s = _stream()
    ds = PackedTrainData(s, seq_len=16, batch_size=4, eos_id=EOS, seed=3)
    it = iter(ds)
    for _ in range(2 * ds.batches_per_epoch + 1):
        b = next(it)
        _check_batch(b, 16)
        # labels are the inputs shifted by one within the stream: find each row in it.
        for row_x, row_y in zip(b["input_ids"].tolist(), b["labels"].tolist()):
            assert row_x[1:] == row_y[:-1]
            joined = s.tolist()
            start = next(i for i in range(len(joined) - 16) if joined[i : i + 16] == row_x and joined[i + 1 : i + 17] == row_y)
            assert start >= 0


def test_deterministic_and_epochs_reshuffle():
    _, s = _stream()
    a = PackedTrainData(s, 16, 4, EOS, seed=7)
    b = PackedTrainData(s, 16, 4, EOS, seed=7)
    c = PackedTrainData(s, 16, 4, EOS, seed=8)
    n = a.batches_per_epoch
    assert torch.equal(a.batch(0)["input_ids"], b.batch(0)["input_ids"])
    assert not torch.equal(a.batch(0)["input_ids"], c.batch(0)["input_ids"])
    assert not torch.equal(a.batch(0)["input_ids"], a.batch(n)["input_ids"])


def test_exact_resume_from_state_dict():
    _, s = _stream()
    a = PackedTrainData(s, 16, 4, EOS, seed=7)
    it = iter(a)
    for _ in range(5):
        next(it)
    state = a.state_dict()
    expect = [next(it)["input_ids"] for _ in range(12)]
    b = PackedTrainData(s, 16, 4, EOS, seed=7)
    b.load_state_dict(state)
    got = [x["input_ids"] for x, _ in zip(iter(b), range(12))]
    assert all(torch.equal(e, g) for e, g in zip(expect, got))
    with pytest.raises(ValueError, match="seq_len"):
        PackedTrainData(s, 8, 4, EOS, seed=7).load_state_dict(state)


def test_ranks_split_the_global_batch():
    _, s = _stream()
    one = PackedTrainData(s, 16, 4, EOS, seed=2)
    parts = [PackedTrainData(s, 16, 2, EOS, seed=2, rank=r, world_size=2) for r in range(2)]
    for i in (0, 3):
        joined = torch.cat([p.batch(i)["input_ids"] for p in parts])
        assert torch.equal(joined, one.batch(i)["input_ids"])


def test_too_small_corpus_is_a_clear_error():
    s = pack_documents([[1, 2, 3]] * 4, EOS)
    with pytest.raises(CorpusError, match="training split too small"):
        PackedTrainData(s, 16, 4, EOS)
    with pytest.raises(CorpusError, match="validation split too small"):
        PackedValData(s[:5], 16, 4, EOS)


def test_val_batches_fixed_and_complete():
    _, s = _stream()
    v = PackedValData(s, 16, 3, EOS)
    assert len(v) == -(-v.n_rows // 3)
    rows = torch.cat([b["input_ids"] for b in v])
    assert rows.shape[0] == v.n_rows and torch.equal(v[0]["input_ids"], v[0]["input_ids"])
    for b in v:
        _check_batch(b, 16)


def test_streaming_resume_matches():
    docs, _ = _stream()
    mk = lambda: StreamingTrainData(lambda: iter(docs), 16, 2, EOS)  # noqa: E731
    a = mk()
    first = [b["input_ids"] for b, _ in zip(iter(a), range(30))]  # wraps around the stream
    b = mk()
    b.load_state_dict({"batch_index": 17, "seq_len": 16, "global_batch": 2})
    assert all(torch.equal(x["input_ids"], y) for (x, _), y in zip(zip(iter(b), range(13)), first[17:]))
    _check_batch(next(iter(mk())), 16)


def test_embedded_end_to_end(tmp_path):
    cfg = DataConfig(seq_len=64)
    cfg.tokenizer.cache_dir = str(tmp_path)
    cfg.tokenizer.vocab_size = 512
    tok = build_tokenizer(cfg)
    train, val = build_datasets(cfg, tok, batch_size=4)
    assert train.vocab_size == tok.vocab_size and train.eos_id == tok.eos_id == val.eos_id
    assert train.tokens_per_epoch > 100_000
    b = next(iter(train))
    x, cu = b["input_ids"], b["cu_seqlens"]
    assert x.max() < tok.vocab_size and cu[-1] == x.numel()
    text = tok.decode(torch.cat([r for r in val[0]["input_ids"]]).tolist())
    assert text.startswith("<|endoftext|>") and " the " in text
