"""RMSNorm (plain and output-gated: rmsnorm(o) * silu(gate)) and the L2 norm of DeltaNet's q, k.

Both compute in at least fp32 and save only their inputs and one scalar per row for the backward,
which recomputes the rest (without autograd, e.g. while decoding, they skip the Function): the autograd graph of the same arithmetic would keep two or three
fp32 copies of every normalised activation. Under autocast, RMSNorm returns the autocast dtype,
so the projections that read it share one low-precision copy instead of casting one each.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def _silu_grad(g: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(g)
    return s * (1 + g * (1 - s))


def _rms_norm(x, weight, gate, eps: float, out_dtype: torch.dtype):
    """(y, rstd [..., 1]): the forward of RMSNorm, with and without autograd."""
    dt = torch.promote_types(x.dtype, torch.float32)
    xf = x.to(dt)
    rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    y = xf * rstd * weight.to(dt)
    if gate is not None:
        y = y * F.silu(gate.to(dt))
    return y.to(out_dtype), rstd


class _RMSNormFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, gate, eps: float, out_dtype: torch.dtype):
        y, rstd = _rms_norm(x, weight, gate, eps, out_dtype)
        ctx.save_for_backward(x, weight, gate, rstd)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, gate, rstd = ctx.saved_tensors
        dt = rstd.dtype
        n = x.to(dt) * rstd
        dy = dy.to(dt)
        dgate = None
        if gate is not None:
            gf = gate.to(dt)
            dgate = (dy * n * weight.to(dt) * _silu_grad(gf)).to(gate.dtype)
            dy = dy * F.silu(gf)
        dweight = (dy * n).reshape(-1, n.shape[-1]).sum(0).to(weight.dtype)
        dn = dy * weight.to(dt)
        dx = rstd * (dn - n * (dn * n).mean(-1, keepdim=True))
        return dx.to(x.dtype), dweight, dgate, None, None


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
        args = (x, self.weight, gate, self.eps, _autocast_dtype(x))
        return _RMSNormFn.apply(*args) if torch.is_grad_enabled() else _rms_norm(*args)[0]


def _l2_norm(x, eps: float):
    """(y, ‖x‖ [..., 1]): the forward of l2_normalize, with and without autograd."""
    xf = x.to(torch.promote_types(x.dtype, torch.float32))
    norm = xf.norm(dim=-1, keepdim=True)
    return (xf / norm.clamp_min(eps)).to(x.dtype), norm


class _L2NormFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, eps: float):
        y, norm = _l2_norm(x, eps)
        ctx.save_for_backward(x, norm)
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx, dy):
        x, norm = ctx.saved_tensors
        r = 1 / norm.clamp_min(ctx.eps)
        y = x.to(norm.dtype) * r
        dy = dy.to(norm.dtype)
        dx = torch.where(norm > ctx.eps, r * (dy - y * (dy * y).sum(-1, keepdim=True)), dy * r)
        return dx.to(x.dtype), None


def l2_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x / max(‖x‖, eps) over the last dim, computed in at least fp32, returned in x's dtype
    (``F.normalize`` on an fp32 copy, without keeping that copy for the backward)."""
    return _L2NormFn.apply(x, eps) if torch.is_grad_enabled() else _l2_norm(x, eps)[0]
