"""The hybrid model: causality, packed documents, cached decoding, save/load, parameter count."""
import pytest
import torch

from zoo.config import ModelConfig
from zoo.model import ZooModel

PATTERNS = ["delta*2", "gdelta*2", "attn*2", "swa[window=5]*2", "delta swa[window=4] attn gdelta"]


def tiny(pattern: str, **kw) -> ZooModel:
    torch.manual_seed(0)
    cfg = ModelConfig(pattern=pattern, d_model=64, n_heads=2, vocab_size=97, max_seq_len=64, **kw)
    return ZooModel(cfg).double()


@pytest.mark.parametrize("pattern", PATTERNS)
def test_changing_a_token_leaves_earlier_logits_unchanged(pattern):
    model = tiny(pattern)
    ids = torch.randint(0, 97, (2, 37))
    t = 23
    other = ids.clone()
    other[:, t] = (ids[:, t] + 1) % 97
    a, b = model(ids), model(other)
    torch.testing.assert_close(a[:, :t], b[:, :t], rtol=0, atol=1e-10)
    assert (a[:, t:] - b[:, t:]).abs().max() > 1e-6


@pytest.mark.parametrize("pattern", PATTERNS)
def test_packed_documents_equal_each_document_alone(pattern):
    model = tiny(pattern)
    lengths = [7, 1, 30, 10]  # two rows of 24 tokens, boundaries inside and at the row edge
    ids = torch.randint(0, 97, (1, sum(lengths)))
    cu = torch.tensor([0, 7, 8, 38, 48], dtype=torch.int32)
    packed = model(ids.view(2, 24), cu_seqlens=cu).view(1, 48, -1)
    for start, end in zip(cu[:-1].tolist(), cu[1:].tolist()):
        alone = model(ids[:, start:end])
        torch.testing.assert_close(packed[:, start:end], alone, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_cached_decoding_equals_full_forward(pattern):
    model = tiny(pattern)
    ids = torch.randint(0, 97, (3, 19))
    full = model(ids)
    cache = model.init_cache(3)
    steps = [model(ids[:, :11], cache=cache)]  # multi-token prefill, then single tokens
    steps += [model(ids[:, i : i + 1], cache=cache) for i in range(11, 19)]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-9, atol=1e-9)
    assert cache.seen == 19


def test_generate_is_greedy_argmax_of_full_forward():
    model = tiny("delta swa[window=4] attn gdelta")
    prompt = torch.randint(0, 97, (2, 9))
    out = model.generate(prompt, max_new_tokens=8)
    assert out.shape == (2, 17) and torch.equal(out[:, :9], prompt)
    logits = model(out[:, :-1])
    torch.testing.assert_close(logits[:, 8:].argmax(-1), out[:, 9:])


def test_save_and_load_round_trip(tmp_path):
    model = tiny("delta swa[window=4]", tie_embeddings=False)
    model.save_pretrained(tmp_path)
    again = ZooModel.from_pretrained(tmp_path, dtype=torch.float64)
    ids = torch.randint(0, 97, (1, 12))
    torch.testing.assert_close(again(ids), model(ids))
    assert again.config == model.config


def test_tied_embeddings_are_counted_once(tmp_path):
    tied, untied = tiny("delta"), tiny("delta", tie_embeddings=False)
    assert untied.num_params() - tied.num_params() == 97 * 64
    tied.save_pretrained(tmp_path)
    again = ZooModel.from_pretrained(tmp_path)
    assert again.lm_head.weight is again.embeddings.weight


def test_missing_model_files_are_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        ZooModel.from_pretrained(tmp_path)


def test_packed_input_must_cover_the_batch():
    model = tiny("delta")
    with pytest.raises(ValueError, match="cu_seqlens"):
        model(torch.randint(0, 97, (2, 8)), cu_seqlens=torch.tensor([0, 8], dtype=torch.int32))


def test_bf16_autocast_forward_and_backward():
    torch.manual_seed(0)
    model = ZooModel(ModelConfig(pattern="delta gdelta swa[window=4] attn", d_model=64, n_heads=2, vocab_size=97))
    ids = torch.randint(0, 97, (2, 21))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(ids)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits.view(-1, 97), ids.view(-1)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    reference = model(ids)
    assert (logits - reference).norm() / reference.norm() < 2e-2


def test_generate_runs_one_prefill_and_one_step_per_further_token():
    model = tiny("delta swa[window=4]")
    calls = []
    model.embeddings.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape[1]))
    model.generate(torch.randint(0, 97, (2, 9)), max_new_tokens=5)
    assert calls == [9, 1, 1, 1, 1]
