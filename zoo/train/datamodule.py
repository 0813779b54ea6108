"""``ZooDataModule``: the data pipeline of ``zoo.data`` shaped into optimizer steps.

Each item the training loader yields is one optimizer step for this rank::

    {"micro": [batch, ...],      # accumulate × contract batches of micro_batch_size rows
     "n_tokens": int,            # target tokens (labels != -100) in this rank's share
     "data_index": int}          # index of the global batch in the data stream

The stream is ``zoo.data``'s resumable dataset: global batch ``i`` is a pure function of the
seed and ``i`` (rank r takes its slice), so the exact data position is one integer. The module
reports each consumed index back (``mark_consumed``); ``state_dict`` saves the next index to
draw, and a resumed run continues there — a prefetched but unconsumed batch is drawn again.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from zoo.config import RunConfig


def split_rows(batch: Dict[str, torch.Tensor], rows: int) -> List[Dict[str, torch.Tensor]]:
    """Cut a contract batch [B, T] into batches of ``rows`` rows, re-basing ``cu_seqlens``.

    Every row boundary is a document boundary, so each piece's offsets are the original ones
    inside ``[a·T, b·T]`` shifted by ``-a·T``.
    """
    B, T = batch["input_ids"].shape
    if rows >= B:
        return [batch]
    out = []
    cu = batch.get("cu_seqlens")
    for a in range(0, B, rows):
        b = min(a + rows, B)
        piece = {k: v[a:b] for k, v in batch.items() if k in ("input_ids", "labels")}
        if cu is not None:
            inside = cu[(cu >= a * T) & (cu <= b * T)]
            piece["cu_seqlens"] = (inside - a * T).to(torch.int32)
        out.append(piece)
    return out


class _Steps(IterableDataset):
    """Wraps a resumable per-rank batch stream into per-step items (see module docstring)."""

    def __init__(self, data, micro_rows: int, start: int):
        super().__init__()
        self.data, self.micro_rows, self.start = data, micro_rows, start

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        self.data.seek(self.start)
        for index, batch in enumerate(self.data, start=self.start):
            yield {"micro": split_rows(batch, self.micro_rows),
                   "n_tokens": int((batch["labels"] != -100).sum()),
                   "data_index": index}


class ZooDataModule(L.LightningDataModule):
    """Builds tokenizer + train/validation data for ``cfg`` (``prepare`` runs before the trainer).

    ``tokenizer`` is None for synthetic data. ``vocab_size`` is what the model must cover;
    ``objective`` is ``"lm"``, or ``"autoencode"`` (MAD compression: the module adds a decoder head).
    """

    def __init__(self, cfg: RunConfig, world_size: int = 1, rank: int = 0, device: str = "cpu"):
        super().__init__()
        self.cfg = cfg
        self.world_size, self.rank, self.device = world_size, rank, device
        self.per_device, self.micro_rows, self.accumulate = cfg.train.layout(world_size)
        self.next_index = 0
        self.tokenizer = None
        self.vocab_size: Optional[int] = None
        self.objective = "lm"
        self.train_data = None
        self.val_data = None
        self.description = ""
        self._corpus = None

    # ---- building ----------------------------------------------------------------------
    def prepare(self) -> "ZooDataModule":
        """Load and tokenize the corpus (or set up the synthetic task). Idempotent.

        Raises zoo.data's DataConfigError / CorpusError (empty or too-small corpus) with the fix.
        """
        if self.train_data is not None:
            return self
        from zoo.data import build_datasets, build_tokenizer, load_corpus

        data_cfg = self.cfg.data
        if not data_cfg.synthetic and self._corpus is None:
            self._corpus = load_corpus(data_cfg)
        if self.tokenizer is None:
            self.tokenizer = build_tokenizer(data_cfg, self._corpus)
        self.train_data, self.val_data = build_datasets(
            data_cfg, self.tokenizer, batch_size=self.per_device, val_batch_size=self.cfg.train.batch_size,
            rank=self.rank, world_size=self.world_size, device=self.device, corpus=self._corpus)
        self.vocab_size = self.train_data.vocab_size
        self.objective = self.train_data.objective
        self.description = self._corpus.description if self._corpus is not None else data_cfg.type
        return self

    def set_distributed(self, rank: int, world_size: int, device: Optional[str] = None) -> None:
        """Re-slice the stream for the real rank/world size once the trainer knows them."""
        if (rank, world_size) == (self.rank, self.world_size) and (device is None or device == self.device):
            return
        self.rank, self.world_size = rank, world_size
        self.device = device or self.device
        self.per_device, self.micro_rows, self.accumulate = self.cfg.train.layout(world_size)
        self.train_data = None
        self.prepare()

    def setup(self, stage: str) -> None:
        trainer = self.trainer
        if trainer is not None:
            root = trainer.strategy.root_device
            device = str(root) if root.type == "cuda" and self.cfg.data.synthetic else None
            self.set_distributed(trainer.global_rank, trainer.world_size, device)
        self.prepare()

    # ---- loaders -----------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        # pinned batches copy to a GPU without waiting for it (a pageable copy syncs the stream first);
        # synthetic batches are made on the GPU already
        pin = (self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"
               and not self.cfg.data.synthetic)
        return DataLoader(_Steps(self.train_data, self.micro_rows, self.next_index), batch_size=None, num_workers=0,
                          pin_memory=pin)

    def val_batches_for_rank(self, pad: bool = False) -> List[Dict[str, torch.Tensor]]:
        """This rank's rows of the first ``train.val_batches`` held-out batches, in micro batches.

        Held-out batches have ``train.batch_size`` (global) rows; rank r takes the r-th of
        ``world_size`` row slices of each, so every device count evaluates the same tokens.
        With ``pad`` (FSDP, whose forwards are collective), a rank with fewer micro batches than
        rank 0 (the busiest: it takes a full slice of each) is topped up with copies of the first
        held-out micro batch whose labels are all -100: they run but count nothing.
        """
        n = self.cfg.train.val_batches
        if hasattr(self.val_data, "__len__"):
            n = min(n, len(self.val_data))
        out: List[Dict[str, torch.Tensor]] = []
        busiest = 0
        for i in range(n):
            batch = self.val_data[i]
            rows = batch["input_ids"].shape[0]
            share = -(-rows // self.world_size)
            pieces = split_rows(batch, share)
            if self.rank < len(pieces):
                out.extend(split_rows(pieces[self.rank], self.micro_rows))
            busiest += -(-min(rows, share) // self.micro_rows)
        if pad and len(out) < busiest:
            first = split_rows(self.val_data[0], self.micro_rows)[0]
            out += [dict(first, labels=torch.full_like(first["labels"], -100))] * (busiest - len(out))
        return out

    # ---- exact resume ------------------------------------------------------------------
    def mark_consumed(self, data_index: int) -> None:
        self.next_index = int(data_index) + 1

    def state_dict(self) -> Dict[str, Any]:
        state = dict(self.train_data.state_dict()) if self.train_data is not None else {}
        state["batch_index"] = self.next_index
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if self.train_data is not None:
            self.train_data.load_state_dict(state)
        self.next_index = int(state["batch_index"])
