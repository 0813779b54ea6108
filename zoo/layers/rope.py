"""Rotary position embedding (RoPE), rotate-half layout, applied in float32.

Positions are absolute token indices (a cache passes its running offset; packed documents
restart at 0 in each document), so a prefix computed alone and the same prefix inside a longer
sequence get identical rotations.
"""
from __future__ import annotations

import torch


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables for ``positions``.

    Args:
        positions: long [T] (or any shape S) absolute positions.
        head_dim: even rotary width D.
        theta: base of the inverse frequencies ``theta ** (-2i / D)``.
    Returns:
        (cos, sin), float32 of shape S + [D/2].
    """
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}; choose an even head_dim")
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = positions.to(torch.float32)[..., None] * inv_freq
    return angles.cos(), angles.sin()


def apply_rope(x_BTHD: torch.Tensor, cos_TD: torch.Tensor, sin_TD: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` [B, T, H, D] by per-position angles; cos/sin [T, D/2] (or [B, T, D/2]).

    Pairs are (x[..., i], x[..., i + D/2]); the maths runs in float32 and the result keeps x's dtype.
    """
    half = x_BTHD.shape[-1] // 2
    if cos_TD.dim() == 2:
        cos, sin = cos_TD[None, :, None, :], sin_TD[None, :, None, :]
    else:
        cos, sin = cos_TD[:, :, None, :], sin_TD[:, :, None, :]
    xf = x_BTHD.float()
    x1, x2 = xf[..., :half], xf[..., half:]
    out = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
    return out.to(x_BTHD.dtype)


def positions_for(T: int, device: torch.device, offset: int = 0) -> torch.Tensor:
    """Absolute positions ``offset + arange(T)`` of T consecutive tokens (a cache's next tokens)."""
    return torch.arange(offset, offset + T, device=device)
