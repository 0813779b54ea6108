"""What the linear-attention family shares: q/k/v projections, a short causal conv, a per-head
output RMSNorm and o_proj around a matrix-valued recurrent state S [B, H, K, V].

DeltaNet, Gated DeltaNet and additive linear attention differ only in the state update (and the
projections it needs, such as β); they subclass ``RecurrentMixer`` and supply that part.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from zoo.kernels.conv import MAX_SIZE, causal_conv1d_silu, torch_causal_conv1d_silu
from zoo.kernels.utils import use_triton
from zoo.layers.norm import RMSNorm
from zoo.layers.packing import positions_in_document


@dataclass
class RecurrentCache:
    """Generation state of one layer: the recurrent state and the conv's last inputs.

    state [B, H, K, V] fp32 (fp64 for a float64 model); conv tails [B, conv_size - 1, channels]
    (None without conv).
    """

    state: torch.Tensor
    q_tail: Optional[torch.Tensor]
    k_tail: Optional[torch.Tensor]
    v_tail: Optional[torch.Tensor]


class ShortConvolution(nn.Module):
    """Causal depthwise conv over time followed by SiLU; never reads across a document start.

    CUDA inputs in fp16/bf16/fp32 (up to kernels.conv.MAX_SIZE taps) run the fused Triton kernels
    (``causal_conv1d_silu``); others the PyTorch reference ``torch_causal_conv1d_silu``."""

    def __init__(self, channels: int, size: int):
        super().__init__()
        self.size = size
        self.weight = nn.Parameter(torch.empty(channels, 1, size))
        nn.init.uniform_(self.weight, -1 / math.sqrt(size), 1 / math.sqrt(size))

    def forward(self, x: torch.Tensor, pos: Optional[torch.Tensor] = None, tail: Optional[torch.Tensor] = None):
        """x [B, T, C]; pos [T] offsets in document (packed input) or None; tail [B, size-1, C].

        Returns (silu(conv(x)) [B, T, C], new tail [B, size-1, C] — the last size-1 inputs,
        reaching into the old tail (or zeros) when T < size-1).
        """
        B, T, C = x.shape
        op = causal_conv1d_silu if use_triton(x) and self.size <= MAX_SIZE else torch_causal_conv1d_silu
        out = op(x, self.weight[:, 0, :], tail, pos)
        n = self.size - 1
        if T >= n:
            new_tail = x[:, T - n:]
        else:
            left = tail.to(x.dtype) if tail is not None else x.new_zeros(B, n, C)
            new_tail = torch.cat([left[:, T:], x], dim=1)
        return out, new_tail


class RecurrentMixer(nn.Module):
    """Base of mixers with a matrix-valued state. The config needs n_heads, head_dim, expand_v,
    conv_size, chunk_size and norm_eps; subclasses define ``state_flops(K, V, C)`` (per head and
    token) and build their extra projections after ``super().__init__``."""

    def __init__(self, d_model: int, config):
        super().__init__()
        name = type(self).__name__
        if config.n_heads is None:
            raise ValueError(f"{name} needs n_heads (the spec resolver fills it from the model)")
        self.config = config
        H = self.n_heads = config.n_heads
        dk = self.head_k = config.head_dim or d_model // H
        dv = self.head_v = int(dk * config.expand_v)
        if dk * H == 0 or dv == 0:
            raise ValueError(f"{name} head dims must be positive (d_model={d_model}, n_heads={H})")
        self.q_proj = nn.Linear(d_model, H * dk, bias=False)
        self.k_proj = nn.Linear(d_model, H * dk, bias=False)
        self.v_proj = nn.Linear(d_model, H * dv, bias=False)
        if config.conv_size > 0:
            self.q_conv1d = ShortConvolution(H * dk, config.conv_size)
            self.k_conv1d = ShortConvolution(H * dk, config.conv_size)
            self.v_conv1d = ShortConvolution(H * dv, config.conv_size)
        self.o_norm = RMSNorm(dv, eps=1e-6 if config.norm_eps is None else config.norm_eps)
        self.o_proj = nn.Linear(H * dv, d_model, bias=False)

    def qkv(self, x: torch.Tensor, cu_seqlens: Optional[torch.Tensor], cache: Optional[RecurrentCache]
            ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, T, D] → q, k [B, T, H, K] and v [B, T, H, V]: projected, then conv + SiLU (or SiLU
        alone without conv); the conv reads the cache's tails and writes them back."""
        name = type(self).__name__
        if cache is not None and cu_seqlens is not None:
            raise ValueError(f"{name}: a generation cache and packed documents (cu_seqlens) cannot be combined")
        B, T, _ = x.shape
        if cu_seqlens is not None and B != 1:
            raise ValueError(f"{name}: packed input (cu_seqlens) needs batch size 1, got {B}")
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if self.config.conv_size > 0:
            pos = positions_in_document(cu_seqlens, T) if cu_seqlens is not None else None
            q, q_tail = self.q_conv1d(q, pos, cache.q_tail if cache else None)
            k, k_tail = self.k_conv1d(k, pos, cache.k_tail if cache else None)
            v, v_tail = self.v_conv1d(v, pos, cache.v_tail if cache else None)
            if cache is not None:
                cache.q_tail, cache.k_tail, cache.v_tail = q_tail, k_tail, v_tail
        else:
            q, k, v = F.silu(q), F.silu(k), F.silu(v)
        H = self.n_heads
        return q.view(B, T, H, self.head_k), k.view(B, T, H, self.head_k), v.view(B, T, H, self.head_v)

    def output(self, o: torch.Tensor, gate: Optional[torch.Tensor] = None) -> torch.Tensor:
        """o [B, T, H, V] (gate like o, or None) → per-head RMSNorm (× silu(gate)) → o_proj → [B, T, D]."""
        B, T = o.shape[:2]
        return self.o_proj(self.o_norm(o, gate).reshape(B, T, self.n_heads * self.head_v))

    def init_cache(self, batch_size: int, device=None, dtype=None) -> RecurrentCache:
        device = device or self.o_proj.weight.device
        dtype = dtype or self.o_proj.weight.dtype
        H, dk, dv, w = self.n_heads, self.head_k, self.head_v, self.config.conv_size
        tail = (lambda c: torch.zeros(batch_size, w - 1, c, device=device, dtype=dtype)) if w > 0 else (lambda c: None)
        state = torch.zeros(batch_size, H, dk, dv, device=device, dtype=torch.promote_types(dtype, torch.float32))
        return RecurrentCache(state, tail(H * dk), tail(H * dk), tail(H * dv))

    def flops_per_token(self, d_model: int, context: int) -> float:
        """Projections + conv + the chunkwise state update (``state_flops`` per head)."""
        H, dk, dv = self.n_heads, self.head_k, self.head_v
        linear = sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))
        conv = (2 * dk + dv) * H * self.config.conv_size
        return 2.0 * (linear + conv) + H * self.state_flops(dk, dv, self.config.chunk_size)

    def cache_bytes(self, batch_size: int, context: int, dtype_bytes: int) -> int:
        """Constant in context: the fp32 state plus the conv tails."""
        H, dk, dv, w = self.n_heads, self.head_k, self.head_v, self.config.conv_size
        return batch_size * (H * dk * dv * 4 + max(w - 1, 0) * H * (2 * dk + dv) * dtype_bytes)
