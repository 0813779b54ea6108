"""Tiny models and a tokenizer for the eval tests (CPU, seconds).

``trained_run``: a 2-layer DeltaNet/SWA hybrid overfitted on the first documents of the shipped
sample files (prompt + " " + answer), so lm-eval's ``contains`` is computed on real answers.
"""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from zoo.config import ModelConfig
from zoo.data.tokenizer import BPE_EOS, ZooTokenizer, train_bpe
from zoo.eval.tasks import SAMPLE_DIR
from zoo.model import ZooModel

SAMPLE_TASKS = ("swde", "fda", "squad_completion")
BENCH = Path(__file__).resolve().parents[2] / "bench"
N_TRAIN_DOCS = 2  # the e2e test evaluates with limit=N_TRAIN_DOCS


def load_bench(monkeypatch, script: str):
    """bench/<script>.py as a module; bench/ goes on sys.path, as it does when the script runs."""
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{script}", BENCH / f"{script}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sample_rows(task):
    return json.loads((SAMPLE_DIR / f"{task}.json").read_text())


@pytest.fixture(scope="session")
def tokenizer():
    texts = [r["text"] + " " + r["value"] for t in SAMPLE_TASKS for r in sample_rows(t)]
    return ZooTokenizer(train_bpe(texts, vocab_size=400, min_frequency=2), BPE_EOS)


def tiny_model(pattern, vocab_size, max_seq_len=64, d_model=32, seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(pattern=pattern, d_model=d_model, n_heads=2, vocab_size=vocab_size, max_seq_len=max_seq_len)
    return ZooModel(cfg).eval()


def save_run(tmp_path, model, tokenizer, name="tiny"):
    """A run directory as `zoo train` writes it: runs/<name>/model/{config.json, model.safetensors, tokenizer.json}."""
    run = tmp_path / "runs" / name
    model.save_pretrained(run / "model")
    tokenizer.save(run / "model")
    (tmp_path / "runs" / "LATEST").write_text(name + "\n")
    return run


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tokenizer):
    """(run dir, final loss) of a tiny hybrid taught the answers of the first sample documents."""
    from zoo.eval.lm import ZooLM

    model = tiny_model("delta swa[window=32]", tokenizer.vocab_size, max_seq_len=512, d_model=48).train()
    lm = ZooLM(model=model, tokenizer=tokenizer, device="cpu")
    seqs, starts = [], []
    for task in SAMPLE_TASKS:
        for row in sample_rows(task)[:N_TRAIN_DOCS]:
            prompt = lm.tok_encode(row["text"].strip())  # the mirror's prompt, EOS first
            seqs.append(prompt + tokenizer.encode(" " + row["value"].strip() + "\n"))
            starts.append(len(prompt))
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tokenizer.eos_id)
    labels = torch.full((len(seqs), width), -100)  # loss on the answer tokens only
    for i, (seq, start) in enumerate(zip(seqs, starts)):
        ids[i, :len(seq)] = torch.tensor(seq)
        labels[i, start - 1:len(seq) - 1] = torch.tensor(seq[start:])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), labels.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return save_run(tmp_path_factory.mktemp("trained"), model, tokenizer), loss.item()
