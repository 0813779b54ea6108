"""Tokenizers: a byte-level BPE trained on the corpus (cached), a hub tokenizer, or a file.

All three end up as a ``ZooTokenizer``: a ``tokenizers.Tokenizer`` plus the id of the EOS
token that separates documents. The packed stream is ``EOS doc1 EOS doc2 ...`` (see
zoo.data.packing), so a prompt in the training distribution starts with EOS as well.

``ZooTokenizer.save(model_dir)`` writes ``tokenizer.json`` (Hugging Face ``tokenizers``
format, what the run's ``model/`` directory holds) and ``tokenizer_config.json`` with the EOS
token; ``load_tokenizer(model_dir)`` reads them back.

BPE cache: ``<cache_dir>/bpe-<key>.json`` where the key hashes the training text, the vocab
size, min_frequency and a format version — a rerun on the same corpus loads it (milliseconds)
instead of retraining, and a changed corpus can never pick up a stale tokenizer.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence

from zoo.data.config import DataConfigError, TokenizerConfig

EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "[SEP]")
BPE_EOS = "<|endoftext|>"
_BPE_FORMAT = "zoo-bytelevel-bpe-v1"


class ZooTokenizer:
    """A ``tokenizers.Tokenizer`` with a known EOS id.

    Attributes: ``tk`` (the wrapped tokenizer), ``eos_id`` (int), ``eos_token`` (str),
    ``vocab_size`` (int, including special tokens; the model's vocab must be at least this).
    """

    def __init__(self, tk, eos_token: Optional[str] = None):
        self.tk = tk
        if eos_token is None:
            specials = {t.content for t in tk.get_added_tokens_decoder().values() if t.special}
            eos_token = next((c for c in EOS_CANDIDATES if c in specials), None)
            if eos_token is None:
                eos_token = next((c for c in EOS_CANDIDATES if tk.token_to_id(c) is not None), None)
            if eos_token is None:
                raise DataConfigError(
                    "the tokenizer has none of the usual EOS tokens "
                    f"({', '.join(EOS_CANDIDATES)}); set tokenizer.eos_token to its document separator"
                )
        eos_id = tk.token_to_id(eos_token)
        if eos_id is None:
            raise DataConfigError(f"tokenizer.eos_token={eos_token!r} is not in the tokenizer's vocabulary")
        self.eos_token = eos_token
        self.eos_id = int(eos_id)

    @property
    def vocab_size(self) -> int:
        return self.tk.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> List[int]:
        """Token ids of ``text`` (no EOS added)."""
        return self.tk.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> List[List[int]]:
        """Token ids of each text (no EOS added); parallel inside ``tokenizers``."""
        return [e.ids for e in self.tk.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        return self.tk.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``tokenizer.json`` + ``tokenizer_config.json`` into ``directory``; returns the json path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "tokenizer.json"
        _atomic_write(path, self.tk.to_str())
        _atomic_write(directory / "tokenizer_config.json", json.dumps({"eos_token": self.eos_token}) + "\n")
        return path

    def __repr__(self) -> str:
        return f"ZooTokenizer(vocab_size={self.vocab_size}, eos={self.eos_token!r}:{self.eos_id})"


def save_tokenizer(tokenizer: ZooTokenizer, directory: str | os.PathLike) -> Path:
    """``tokenizer.save(directory)``: the run's ``model/tokenizer.json``."""
    return tokenizer.save(directory)


def load_tokenizer(path: str | os.PathLike, eos_token: Optional[str] = None) -> ZooTokenizer:
    """A tokenizer from ``tokenizer.json`` or a directory holding it (e.g. ``runs/x/model``)."""
    from tokenizers import Tokenizer

    path = Path(path)
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise DataConfigError(f"no tokenizer at {file}; expected a tokenizer.json (written by zoo train)")
    side = file.parent / "tokenizer_config.json"
    if eos_token is None and side.is_file():
        try:
            eos_token = json.loads(side.read_text()).get("eos_token")
        except (json.JSONDecodeError, AttributeError):
            eos_token = None
    return ZooTokenizer(Tokenizer.from_file(str(file)), eos_token)


def default_cache_dir() -> Path:
    root = os.environ.get("ZOO_CACHE_DIR")
    return Path(root) / "tokenizers" if root else Path.home() / ".cache" / "zoo" / "tokenizers"


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _take_chars(docs: Iterable[str], limit: int) -> List[str]:
    out, n = [], 0
    for d in docs:
        if n >= limit:
            break
        d = d[: limit - n]
        out.append(d)
        n += len(d)
    return out


def train_bpe(texts: Sequence[str], vocab_size: int, min_frequency: int = 2):
    """Train a byte-level BPE (``tokenizers.Tokenizer``) on ``texts``; EOS = ``<|endoftext|>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[BPE_EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(iter(texts), trainer=trainer, length=len(texts))
    return tk


def bpe_cache_key(texts: Sequence[str], vocab_size: int, min_frequency: int) -> str:
    h = hashlib.sha256(f"{_BPE_FORMAT}|{vocab_size}|{min_frequency}|".encode())
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:24]


def build_tokenizer(cfg: TokenizerConfig, documents: Optional[Iterable[str]] = None) -> ZooTokenizer:
    """A ZooTokenizer per ``cfg``.

    ``documents``: the training documents, needed for ``type: bpe`` only (its first
    ``cfg.train_chars`` characters are learnt from). Returns the cached BPE when one was
    trained on the same text with the same settings. Raises DataConfigError with the fix when
    a hub tokenizer cannot be fetched (offline) or no documents are given for BPE.
    """
    cfg.validate()
    if cfg.type == "file":
        return load_tokenizer(cfg.path, cfg.eos_token)
    if cfg.type == "pretrained":
        return _pretrained(cfg.name, cfg.eos_token)
    if documents is None:
        raise DataConfigError("tokenizer.type=bpe needs the training documents to learn from")
    texts = _take_chars(documents, cfg.train_chars)
    if not texts or not any(t.strip() for t in texts):
        raise DataConfigError("tokenizer.type=bpe: the training documents are empty; nothing to learn from")
    cache = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    file = cache / f"bpe-{bpe_cache_key(texts, cfg.vocab_size, cfg.min_frequency)}.json"
    if file.is_file():
        return load_tokenizer(file, BPE_EOS)
    tk = train_bpe(texts, cfg.vocab_size, cfg.min_frequency)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        _atomic_write(file, tk.to_str())
    except OSError as err:  # a read-only cache is a notice, not a failure
        print(f"zoo.data: notice: could not cache the tokenizer at {file} ({err}); it will be retrained next run")
    return ZooTokenizer(tk, BPE_EOS)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection (honours HF_ENDPOINT, HF_HUB_OFFLINE)."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
        return True
    except OSError:
        return False


def _pretrained(name: str, eos_token: Optional[str]) -> ZooTokenizer:
    """A hub tokenizer: from the local HF cache when it is there, else downloaded.

    Offline with nothing cached fails at once with the fix, instead of retrying for half a minute.
    """
    from tokenizers import Tokenizer

    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo_id=name, filename="tokenizer.json")
    except Exception:  # not installed, or a malformed name: let from_pretrained report it
        cached = None
    if isinstance(cached, str) and os.path.isfile(cached):
        return ZooTokenizer(Tokenizer.from_file(cached), eos_token)
    fix = "Use tokenizer.type=bpe (trained on the corpus) or tokenizer.type=file tokenizer.path=DIR"
    if not hub_reachable():
        raise DataConfigError(f"cannot load tokenizer {name!r}: it is not in the local Hugging Face cache and the hub "
                              f"is unreachable (offline?). {fix}")
    try:
        tk = Tokenizer.from_pretrained(name)
    except Exception as err:  # unknown repo, no tokenizer.json, network trouble
        first = str(err).splitlines()[0] if str(err) else ""
        raise DataConfigError(f"cannot load tokenizer {name!r} from the Hugging Face hub ({type(err).__name__}: "
                              f"{first}). A typo, or a model without tokenizer.json? {fix}") from None
    return ZooTokenizer(tk, eos_token)


def iter_token_ids(tokenizer: ZooTokenizer, docs: Iterable[str], batch: int = 256) -> Iterator[List[int]]:
    """Token ids per document, encoded ``batch`` documents at a time."""
    it = iter(docs)
    while True:
        chunk = list(islice(it, batch))
        if not chunk:
            return
        yield from tokenizer.encode_batch(chunk)
