"""Corpora: document collections with a stable held-out validation split.

The embedded default, ``pydoc``, is the text of the Python Language Reference and library
documentation topics that CPython itself ships as ``pydoc_data.topics`` (the pages that
``help("assignment")`` prints): about 460 KB of English technical prose in 79 topics, split
here at their section headings into ~200 documents. It is part of the standard library, so it
is present wherever Python is, needs no network and adds nothing to the repository. Licence:
the Python documentation is distributed under the PSF License Agreement (Python Software
Foundation License Version 2); its text differs slightly between Python versions, which is
why tokenizer caches are keyed by content, not name.

A larger variant, ``python``, adds the docstrings of the standard library's modules, classes
and functions (read from the source with ``ast``; ~1.1 MB more, same licence), for runs long
enough to overfit 460 KB.

A ``Corpus`` hands out documents (``str``) of its training and validation splits. A document
goes to validation when a hash of its text falls below ``val_fraction`` — stable, order-free
and usable on streams — and a finite corpus always keeps at least one document on each side.
"""
from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Iterator, List, Optional

from zoo.errors import ZooError


class CorpusError(ZooError):
    """An empty, unreadable or too-small corpus; the message names the fix."""


_HEADING_RULE = re.compile(r"^[*=\-~^]{3,}$")
_MIN_DOC_CHARS = 200


def _split_sections(text: str) -> List[str]:
    """Cut reStructuredText-rendered text at headings (a title line underlined by *, =, -, ~, ^).

    Sections shorter than 200 characters (a heading with one line under it) are merged into
    the following one so that no document is a bare title.
    """
    lines = text.strip("\n").split("\n")
    sections: List[List[str]] = [[]]
    for i, line in enumerate(lines):
        rule = line.strip()
        prev = lines[i - 1].rstrip() if i else ""
        if i and _HEADING_RULE.match(rule) and prev.strip() and abs(len(rule) - len(prev)) <= 2:
            title = sections[-1].pop()
            sections.append([title, line])
            continue
        sections[-1].append(line)
    docs: List[str] = []
    carry = ""
    for sec in sections:
        body = "\n".join(sec).strip()
        if not body:
            continue
        body = f"{carry}\n\n{body}" if carry else body
        if len(body) < _MIN_DOC_CHARS:
            carry = body
            continue
        docs.append(body)
        carry = ""
    if carry:
        if docs:
            docs[-1] = f"{docs[-1]}\n\n{carry}"
        else:
            docs.append(carry)
    return docs


def pydoc_documents() -> List[str]:
    """The ``pydoc`` embedded corpus: CPython's documentation topics, one document per section."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions split the stdlib; say which piece is missing
        raise CorpusError(
            "the embedded corpus needs the standard-library module pydoc_data "
            "(Debian/Ubuntu: apt-get install libpython3-stdlib); or use data.type=text/jsonl/hf"
        ) from None
    docs: List[str] = []
    for key in sorted(topics):
        docs.extend(_split_sections(topics[key]))
    return docs


_SKIP_STDLIB = {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3", "tkinter", "turtledemo",
                "ensurepip", "pydoc_data", "__pycache__"}


def stdlib_docstrings(lib: Optional[str] = None) -> List[str]:
    """Docstrings (>= 200 characters) of the standard library's modules, classes and functions.

    Read with ``ast`` from the source files (nothing is imported), in sorted path order;
    about 1.1 MB of English on CPython 3.11. Parsing takes a few seconds, so the result is
    cached as JSON beside the tokenizers (keyed by the Python version and stdlib path).
    """
    import ast
    import json
    import sys
    import sysconfig
    from pathlib import Path

    lib = Path(lib or sysconfig.get_paths()["stdlib"])
    key = hashlib.sha256(f"{sys.version}|{lib}".encode()).hexdigest()[:16]
    from zoo.data.tokenizer import default_cache_dir

    cache = default_cache_dir().parent / "corpora" / f"stdlib-docstrings-{key}.json"
    if cache.is_file():
        try:
            return json.loads(cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    docs: List[str] = []
    seen = set()
    for f in sorted(lib.rglob("*.py")):
        if _SKIP_STDLIB & set(f.relative_to(lib).parts):
            continue
        try:
            tree = ast.parse(f.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                d = ast.get_docstring(node)
                if d and len(d) >= _MIN_DOC_CHARS and d not in seen:
                    seen.add(d)
                    docs.append(d)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(docs), encoding="utf-8")
        tmp.replace(cache)
    except OSError:
        pass
    return docs


def python_documents() -> List[str]:
    """The ``python`` embedded corpus: ``pydoc`` plus ``stdlib_docstrings`` (~1.6 MB of English)."""
    return pydoc_documents() + stdlib_docstrings()


EMBEDDED: Dict[str, Callable[[], List[str]]] = {"pydoc": pydoc_documents, "python": python_documents}
DEFAULT_EMBEDDED = "pydoc"


def in_validation(text: str, val_fraction: float) -> bool:
    """Whether a document belongs to the held-out split: crc32 of its UTF-8 text, scaled to [0, 1)."""
    return zlib.crc32(text.encode("utf-8")) / 2**32 < val_fraction


def split_documents(docs: List[str], val_fraction: float) -> "tuple[List[str], List[str]]":
    """(train, val) by ``in_validation``; with >= 2 documents each side gets at least one."""
    is_val = [in_validation(d, val_fraction) for d in docs]
    if len(docs) >= 2 and (all(is_val) or not any(is_val)):
        # Move the document whose hash lies nearest the cut to the empty side.
        order = sorted(range(len(docs)), key=lambda i: zlib.crc32(docs[i].encode("utf-8")))
        move = order[-1] if all(is_val) else order[0]
        is_val[move] = not is_val[move]
    train = [d for d, v in zip(docs, is_val) if not v]
    val = [d for d, v in zip(docs, is_val) if v]
    return train, val


@dataclass
class Corpus:
    """Documents of a training and a validation split.

    ``train_documents()`` / ``val_documents()`` return fresh iterators each call (a streamed
    corpus re-opens its stream). ``finite`` says whether they end; ``description`` is for logs.
    """

    description: str
    finite: bool
    _train: Callable[[], Iterator[str]]
    _val: Callable[[], Iterator[str]]

    def train_documents(self) -> Iterator[str]:
        return self._train()

    def val_documents(self) -> Iterator[str]:
        return self._val()

    @classmethod
    def from_documents(cls, docs: Iterable[str], val_fraction: float, description: str) -> "Corpus":
        """A finite corpus from a list of documents (empty ones dropped), split by hash."""
        docs = [d for d in docs if d and d.strip()]
        if not docs:
            raise CorpusError(f"{description}: no documents (empty input); point data.path at non-empty text")
        if len(docs) < 2:
            raise CorpusError(
                f"{description}: only one document, so nothing can be held out for validation; "
                "give at least two documents (for text files: separate them with a blank line)"
            )
        train, val = split_documents(docs, val_fraction)
        return cls(description, True, lambda: iter(train), lambda: iter(val))


def embedded_corpus(name: Optional[str], val_fraction: float) -> Corpus:
    """One of ``EMBEDDED`` (default ``pydoc``) as a Corpus."""
    name = name or DEFAULT_EMBEDDED
    if name not in EMBEDDED:
        raise CorpusError(f"unknown embedded corpus {name!r}; available: {', '.join(EMBEDDED)}")
    return Corpus.from_documents(EMBEDDED[name](), val_fraction, f"embedded corpus {name!r}")


def text_fingerprint(texts: Iterable[str]) -> str:
    """sha256 hex of the texts, separated so that document boundaries count."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()
