"""Packing documents into fixed-length rows that keep their boundaries.

Layout. The token stream is ``EOS d1 EOS d2 EOS ... dn EOS``: every document is *preceded*
by EOS. A row is a window of ``seq_len + 1`` stream tokens; ``input_ids = w[:-1]`` and
``labels = w[1:]``. Consecutive windows overlap by one token, so every stream token is
predicted exactly once per epoch. Document segments start at each EOS, and at each row
start::

    stream   E  a  b  c  E  x  y  E  p  q ...
    input    E  a  b  c  E  x  y  E          cu_seqlens (one row) = [0, 4, 7, 8]
    labels   a  b  c  E  x  y  E  p

Because the separator opens a document, no label crosses a boundary in a harmful way: the
last token of a document predicts EOS ("the document ends here") from its own document's
context, and EOS predicts a document's first token from nothing. So all labels are kept
(none is -100) and the recurrent state never carries one document into the next.

Batches are dicts: ``input_ids`` long [B, T], ``labels`` long [B, T], ``cu_seqlens`` int32
[N+1] over the flattened B*T tokens, starting at 0, ending at B*T, with every row start
(multiples of T) a boundary.

Training order is a pure function of ``(seed, batch index)``: epoch e draws a random offset
in [0, T) and a permutation of the rows from ``numpy.random.default_rng([seed, e])``, so
resuming is ``load_state_dict`` / ``seek(index)`` — exact, without replaying data. Under
data parallelism the global batch of ``batch_size * world_size`` rows is drawn once and rank
r takes its r-th slice, so any world size sees the same global batches.
"""
from __future__ import annotations

import math
from itertools import islice
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.data.corpus import CorpusError
from zoo.data.stream import BatchStream


def pack_documents(token_lists: Iterable[List[int]], eos_id: int, limit: Optional[int] = None) -> np.ndarray:
    """The stream ``EOS d1 EOS d2 ... EOS`` as int32 [L]; stops adding documents once ``limit`` tokens are reached."""
    parts: List[np.ndarray] = []
    eos = np.array([eos_id], dtype=np.int32)
    n = 0
    for ids in token_lists:
        if not len(ids):
            continue
        parts.append(eos)
        parts.append(np.asarray(ids, dtype=np.int32))
        n += 1 + len(ids)
        if limit is not None and n >= limit:
            break
    if not parts:
        return np.zeros(0, dtype=np.int32)
    parts.append(eos)
    return np.concatenate(parts)


def cu_seqlens_from_eos(input_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """Segment boundaries int32 [N+1] over flattened ``input_ids`` [B, T]: each EOS and each row start opens a segment."""
    B, T = input_ids.shape
    flat = input_ids.reshape(-1)
    start = torch.zeros(B * T + 1, dtype=torch.bool, device=input_ids.device)
    start[:-1] = flat == eos_id
    start[0 : B * T : T] = True
    start[-1] = True
    return start.nonzero().squeeze(1).to(torch.int32)


def rows_to_batch(rows: np.ndarray, eos_id: int) -> Dict[str, torch.Tensor]:
    """[B, T+1] windows -> the batch dict (input_ids, labels, cu_seqlens)."""
    w = torch.from_numpy(np.ascontiguousarray(rows)).long()
    input_ids = w[:, :-1].contiguous()
    return {"input_ids": input_ids, "labels": w[:, 1:].contiguous(), "cu_seqlens": cu_seqlens_from_eos(input_ids, eos_id)}


class PackedTrainData(BatchStream):
    """Endless shuffled training batches from an in-memory token stream; exactly resumable.

    Args: ``tokens`` int32 [L] (``pack_documents``), ``seq_len`` T, ``batch_size`` B rows per
    rank, ``eos_id``, ``seed``, ``rank``/``world_size`` (data parallel; see module doc),
    ``vocab_size`` (recorded for the model). Iterating yields batch dicts forever, starting
    at the current position. ``state_dict()`` = ``{"batch_index": batches yielded, ...}``.
    Use it in ``DataLoader(ds, batch_size=None, num_workers=0)``.
    Raises CorpusError when the stream holds fewer rows than one global batch.
    """

    objective = "lm"
    resume_keys = ("seed", "seq_len", "global_batch", "n_tokens")

    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, eos_id: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1, vocab_size: Optional[int] = None):
        super().__init__()
        self.tokens = np.asarray(tokens, dtype=np.int32)
        self.seq_len, self.batch_size, self.eos_id, self.seed = seq_len, batch_size, eos_id, seed
        self.vocab_size = vocab_size
        self.n_rows = max(len(self.tokens) // seq_len - 1, 0)  # room for any offset in [0, T)
        self.set_distributed(rank, world_size)
        self._plan: Optional[tuple] = None

    def set_distributed(self, rank: int, world_size: int) -> None:
        self._set_rank(rank, world_size)
        global_rows = self.batch_size * world_size
        if self.n_rows < global_rows:
            need = (global_rows + 1) * self.seq_len
            raise CorpusError(
                f"training split too small: {len(self.tokens)} tokens make {self.n_rows} rows of "
                f"seq_len {self.seq_len}, fewer than one batch of {global_rows} rows (~{need} tokens). "
                "Use a larger corpus, or lower data.seq_len or the batch size"
            )
        self.batches_per_epoch = self.n_rows // global_rows

    def _epoch_plan(self, epoch: int) -> tuple:
        if self._plan is None or self._plan[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            offset = int(rng.integers(0, self.seq_len))
            self._plan = (epoch, offset, rng.permutation(self.n_rows))
        return self._plan

    def batch(self, index: int) -> Dict[str, torch.Tensor]:
        """The batch this rank sees at global batch ``index`` (pure function of seed and index)."""
        epoch, j = divmod(index, self.batches_per_epoch)
        _, offset, perm = self._epoch_plan(epoch)
        g = self.batch_size * self.world_size
        rows = perm[j * g + self.rank * self.batch_size : j * g + (self.rank + 1) * self.batch_size]
        starts = offset + rows.astype(np.int64) * self.seq_len
        return rows_to_batch(self.tokens[starts[:, None] + np.arange(self.seq_len + 1)], self.eos_id)

    def state_dict(self) -> Dict[str, Any]:
        return {"batch_index": self.batch_index, "seed": self.seed, "seq_len": self.seq_len,
                "global_batch": self.batch_size * self.world_size, "n_tokens": int(len(self.tokens))}

    @property
    def tokens_per_epoch(self) -> int:
        return self.batches_per_epoch * self.batch_size * self.world_size * self.seq_len


class PackedValData(Dataset):
    """Fixed validation batches: consecutive windows of the held-out stream, in order.

    Map-style (``len`` = number of batches, ``[i]`` = batch dict, the last one may have fewer
    rows), so Lightning's distributed sampler can shard it. ``max_tokens`` caps its size.
    Raises CorpusError when the held-out stream is shorter than one row.
    """

    objective = "lm"
    resume_keys = ("seed", "seq_len", "global_batch", "n_tokens")

    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, eos_id: int,
                 max_tokens: Optional[int] = None, vocab_size: Optional[int] = None):
        self.tokens = np.asarray(tokens, dtype=np.int32)
        self.seq_len, self.batch_size, self.eos_id, self.vocab_size = seq_len, batch_size, eos_id, vocab_size
        n = max((len(self.tokens) - 1) // seq_len, 0)
        if max_tokens is not None:
            n = min(n, max(max_tokens // seq_len, 1))
        if n == 0:
            raise CorpusError(
                f"validation split too small: {len(self.tokens)} tokens, fewer than one row of "
                f"seq_len {seq_len} + 1. Raise data.val_fraction or lower data.seq_len"
            )
        self.n_rows = n

    def __len__(self) -> int:
        return math.ceil(self.n_rows / self.batch_size)

    def __getitem__(self, i: int) -> Dict[str, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        rows = np.arange(i * self.batch_size, min((i + 1) * self.batch_size, self.n_rows))
        starts = rows * self.seq_len
        return rows_to_batch(self.tokens[starts[:, None] + np.arange(self.seq_len + 1)], self.eos_id)

    def __iter__(self) -> Iterator[Dict[str, torch.Tensor]]:
        return (self[i] for i in range(len(self)))


class StreamingTrainData(BatchStream):
    """Training batches packed on the fly from a document stream (Hugging Face streaming).

    Rows are consecutive windows of the stream (no shuffling beyond the source's own);
    when the stream ends it starts over. ``state_dict``/``load_state_dict``/``seek`` restore
    the position exactly by re-reading the stream and skipping that many global batches
    (tokenization cost, no model work).
    ``token_lists``: a callable returning a fresh iterator of per-document token ids.
    """

    objective = "lm"
    resume_keys = ("seq_len", "global_batch")

    def __init__(self, token_lists: Callable[[], Iterator[List[int]]], seq_len: int, batch_size: int,
                 eos_id: int, rank: int = 0, world_size: int = 1, vocab_size: Optional[int] = None):
        super().__init__()
        self.token_lists, self.seq_len, self.batch_size, self.eos_id = token_lists, seq_len, batch_size, eos_id
        self.vocab_size = vocab_size
        self.set_distributed(rank, world_size)

    def set_distributed(self, rank: int, world_size: int) -> None:
        self._set_rank(rank, world_size)

    def _global_windows(self) -> Iterator[np.ndarray]:
        g, T = self.batch_size * self.world_size, self.seq_len
        need = g * T + 1
        while True:
            buf = np.zeros(0, dtype=np.int32)
            produced = False
            for ids in self.token_lists():
                if not len(ids):
                    continue
                buf = np.concatenate([buf, np.array([self.eos_id], np.int32), np.asarray(ids, np.int32)])
                while len(buf) >= need:
                    yield buf[np.arange(g)[:, None] * T + np.arange(T + 1)]
                    buf = buf[g * T :]
                    produced = True
            if not produced:
                raise CorpusError(
                    f"the training stream ended before filling one batch ({need} tokens); "
                    "use a larger dataset, or lower data.seq_len or the batch size"
                )

    def __iter__(self) -> Iterator[Dict[str, torch.Tensor]]:
        windows = islice(self._global_windows(), self.batch_index, None)
        lo, hi = self.rank * self.batch_size, (self.rank + 1) * self.batch_size
        for w in windows:
            self.batch_index += 1
            yield rows_to_batch(w[lo:hi], self.eos_id)

    def state_dict(self) -> Dict[str, Any]:
        return {"batch_index": self.batch_index, "seq_len": self.seq_len,
                "global_batch": self.batch_size * self.world_size}
