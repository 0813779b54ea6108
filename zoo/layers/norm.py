"""RMSNorm (plain and output-gated: rmsnorm(o) * silu(gate)) and the L2 norm of DeltaNet's q, k.

CUDA tensors run the fused Triton kernels of zoo.kernels.norm, others its PyTorch references
(torch_rms_norm, torch_l2_normalize). Both compute in at least fp32 and save only their inputs
and one scalar per row for the backward, which recomputes the rest: the autograd graph of the
same arithmetic would keep two or three fp32 copies of every normalised activation. Under
autocast, RMSNorm returns the autocast dtype, so the projections that read it share one
low-precision copy instead of casting one each.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from zoo.kernels.norm import l2_normalize as _l2_normalize_triton
from zoo.kernels.norm import rms_norm, torch_l2_normalize, torch_rms_norm
from zoo.kernels.utils import use_triton


def _autocast_dtype(x: torch.Tensor) -> torch.dtype:
    kind = x.device.type
    return torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else x.dtype


class RMSNorm(nn.Module):
    """x / rms(x) * weight over the last dim [× silu(gate)], in at least fp32.

    Returns x's dtype, or the autocast dtype while autocast is on."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor, gate: Optional[torch.Tensor] = None) -> torch.Tensor:
        fn = rms_norm if use_triton(x, self.weight, gate) else torch_rms_norm
        return fn(x, self.weight, gate, self.eps, _autocast_dtype(x))


def l2_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x / max(‖x‖, eps) over the last dim, computed in at least fp32, returned in x's dtype
    (``F.normalize`` on an fp32 copy, without keeping that copy for the backward)."""
    return (_l2_normalize_triton if use_triton(x) else torch_l2_normalize)(x, eps)
