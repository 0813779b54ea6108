"""Task heads on top of ``ZooModel`` for objectives a causal LM head cannot score (MAD compression).

MAD's compression task (Poli et al. 2024, arXiv 2403.17844; ``zoo.data.mad.compression``) is an
auto-encoder: the model reads ``T`` tokens, the last one a compression marker, and everything it
keeps of the sequence must sit in its output at that marker. A small decoder, shared by all
positions, then rebuilds the whole input from that one vector::

    h     = norm(residual stream at position T-1)        [B, D]   (what the LM head would read)
    z_p   = h + sincos(p)            for p = 0 .. T-1     [B, T, D] fixed position embedding
    logit = Linear(RMSNorm(MLP(z_p)))                    [B, T, V]
    MLP   = RMSNorm → Linear(D, D) → GELU → RMSNorm → Linear(D, D) → GELU

Targets are the input tokens themselves, every position including the marker (as in MAD);
accuracy is the fraction of the ``T`` positions rebuilt exactly. The ``ZooModel`` is used as it
is (embeddings and blocks); its LM head is not used by this objective.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from zoo.layers.norm import RMSNorm

OBJECTIVES = ("lm", "autoencode")


def residual_stream(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """The last block's output of a ``ZooModel``, before its final norm: [B, T, D]."""
    x = model.embeddings(input_ids)
    for layer in model.layers:
        x = layer(x)
    return x


def sincos_positions(n: int, dim: int, device=None) -> torch.Tensor:
    """Fixed sinusoidal position embeddings [n, dim]: sines in the first half, cosines in the second."""
    half = -(-dim // 2)
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=device, dtype=torch.float32) / half)
    angle = torch.arange(n, device=device, dtype=torch.float32)[:, None] * freq
    return torch.cat([angle.sin(), angle.cos()], dim=1)[:, :dim]


class CompressionDecoder(nn.Module):
    """MAD's compression decoder: one pooled vector [B, D] → logits [B, n, V] for positions 0..n-1."""

    def __init__(self, d_model: int, vocab_size: int, eps: float = 1e-6, init_std: float = 0.02):
        super().__init__()
        self.mlp = nn.Sequential(RMSNorm(d_model, eps), nn.Linear(d_model, d_model), nn.GELU(),
                                 RMSNorm(d_model, eps), nn.Linear(d_model, d_model), nn.GELU())
        self.out_norm = RMSNorm(d_model, eps)
        self.out = nn.Linear(d_model, vocab_size)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=init_std)
                nn.init.zeros_(m.bias)

    def forward(self, pooled: torch.Tensor, n_positions: int) -> torch.Tensor:
        z = pooled[:, None, :] + sincos_positions(n_positions, pooled.shape[-1], pooled.device).to(pooled.dtype)
        return self.out(self.out_norm(self.mlp(z))).float()


def build_head(objective: str, d_model: int, vocab_size: int, eps: float = 1e-6,
               init_std: float = 0.02) -> Optional[nn.Module]:
    """The head ``objective`` needs beside the model: None for ``lm``, a CompressionDecoder for ``autoencode``."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown training objective {objective!r}; expected one of {', '.join(OBJECTIVES)}")
    return CompressionDecoder(d_model, vocab_size, eps, init_std) if objective == "autoencode" else None


def task_logits(model: nn.Module, head: Optional[nn.Module], input_ids: torch.Tensor,
                cu_seqlens: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Logits [B, T, V] float32 to score against the batch's labels: the LM head's, or ``head``'s."""
    if head is None:
        return model(input_ids, cu_seqlens=cu_seqlens)
    if cu_seqlens is not None:
        raise ValueError("a pooled-state head reads one sequence per row; packed batches (cu_seqlens) do not apply")
    pooled = model.norm(residual_stream(model, input_ids)[:, -1])
    return head(pooled, input_ids.shape[1])
