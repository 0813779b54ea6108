"""Local text / JSONL / Parquet sources, HF errors, config validation."""
import json

import pytest

from zoo.data import DataConfig, DataConfigError, build_datasets, build_tokenizer, load_corpus
from zoo.data.corpus import CorpusError

PARAS = [f"Paragraph {i} tells of the {i}th river and the town that stood on its bank for years." for i in range(60)]


def _docs(cfg):
    c = load_corpus(cfg)
    return list(c.train_documents()) + list(c.val_documents())


def test_text_blank_line_and_file_modes(tmp_path):
    (tmp_path / "a.txt").write_text("\n\n".join(PARAS[:30]) + "\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("\n  \n".join(PARAS[30:]))
    (tmp_path / "skip.csv").write_text("not,text")
    docs = _docs(DataConfig(type="text", path=str(tmp_path)))
    assert sorted(docs) == sorted(PARAS)
    files = _docs(DataConfig(type="text", path=str(tmp_path / "**" / "*.*"), doc_split="file"))
    assert len(files) == 3  # the glob picks every file, each one document
    assert len(_docs(DataConfig(type="text", path=str(tmp_path), doc_split="file"))) == 2


def test_jsonl_field_and_errors(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join(json.dumps({"body": p, "id": i}) for i, p in enumerate(PARAS)) + "\n\n")
    assert sorted(_docs(DataConfig(type="jsonl", path=str(f), text_field="body"))) == sorted(PARAS)
    with pytest.raises(CorpusError, match="no field 'text'.*body, id"):
        load_corpus(DataConfig(type="jsonl", path=str(f)))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{broken\n')
    with pytest.raises(CorpusError, match="bad.jsonl:2"):
        load_corpus(DataConfig(type="jsonl", path=str(bad)))


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": PARAS}), tmp_path / "d.parquet")
    assert sorted(_docs(DataConfig(type="parquet", path=str(tmp_path)))) == sorted(PARAS)
    with pytest.raises(CorpusError, match="no column 'content'"):
        load_corpus(DataConfig(type="parquet", path=str(tmp_path), text_field="content"))


def test_local_file_end_to_end_and_too_small(tmp_path):
    (tmp_path / "a.txt").write_text("\n\n".join(PARAS * 4))
    cfg = DataConfig(type="text", path=str(tmp_path), seq_len=32)
    cfg.tokenizer.vocab_size, cfg.tokenizer.cache_dir = 300, str(tmp_path / "cache")
    tok = build_tokenizer(cfg)
    train, val = build_datasets(cfg, tok, batch_size=2)
    b = next(iter(train))
    assert b["input_ids"].shape == (2, 32) and int(b["cu_seqlens"][-1]) == 64
    with pytest.raises(CorpusError, match="training split too small"):
        build_datasets(cfg, tok, batch_size=1000)
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "empty.txt").write_text("\n\n  \n")
    with pytest.raises(CorpusError, match="no documents"):
        load_corpus(DataConfig(type="text", path=str(tmp_path / "e")))
    with pytest.raises(CorpusError, match="names no text files"):
        load_corpus(DataConfig(type="text", path=str(tmp_path / "missing")))


def test_config_validation_names_the_fix():
    with pytest.raises(DataConfigError, match="not one of embedded"):
        DataConfig(type="csv").validate()
    with pytest.raises(DataConfigError, match="needs data.path"):
        DataConfig(type="jsonl").validate()
    with pytest.raises(DataConfigError, match="data.path is not used by data.type='embedded'"):
        DataConfig(path="x.txt").validate()
    with pytest.raises(DataConfigError, match="needs data.name"):
        DataConfig(type="hf").validate()
    with pytest.raises(DataConfigError, match="val_batches=0 must be >= 1"):
        DataConfig(type="mqar", val_batches=0).validate()
    with pytest.raises(DataConfigError, match="val_fraction"):
        DataConfig(val_fraction=0.0).validate()


def test_hf_unreachable_is_a_clear_error(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):  # what load_dataset raises without network
        raise ConnectionError("Couldn't reach 'no-such-user/no-such-set' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setattr("zoo.data.tokenizer.hub_reachable", lambda timeout=3.0: True)
    with pytest.raises(CorpusError, match="cannot open Hugging Face dataset 'no-such-user/no-such-set'.*network"):
        load_corpus(DataConfig(type="hf", name="no-such-user/no-such-set"))
    monkeypatch.setattr("zoo.data.tokenizer.hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(CorpusError, match="unreachable.*HF_DATASETS_OFFLINE=1"):
        load_corpus(DataConfig(type="hf", name="no-such-user/no-such-set"))


def test_hf_stream_is_split_by_hash(monkeypatch, tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [{"text": p} for p in PARAS]
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.IterableDataset.from_generator(lambda: iter(rows)))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    c = load_corpus(DataConfig(type="hf", name="local/fake", val_fraction=0.2))
    train, val = list(c.train_documents()), list(c.val_documents())
    assert not c.finite and sorted(train + val) == sorted(PARAS) and val and train
    cfg = DataConfig(type="hf", name="local/fake", val_fraction=0.2, seq_len=16)
    cfg.tokenizer.vocab_size, cfg.tokenizer.cache_dir = 300, str(tmp_path)
    tok = build_tokenizer(cfg, c)
    tr, va = build_datasets(cfg, tok, batch_size=2, corpus=c)
    assert type(tr).__name__ == "StreamingTrainData" and len(va) >= 1
    b = next(iter(tr))
    assert b["input_ids"].shape == (2, 16) and int(b["input_ids"][0, 0]) == tok.eos_id


def test_config_merges_from_yaml_dicts():
    from zoo.config import ConfigError, merge

    cfg = merge(DataConfig, {"type": "mad", "mad": {"task": "noisy_recall", "options": {"frac_noise": 0.4}}},
                overrides=["seed=3", "tokenizer.vocab_size=1000"])
    assert isinstance(cfg, DataConfig) and cfg.validate().mad.options == {"frac_noise": 0.4}
    assert cfg.seed == 3 and cfg.tokenizer.vocab_size == 1000 and cfg.resolved_seq_len() == 128
    with pytest.raises(ConfigError, match="text_feild"):
        merge(DataConfig, {"type": "jsonl", "path": "x.jsonl", "text_feild": "body"})
