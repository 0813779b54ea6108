"""Packed documents: ``cu_seqlens`` (int [N+1]) marks document starts in a flattened sequence."""
from __future__ import annotations

from typing import Sequence, Union

import torch


def positions_in_document(cu_seqlens: Union[torch.Tensor, Sequence[int]], total: int,
                          device: Union[torch.device, str, None] = None) -> torch.Tensor:
    """[total] long: each flattened token's offset from the start of its document.

    Example: cu_seqlens [0, 3, 4, 7] → [0, 1, 2, 0, 0, 1, 2]. Empty documents are allowed.
    """
    cu = torch.as_tensor(cu_seqlens, device=device).long()
    starts = torch.repeat_interleave(cu[:-1], cu.diff(), output_size=total)
    return torch.arange(total, device=cu.device) - starts
