"""DeltaNet and Gated DeltaNet token mixers (the paper's best configuration).

    x ─► q,k,v projections ─► short causal depthwise conv (size 4) + SiLU ─► L2-norm q, k
      ─► β = sigmoid(b_proj x) per head   [Gated: g = −exp(A_log)·softplus(a_proj x + dt_bias)]
      ─► delta rule  S_t = α_t S_{t−1}(I − β_t k_t k_tᵀ) + β_t v_t k_tᵀ,  o_t = S_t q_t
      ─► per-head RMSNorm (optionally gated by silu(g_proj x)) ─► o_proj

The delta rule runs as the Triton chunkwise kernel on CUDA and as the vectorised PyTorch
chunkwise (WY/UT) implementation on the CPU; both take packed documents (``cu_seqlens``).
Parameter names follow fla's layout (q_proj, q_conv1d, b_proj, a_proj, A_log, dt_bias, g_proj,
o_norm, o_proj) so checkpoints map one to one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from zoo import kernels
from zoo.layers.norm import RMSNorm
from zoo.layers.packing import positions_in_document


@dataclass
class DeltaNetConfig:
    n_heads: Optional[int] = None  # None: the model's n_heads
    head_dim: Optional[int] = None  # key/query head dim; None: d_model // n_heads
    expand_v: float = 1.0  # value head dim = head_dim * expand_v
    conv_size: int = 4  # short causal depthwise conv on q, k, v; 0 turns it off
    use_gate: bool = False  # output gate: rmsnorm(o) * silu(g_proj x)
    chunk_size: int = 64  # chunk length of the CPU chunkwise path
    norm_eps: Optional[float] = None  # output RMSNorm; None: the model's norm_eps


@dataclass
class GatedDeltaNetConfig(DeltaNetConfig):
    use_gate: bool = True


@dataclass
class DeltaNetCache:
    """Generation state of one layer: the recurrent state and the conv's last inputs.

    state [B, H, K, V] fp32 (fp64 for a float64 model); conv tails [B, conv_size - 1, channels] (None without conv).
    """

    state: torch.Tensor
    q_tail: Optional[torch.Tensor]
    k_tail: Optional[torch.Tensor]
    v_tail: Optional[torch.Tensor]


class ShortConvolution(nn.Module):
    """Causal depthwise conv over time followed by SiLU; never reads across a document start."""

    def __init__(self, channels: int, size: int):
        super().__init__()
        self.size = size
        self.weight = nn.Parameter(torch.empty(channels, 1, size))
        nn.init.uniform_(self.weight, -1 / math.sqrt(size), 1 / math.sqrt(size))

    def forward(self, x: torch.Tensor, pos: Optional[torch.Tensor] = None, tail: Optional[torch.Tensor] = None):
        """x [B, T, C]; pos [T] offsets in document (packed input) or None; tail [B, size-1, C].

        Returns (silu(conv(x)) [B, T, C], new tail [B, size-1, C] — the last size-1 inputs).
        """
        B, T, C = x.shape
        left = tail if tail is not None else x.new_zeros(B, self.size - 1, C)
        xp = torch.cat([left.to(x.dtype), x], dim=1)  # [B, size-1+T, C]
        w = self.weight[:, 0, :].to(x.dtype)  # [C, size]; w[:, -1] multiplies the current token
        y = xp[:, self.size - 1 :] * w[:, -1]
        for shift in range(1, self.size):
            past = xp[:, self.size - 1 - shift : self.size - 1 - shift + T]
            if pos is not None:
                past = past * (pos >= shift).to(x.dtype)[None, :, None]
            y = y + past * w[:, -1 - shift]
        return F.silu(y), xp[:, -(self.size - 1) :] if self.size > 1 else xp[:, :0]


class DeltaNet(nn.Module):
    """Delta-rule linear attention. forward(x [B, T, D], cu_seqlens=None, cache=None) -> [B, T, D]."""

    Config = DeltaNetConfig
    gated = False

    def __init__(self, d_model: int, config: DeltaNetConfig):
        super().__init__()
        if config.n_heads is None:
            raise ValueError("DeltaNet needs n_heads (the spec resolver fills it from the model)")
        self.config = config
        H = self.n_heads = config.n_heads
        dk = self.head_k = config.head_dim or d_model // H
        dv = self.head_v = int(dk * config.expand_v)
        if dk * H == 0 or dv == 0:
            raise ValueError(f"DeltaNet head dims must be positive (d_model={d_model}, n_heads={H})")
        self.q_proj = nn.Linear(d_model, H * dk, bias=False)
        self.k_proj = nn.Linear(d_model, H * dk, bias=False)
        self.v_proj = nn.Linear(d_model, H * dv, bias=False)
        self.b_proj = nn.Linear(d_model, H, bias=False)
        if self.gated:
            self.a_proj = nn.Linear(d_model, H, bias=False)
            self.A_log = nn.Parameter(torch.empty(H).uniform_(1, 16).log())
            dt = torch.empty(H).uniform_(math.log(1e-3), math.log(1e-1)).exp().clamp(min=1e-4)
            self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt)
        if config.conv_size > 0:
            self.q_conv1d = ShortConvolution(H * dk, config.conv_size)
            self.k_conv1d = ShortConvolution(H * dk, config.conv_size)
            self.v_conv1d = ShortConvolution(H * dv, config.conv_size)
        if config.use_gate:
            self.g_proj = nn.Linear(d_model, H * dv, bias=False)
        self.o_norm = RMSNorm(dv, eps=1e-6 if config.norm_eps is None else config.norm_eps)
        self.o_proj = nn.Linear(H * dv, d_model, bias=False)

    def forward(self, x: torch.Tensor, cu_seqlens: Optional[torch.Tensor] = None, cache: Optional[DeltaNetCache] = None):
        if cache is not None and cu_seqlens is not None:
            raise ValueError("DeltaNet: a generation cache and packed documents (cu_seqlens) cannot be combined")
        B, T, _ = x.shape
        H, dk, dv = self.n_heads, self.head_k, self.head_v
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if self.config.conv_size > 0:
            pos = positions_in_document(cu_seqlens, B * T).view(B, T)[0] if cu_seqlens is not None and B == 1 else None
            if cu_seqlens is not None and B != 1:
                raise ValueError(f"DeltaNet: packed input (cu_seqlens) needs batch size 1, got {B}")
            q, q_tail = self.q_conv1d(q, pos, cache.q_tail if cache else None)
            k, k_tail = self.k_conv1d(k, pos, cache.k_tail if cache else None)
            v, v_tail = self.v_conv1d(v, pos, cache.v_tail if cache else None)
            if cache is not None:
                cache.q_tail, cache.k_tail, cache.v_tail = q_tail, k_tail, v_tail
        else:
            q, k, v = F.silu(q), F.silu(k), F.silu(v)
        dtype = v.dtype  # the projections' dtype: bf16 under autocast while x stays fp32
        f32 = torch.promote_types(dtype, torch.float32)  # at least fp32 for norms and gates
        q = F.normalize(q.view(B, T, H, dk).to(f32), dim=-1, eps=1e-6).to(dtype)
        k = F.normalize(k.view(B, T, H, dk).to(f32), dim=-1, eps=1e-6).to(dtype)
        v = v.view(B, T, H, dv)
        beta = torch.sigmoid(self.b_proj(x).to(f32)).to(dtype)
        g = None
        if self.gated:
            g = -self.A_log.to(f32).exp() * F.softplus(self.a_proj(x).to(f32) + self.dt_bias.to(f32))
        if cache is not None and T == 1 and cache.state.dtype == torch.float32:
            # decode: updates the fp32 state in place (on CUDA one Triton launch, CUDA-graph friendly)
            o = kernels.delta_rule_step(q[:, 0], k[:, 0], v[:, 0], beta[:, 0], cache.state,
                                        g=None if g is None else g[:, 0])[:, None]
        else:
            o, state = _delta_rule(q, k, v, beta, g, chunk_size=self.config.chunk_size,
                                   initial_state=cache.state if cache else None,
                                   output_final_state=cache is not None, cu_seqlens=cu_seqlens)
            if cache is not None:
                cache.state = state.contiguous()
        gate = self.g_proj(x).view(B, T, H, dv) if self.config.use_gate else None
        o = self.o_norm(o, gate)
        return self.o_proj(o.reshape(B, T, H * dv))

    def init_cache(self, batch_size: int, device=None, dtype=None) -> DeltaNetCache:
        device = device or self.o_proj.weight.device
        dtype = dtype or self.o_proj.weight.dtype
        H, dk, dv, w = self.n_heads, self.head_k, self.head_v, self.config.conv_size
        tail = (lambda c: torch.zeros(batch_size, w - 1, c, device=device, dtype=dtype)) if w > 0 else (lambda c: None)
        state = torch.zeros(batch_size, H, dk, dv, device=device, dtype=torch.promote_types(dtype, torch.float32))
        return DeltaNetCache(state, tail(H * dk), tail(H * dk), tail(H * dv))

    def flops_per_token(self, d_model: int, context: int) -> float:
        """Projections + conv + the chunkwise delta rule (chunk C): 2·(3·K·V + C·(3K + 2V)) per head."""
        H, dk, dv, C = self.n_heads, self.head_k, self.head_v, self.config.chunk_size
        linear = sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))
        conv = (2 * dk + dv) * H * self.config.conv_size
        return 2.0 * (linear + conv + H * (3 * dk * dv + C * (3 * dk + 2 * dv)))

    def cache_bytes(self, batch_size: int, context: int, dtype_bytes: int) -> int:
        """Constant in context: the fp32 state plus the conv tails."""
        H, dk, dv, w = self.n_heads, self.head_k, self.head_v, self.config.conv_size
        return batch_size * (H * dk * dv * 4 + max(w - 1, 0) * H * (2 * dk + dv) * dtype_bytes)


class GatedDeltaNet(DeltaNet):
    """Gated DeltaNet (arXiv 2412.06464): the delta rule with a learned per-head decay α_t = exp(g_t)."""

    Config = GatedDeltaNetConfig
    gated = True


def _delta_rule(q, k, v, beta, g, chunk_size, **kw):
    """Chunkwise (gated) delta rule: the Triton kernel on CUDA, the PyTorch WY/UT form elsewhere."""
    if q.is_cuda:
        if g is None:
            return kernels.chunk_delta_rule(q, k, v, beta, **kw)
        return kernels.chunk_gated_delta_rule(q, k, v, g, beta, **kw)
    if g is None:
        return kernels.torch_chunk_delta_rule(q, k, v, beta, chunk_size=chunk_size, **kw)
    return kernels.torch_chunk_gated_delta_rule(q, k, v, g, beta, chunk_size=chunk_size, **kw)
