"""The embedded corpus and the hash-based validation split."""
import re

import pytest

from zoo.data.corpus import Corpus, CorpusError, embedded_corpus, split_documents


def test_embedded_corpus_is_english_prose_of_expected_size():
    c = embedded_corpus(None, 0.05)
    train, val = list(c.train_documents()), list(c.val_documents())
    chars = sum(map(len, train)) + sum(map(len, val))
    assert 300_000 < chars < 2_000_000
    assert len(train) > 100 and 1 <= len(val) < len(train) / 5
    words = re.findall(r"[a-z]+", " ".join(train).lower())
    common = sum(w in {"the", "of", "and", "is", "to", "a", "in"} for w in words)
    assert common / len(words) > 0.1  # English running text, not code or tables
    assert not any(d.strip() == "" or len(d) < 50 for d in train + val)


def test_validation_split_is_stable_and_disjoint():
    a, b = embedded_corpus("pydoc", 0.1), embedded_corpus("pydoc", 0.1)
    assert list(a.val_documents()) == list(b.val_documents())
    assert not set(a.val_documents()) & set(a.train_documents())


def test_split_keeps_one_document_each_side():
    docs = [f"document number {i}" for i in range(3)]
    for frac in (1e-9, 0.999999):
        train, val = split_documents(docs, frac)
        assert train and val and sorted(train + val) == sorted(docs)


def test_empty_or_single_document_corpus_is_a_clear_error():
    with pytest.raises(CorpusError, match="no documents"):
        Corpus.from_documents(["", "  "], 0.1, "test")
    with pytest.raises(CorpusError, match="only one document"):
        Corpus.from_documents(["just one"], 0.1, "test")
    with pytest.raises(CorpusError, match="available: pydoc"):
        embedded_corpus("nope", 0.1)


def test_stdlib_docstrings_skip_tests_and_cache(tmp_path, monkeypatch):
    from zoo.data.corpus import stdlib_docstrings

    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    lib = tmp_path / "lib"
    (lib / "test").mkdir(parents=True)
    long = ("This function explains at length what it does. " * 6).strip()
    (lib / "mod.py").write_text(f'"""{long}"""\n\ndef f():\n    """short"""\n\nclass C:\n    """{long} C"""\n')
    (lib / "test" / "test_mod.py").write_text(f'"""{long} test"""\n')
    (lib / "broken.py").write_text("def (:\n")
    docs = stdlib_docstrings(str(lib))
    assert docs == [long, f"{long} C"]
    assert len(list((tmp_path / "cache" / "corpora").glob("*.json"))) == 1
    (lib / "mod.py").unlink()
    assert stdlib_docstrings(str(lib)) == docs  # served from the cache
