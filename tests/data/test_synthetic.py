"""Synthetic datasets: seeded per step, exact resume, fixed pools, rank slices, accuracy."""
import math

import pytest
import torch

from zoo.data import DataConfig, DataConfigError, MADConfig, MQARConfig, accuracy, build_datasets


def _mqar(**kw):
    return DataConfig(type="mqar", seq_len=64, mqar=MQARConfig(num_kv_pairs=8, vocab_size=128), **kw)


def test_mqar_stream_is_fresh_seeded_and_resumable():
    train, val = build_datasets(_mqar(seed=3), None, batch_size=4)
    assert train.vocab_size == 128 and train.seq_len == 64 and train.eos_id is None
    it = iter(train)
    first = [next(it)["input_ids"] for _ in range(4)]
    assert not torch.equal(first[0], first[1])
    state = train.state_dict()
    nxt = next(it)["input_ids"]
    again, _ = build_datasets(_mqar(seed=3), None, batch_size=4)
    again.load_state_dict(state)
    assert torch.equal(next(iter(again))["input_ids"], nxt)
    other, _ = build_datasets(_mqar(seed=4), None, batch_size=4)
    assert not torch.equal(next(iter(other))["input_ids"], first[0])
    assert len(val) == 8 and torch.equal(val[0]["input_ids"], val[0]["input_ids"])
    assert not torch.equal(val[0]["input_ids"], first[0])


def test_ranks_slice_the_global_batch():
    one, _ = build_datasets(_mqar(), None, batch_size=4)
    parts = [build_datasets(_mqar(), None, batch_size=2, rank=r, world_size=2)[0] for r in range(2)]
    assert torch.equal(torch.cat([p.batch(5)["labels"] for p in parts]), one.batch(5)["labels"])


def test_mad_pool_repeats_examples_each_epoch():
    cfg = DataConfig(type="mad", mad=MADConfig(task="memorization", options={"num_train_examples": 16}))
    train, val = build_datasets(cfg, None, batch_size=4)
    rows = lambda i: {tuple(r) for r in train.batch(i)["input_ids"].tolist()}  # noqa: E731
    epoch0 = set().union(*(rows(i) for i in range(4)))
    epoch1 = set().union(*(rows(i) for i in range(4, 8)))
    assert epoch0 == epoch1 and len(epoch0) <= 16
    assert not torch.equal(train.batch(0)["input_ids"], train.batch(4)["input_ids"])  # reshuffled
    assert len(val) == math.ceil(1280 / 4)
    with pytest.raises(DataConfigError, match="smaller than one global batch"):
        build_datasets(cfg, None, batch_size=32)


def test_mad_val_has_test_targets_and_train_has_lm_targets():
    cfg = DataConfig(type="mad", seq_len=64, val_batches=2, mad=MADConfig(task="in_context_recall"))
    train, val = build_datasets(cfg, None, batch_size=8)
    assert train.seq_len == 64 and len(val) == 2
    tb, vb = next(iter(train)), val[0]
    assert bool((tb["labels"] != -100).all())
    assert 0 < (vb["labels"] != -100).float().mean() < 0.5
    comp, _ = build_datasets(DataConfig(type="mad", mad=MADConfig(task="compression")), None, 4)
    assert comp.objective == "autoencode" and train.objective == "lm"


def test_accuracy_counts_only_query_positions():
    labels = torch.tensor([[-100, 3, -100, 5], [7, -100, -100, -100]])
    preds = torch.tensor([[9, 3, 9, 4], [7, 0, 0, 0]])
    assert accuracy(preds, labels) == pytest.approx(2 / 3)
    logits = torch.nn.functional.one_hot(preds, 10).float()
    assert accuracy(logits, labels) == pytest.approx(2 / 3)
    assert math.isnan(accuracy(preds, torch.full_like(labels, -100)))


def test_bad_synthetic_settings_are_errors():
    with pytest.raises(DataConfigError, match="seq_len >= 256"):
        DataConfig(type="mqar", seq_len=128, mqar=MQARConfig(num_kv_pairs=64)).validate()
    with pytest.raises(DataConfigError, match="not one of"):
        DataConfig(type="mad", mad=MADConfig(task="copying")).validate()
    with pytest.raises(DataConfigError, match="data.path is not used"):
        DataConfig(type="mqar", path="x.txt").validate()
