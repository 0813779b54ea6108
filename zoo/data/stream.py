"""The base of the endless training datasets: the position is one global batch index.

Batch ``i`` is a pure function of the data settings and ``i``, so saving ``batch_index`` and
restoring it (``load_state_dict``, or ``seek`` by batches consumed) resumes exactly.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, Tuple

import torch
from torch.utils.data import IterableDataset


class BatchStream(IterableDataset):
    """Subclasses define ``batch(index)`` (or their own ``__iter__``), ``state_dict()`` with a
    ``batch_index`` entry, and ``resume_keys``: the state entries that must equal this run's."""

    resume_keys: Tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.batch_index = 0

    def _set_rank(self, rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world_size {world_size}")
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[Dict[str, torch.Tensor]]:
        while True:
            b = self.batch(self.batch_index)
            self.batch_index += 1
            yield b

    def seek(self, batch_index: int) -> None:
        """Continue from global batch ``batch_index`` (e.g. optimizer steps * grad accumulation)."""
        self.batch_index = int(batch_index)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        mine = self.state_dict()
        for k in self.resume_keys:
            if k in state and state[k] != mine[k]:
                raise ValueError(
                    f"data state from a checkpoint does not match this run: {k}={state[k]} there, "
                    f"{mine[k]} here; resume with the same data settings (seq_len, batch size x devices, corpus, seed)"
                )
        self.batch_index = int(state["batch_index"])
