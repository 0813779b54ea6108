"""Byte-level BPE: train, cache, save and reload round trip."""
import pytest

from zoo.data.config import DataConfigError, TokenizerConfig
from zoo.data.tokenizer import ZooTokenizer, build_tokenizer, load_tokenizer

DOCS = [f"The quick brown fox {i} jumps over the lazy dog number {i * 7}." for i in range(200)]


def test_bpe_train_cache_save_reload(tmp_path, monkeypatch):
    cfg = TokenizerConfig(vocab_size=300, cache_dir=str(tmp_path / "cache"))
    tok = build_tokenizer(cfg, iter(DOCS))
    assert tok.eos_token == "<|endoftext|>" and tok.vocab_size <= 300
    cached = list((tmp_path / "cache").glob("bpe-*.json"))
    assert len(cached) == 1
    # A second build must load the cache, not retrain.
    import zoo.data.tokenizer as mod

    monkeypatch.setattr(mod, "train_bpe", lambda *a, **k: pytest.fail("retrained despite the cache"))
    again = build_tokenizer(cfg, iter(DOCS))
    text = "The lazy fox — naïve café 123!"
    assert again.encode(text) == tok.encode(text)
    assert tok.decode(tok.encode(text)) == text  # byte-level: lossless on any text
    path = tok.save(tmp_path / "model")
    assert path.name == "tokenizer.json"
    back = load_tokenizer(tmp_path / "model")
    assert back.eos_id == tok.eos_id and back.encode(text) == tok.encode(text)


def test_cache_key_depends_on_text_and_vocab(tmp_path):
    cache = str(tmp_path / "c")
    build_tokenizer(TokenizerConfig(vocab_size=300, cache_dir=cache), iter(DOCS))
    build_tokenizer(TokenizerConfig(vocab_size=280, cache_dir=cache), iter(DOCS))
    build_tokenizer(TokenizerConfig(vocab_size=300, cache_dir=cache), iter(DOCS[:50]))
    assert len(list((tmp_path / "c").glob("bpe-*.json"))) == 3


def test_tokenizer_errors_are_clear(tmp_path):
    with pytest.raises(DataConfigError, match="tokenizer.name"):
        TokenizerConfig(type="pretrained").validate()
    with pytest.raises(DataConfigError, match="no tokenizer at"):
        load_tokenizer(tmp_path)
    with pytest.raises(DataConfigError, match="empty"):
        build_tokenizer(TokenizerConfig(cache_dir=str(tmp_path)), iter(["", " "]))


def test_missing_eos_is_named(tmp_path):
    from tokenizers import Tokenizer, models

    tk = Tokenizer(models.WordLevel({"a": 0, "b": 1}, unk_token="a"))
    with pytest.raises(DataConfigError, match="eos_token"):
        ZooTokenizer(tk)
    assert ZooTokenizer(tk, eos_token="b").eos_id == 1


def test_pretrained_offline_fails_fast_with_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataConfigError, match="unreachable.*tokenizer.type=bpe"):
        build_tokenizer(TokenizerConfig(type="pretrained", name="zoo-test/not-a-real-tokenizer"))
