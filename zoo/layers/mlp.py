"""SwiGLU feed-forward: down(silu(gate(x)) * up(x))."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _SiluMulFn(torch.autograd.Function):
    """silu(g) * u, saving only g and u (autograd would also keep silu(g))."""

    @staticmethod
    def forward(ctx, g, u):
        ctx.save_for_backward(g, u)
        return F.silu(g) * u

    @staticmethod
    def backward(ctx, dh):
        g, u = ctx.saved_tensors
        dt = torch.promote_types(g.dtype, torch.float32)
        gf, dhf = g.to(dt), dh.to(dt)
        s = torch.sigmoid(gf)
        dg = dhf * u.to(dt) * s * (1 + gf * (1 - s))
        return dg.to(g.dtype), (dhf * gf * s).to(u.dtype)


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(d_model, hidden, bias=False)
        self.up_proj = nn.Linear(d_model, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, u = self.gate_proj(x), self.up_proj(x)
        return self.down_proj(_SiluMulFn.apply(g, u) if torch.is_grad_enabled() else F.silu(g) * u)

    def flops_per_token(self) -> float:
        return 2.0 * sum(m.weight.numel() for m in (self.gate_proj, self.up_proj, self.down_proj))
