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
from zoo.layers.norm import l2_normalize
from zoo.layers.recurrent import RecurrentCache, RecurrentMixer


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
    # initial decay per head (fla's init): A ~ U(A_min, A_max), softplus(dt_bias) ~ logU(dt_min, dt_max),
    # so g = -A * softplus(a_proj x + dt_bias) starts with a memory half-life of ln 2 / (A dt) tokens
    A_min: float = 1.0
    A_max: float = 16.0
    dt_min: float = 1e-3
    dt_max: float = 0.1

    INIT = ("A_min", "A_max", "dt_min", "dt_max")  # fields that shape only the initial weights

    def __post_init__(self) -> None:
        if not 0 < self.A_min <= self.A_max:
            raise ValueError(f"gdelta A_min={self.A_min}, A_max={self.A_max}: need 0 < A_min <= A_max")
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(f"gdelta dt_min={self.dt_min}, dt_max={self.dt_max}: need 0 < dt_min <= dt_max")


class DeltaNet(RecurrentMixer):
    """Delta-rule linear attention. forward(x [B, T, D], cu_seqlens=None, cache=None) -> [B, T, D]."""

    Config = DeltaNetConfig
    gated = False

    def __init__(self, d_model: int, config: DeltaNetConfig):
        super().__init__(d_model, config)
        H, dv = self.n_heads, self.head_v
        self.b_proj = nn.Linear(d_model, H, bias=False)
        if self.gated:
            self.a_proj = nn.Linear(d_model, H, bias=False)
            self.A_log = nn.Parameter(torch.empty(H).uniform_(config.A_min, config.A_max).log())
            dt = torch.empty(H).uniform_(math.log(config.dt_min), math.log(config.dt_max)).exp().clamp(min=1e-4)
            self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(dt)
        if config.use_gate:
            self.g_proj = nn.Linear(d_model, H * dv, bias=False)

    def forward(self, x: torch.Tensor, cu_seqlens: Optional[torch.Tensor] = None, cache: Optional[RecurrentCache] = None):
        B, T, _ = x.shape
        q, k, v = self.qkv(x, cu_seqlens, cache)
        dtype = v.dtype  # the projections' dtype: bf16 under autocast while x stays fp32
        f32 = torch.promote_types(dtype, torch.float32)  # at least fp32 for norms and gates
        q, k = l2_normalize(q), l2_normalize(k)
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
        gate = self.g_proj(x).view(B, T, self.n_heads, self.head_v) if self.config.use_gate else None
        return self.output(o, gate)

    def state_flops(self, K: int, V: int, C: int) -> float:
        """The chunkwise delta rule (chunk C) per head and token: 2·(3·K·V + C·(3K + 2V))."""
        return 2.0 * (3 * K * V + C * (3 * K + 2 * V))


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
