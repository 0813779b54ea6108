"""Exact resume: a run interrupted at step k and resumed matches an uninterrupted run step by step."""
from __future__ import annotations

import pytest

from zoo.train.checkpoint import list_checkpoints
from zoo.train.run import TrainingInterrupted


@pytest.mark.parametrize("extra", [[], ["train.micro_batch_size=2", "train.ckpt_every=3", "train.keep_last=1"]],
                         ids=["plain", "accumulate+periodic"])
def test_interrupt_then_resume_matches_uninterrupted(tiny_run, losses, interrupt_at, extra):
    ref = tiny_run(extra, name="ref")
    ref_losses = losses(ref)
    assert [s for s, _ in ref_losses] == list(range(1, 9))

    with pytest.raises(TrainingInterrupted) as info:
        tiny_run(extra, name="cut", callbacks=[interrupt_at(5)])
    cut = info.value.run_dir
    assert info.value.checkpoint is not None and info.value.checkpoint.name == "step-0000005.ckpt"
    assert [p.name for p in list_checkpoints(cut / "checkpoints")][-1] == "step-0000005.ckpt"
    assert (cut / "model" / "model.safetensors").is_file()  # exported with the Ctrl-C checkpoint
    assert [s for s, _ in losses(cut)] == list(range(1, 6))

    tiny_run(resume_dir=cut)
    got = losses(cut)
    assert [s for s, _ in got] == list(range(1, 9))
    for (step, a), (_, b) in zip(ref_losses, got):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-6), f"step {step}: uninterrupted {a} vs resumed {b}"
    # validation at the end of both runs agrees as well
    assert losses(ref, "val/loss")[-1][1] == pytest.approx(losses(cut, "val/loss")[-1][1], rel=1e-6)
    assert [p.name for p in list_checkpoints(cut / "checkpoints")][-1] == "step-0000008.ckpt"


def test_resume_true_continues_the_named_run_and_can_extend_it(tiny_run, losses):
    run_dir = tiny_run(["train.steps=4"], name="grow")
    again = tiny_run(["train.steps=6", "resume=true"], name="grow")
    assert again == run_dir
    assert [s for s, _ in losses(run_dir)] == list(range(1, 7))
    assert [p.name for p in list_checkpoints(run_dir / "checkpoints")][-1] == "step-0000006.ckpt"
    assert sorted(p.name for p in (run_dir / "logs" / "csv").iterdir()) == ["version_0", "version_1"]
