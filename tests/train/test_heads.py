"""MAD compression through zoo train: the decoder head, a tiny run that learns, exact resume with the head."""
from __future__ import annotations

import pytest
import torch

from zoo.config import ModelConfig
from zoo.model import ZooModel
from zoo.train.checkpoint import list_checkpoints
from zoo.train.heads import CompressionDecoder, build_head, sincos_positions, task_logits
from zoo.train.run import TrainingInterrupted

# MAD compression at a CPU-sized setting: 7 content tokens from 7 ids, then the marker (chance ~0.25:
# 1/7 on the content positions, the marker is free)
COMPRESSION = [
    "model.pattern=delta*2",
    "model.vocab_size=8",
    "data.type=mad",
    "data.mad.task=compression",
    "data.seq_len=8",
    "data.mad.vocab_size=8",
    "data.mad.options={num_train_examples: 0}",
    "data.val_batches=4",
    "train.batch_size=64",
    "train.weight_decay=0",
]


def test_decoder_head_shapes_flow_and_dispatch():
    cfg = ModelConfig(pattern="delta swa", d_model=32, n_heads=2, vocab_size=8,
                      mixers={"swa": {"type": "attention", "window": 4}})
    torch.manual_seed(0)
    model, head = ZooModel(cfg), build_head("autoencode", 32, 8)
    assert isinstance(head, CompressionDecoder) and build_head("lm", 32, 8) is None
    x = torch.randint(0, 7, (3, 10))
    logits = task_logits(model, head, x)
    assert logits.shape == (3, 10, 8) and logits.dtype == torch.float32
    y = x.clone()
    y[:, 0] = (y[:, 0] + 1) % 7  # the first token reaches the decoder only through the last position
    assert not torch.allclose(task_logits(model, head, y), logits)
    assert torch.equal(task_logits(model, None, x), model(x))  # no head: the LM head's logits
    assert sincos_positions(10, 32).shape == (10, 32) and sincos_positions(4, 7).shape == (4, 7)
    with pytest.raises(ValueError, match="packed"):
        task_logits(model, head, x, cu_seqlens=torch.tensor([0, 30], dtype=torch.int32))
    with pytest.raises(ValueError, match="objective"):
        build_head("seq2seq", 32, 8)


def test_tiny_compression_run_beats_chance(tiny_run, losses):
    run = tiny_run(COMPRESSION + ["train.steps=150", "train.lr=1e-2", "train.warmup_steps=10",
                                  "train.val_every=150", "train.log_every=50"])
    acc = losses(run, "val/acc")
    assert [s for s, _ in acc] == [0, 150]
    assert acc[0][1] < 0.2 and acc[-1][1] > 0.4, acc  # chance is ~0.25
    loss = losses(run)
    assert loss[-1][1] < 0.8 * loss[0][1]
    state = torch.load(list_checkpoints(run / "checkpoints")[-1], weights_only=True)["state_dict"]
    assert {"head.out.weight", "head.mlp.1.weight"} <= set(state)


def test_compression_resume_restores_the_head(tiny_run, losses, interrupt_at):
    ref = tiny_run(COMPRESSION, name="ref")
    with pytest.raises(TrainingInterrupted) as info:
        tiny_run(COMPRESSION, name="cut", callbacks=[interrupt_at(5)])
    cut = info.value.run_dir
    saved = torch.load(info.value.checkpoint, weights_only=True)["state_dict"]
    assert any(k.startswith("head.") for k in saved)
    tiny_run(resume_dir=cut)
    want, got = losses(ref), losses(cut)
    assert [s for s, _ in got] == list(range(1, 9))
    for (step, a), (_, b) in zip(want, got):  # a re-initialised head would change the losses after step 5
        assert a == pytest.approx(b, rel=1e-6, abs=1e-6), f"step {step}: uninterrupted {a} vs resumed {b}"
    assert losses(ref, "val/acc")[-1][1] == pytest.approx(losses(cut, "val/acc")[-1][1])
    final = torch.load(list_checkpoints(ref / "checkpoints")[-1], weights_only=True)["state_dict"]
    resumed = torch.load(list_checkpoints(cut / "checkpoints")[-1], weights_only=True)["state_dict"]
    assert torch.allclose(final["head.out.weight"], resumed["head.out.weight"], atol=1e-6)
