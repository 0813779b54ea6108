"""Synthetic tasks as training data: fresh batches every step, generated on the training device.

Batch ``i`` of the training stream is drawn from a generator seeded with ``(seed, i)``, so the
stream is a pure function of the seed and resuming is just ``seek(i)`` / ``load_state_dict``.
With ``pool_size > 0`` (MAD's protocol: a fixed training set, e.g. 12,800 examples) the pool
is generated once from the seed and batches walk through a fresh permutation of it each
epoch instead. Under data parallelism each rank draws the whole global batch and keeps its
slice (generation costs milliseconds), so any world size trains on the same global batches.
Validation batches use a separate seed stream and are identical at every evaluation.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, Optional

import torch
from torch.utils.data import Dataset

from zoo.data.stream import BatchStream

Generate = Callable[[int, torch.Generator], Dict[str, torch.Tensor]]
_VAL_STREAM = 0x5EED_0FF5
_POOL_STREAM = 0x9001


def _seeded(seed: int, stream: int, index: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    # splitmix-style mixing keeps nearby (seed, index) pairs far apart
    x = (seed * 0x9E3779B97F4A7C15 + stream * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) % (1 << 63)
    g.manual_seed(x)
    return g


def accuracy(logits_or_preds: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of query positions (``labels != -100``) predicted exactly.

    ``logits_or_preds``: logits [B, T, V] (argmax taken) or predicted ids [B, T].
    Returns nan when there is no query position.
    """
    preds = logits_or_preds.argmax(-1) if logits_or_preds.dim() == labels.dim() + 1 else logits_or_preds
    mask = labels != -100
    n = int(mask.sum())
    if n == 0:
        return float("nan")
    return float((preds[mask] == labels[mask]).sum()) / n


class SyntheticTrainData(BatchStream):
    """Endless batches of a generator ``generate(batch_size, torch.Generator) -> batch dict``.

    ``device``: where batches are generated (set it to the training device; attribute
    ``device`` may be reassigned before iterating). ``pool_size``: 0 draws fresh examples
    every step; N > 0 trains on a fixed set of N examples, reshuffled each epoch.
    ``state_dict`` = batches yielded. ``objective``: ``"lm"``, or ``"autoencode"`` for tasks
    scored by reconstructing the input from the final state (MAD compression).
    """

    eos_id = None  # no document separator in synthetic tasks
    resume_keys = ("seed", "global_batch")

    def __init__(self, generate: Generate, batch_size: int, seed: int = 0, device: Any = "cpu",
                 rank: int = 0, world_size: int = 1, vocab_size: Optional[int] = None, name: str = "",
                 pool_size: int = 0, objective: str = "lm"):
        super().__init__()
        self.generate, self.batch_size, self.seed = generate, batch_size, seed
        self.device = torch.device(device)
        self.vocab_size, self.name, self.objective = vocab_size, name, objective
        self.pool_size = int(pool_size)
        self._pool: Optional[Dict[str, torch.Tensor]] = None
        self._perm: Optional[tuple] = None
        self.set_distributed(rank, world_size)

    def set_distributed(self, rank: int, world_size: int) -> None:
        self._set_rank(rank, world_size)
        g = self.batch_size * world_size
        if self.pool_size and self.pool_size < g:
            raise ValueError(f"a training pool of {self.pool_size} examples is smaller than one global batch ({g}); "
                             "raise num_train_examples or lower the batch size")

    def _global(self, index: int) -> Dict[str, torch.Tensor]:
        g = self.batch_size * self.world_size
        if not self.pool_size:
            return self.generate(g, _seeded(self.seed, 0, index, self.device))
        if self._pool is None or next(iter(self._pool.values())).device != self.device:
            self._pool = self.generate(self.pool_size, _seeded(self.seed, _POOL_STREAM, 0, self.device))
        per_epoch = self.pool_size // g
        epoch, j = divmod(index, per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            cpu = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(self.pool_size, generator=cpu).to(self.device))
        rows = self._perm[1][j * g : (j + 1) * g]
        return {k: v[rows] for k, v in self._pool.items()}

    def batch(self, index: int) -> Dict[str, torch.Tensor]:
        """This rank's share of global batch ``index``."""
        full = self._global(index)
        if self.world_size == 1:
            return full
        lo, hi = self.rank * self.batch_size, (self.rank + 1) * self.batch_size
        return {k: v[lo:hi] for k, v in full.items()}

    def state_dict(self) -> Dict[str, Any]:
        return {"batch_index": self.batch_index, "seed": self.seed, "global_batch": self.batch_size * self.world_size}


class SyntheticValData(Dataset):
    """``n_examples`` fixed validation examples in batches of ``batch_size`` (the last may be
    smaller); map-style, the same tensors at every evaluation. ``generate`` should produce test
    targets (labels only at the probed positions), so ``accuracy`` scores exactly those."""

    eos_id = None  # no document separator in synthetic tasks
    resume_keys = ("seed", "global_batch")

    def __init__(self, generate: Generate, batch_size: int, n_examples: int, seed: int = 0, device: Any = "cpu",
                 vocab_size: Optional[int] = None, name: str = "", objective: str = "lm"):
        if n_examples < 1:
            raise ValueError(f"synthetic validation needs >= 1 example, got {n_examples}")
        self.generate, self.batch_size, self.n_examples, self.seed = generate, batch_size, n_examples, seed
        self.device = torch.device(device)
        self.vocab_size, self.name, self.objective = vocab_size, name, objective

    def __len__(self) -> int:
        return -(-self.n_examples // self.batch_size)

    def __getitem__(self, i: int) -> Dict[str, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        b = min(self.batch_size, self.n_examples - i * self.batch_size)
        return self.generate(b, _seeded(self.seed, _VAL_STREAM, i, self.device))

    def __iter__(self) -> Iterator[Dict[str, torch.Tensor]]:
        return (self[i] for i in range(len(self)))
