"""SwiGLU feed-forward: down(silu(gate(x)) * up(x)); silu * mul is one fused Triton kernel per
direction on CUDA (zoo.kernels.norm.silu_mul), its PyTorch reference elsewhere, and keeps only
gate(x) and up(x) for the backward."""
from __future__ import annotations

import torch
from torch import nn

from zoo.kernels.norm import silu_mul, torch_silu_mul
from zoo.kernels.utils import use_triton


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(d_model, hidden, bias=False)
        self.up_proj = nn.Linear(d_model, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, u = self.gate_proj(x), self.up_proj(x)
        return self.down_proj((silu_mul if use_triton(g, u) else torch_silu_mul)(g, u))

    def flops_per_token(self) -> float:
        return 2.0 * sum(m.weight.numel() for m in (self.gate_proj, self.up_proj, self.down_proj))
