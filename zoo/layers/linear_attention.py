"""Additive causal linear attention: the baseline the delta rule beats on recall.

    x ─► q,k,v projections ─► short causal depthwise conv (size 4) + SiLU ─► feature map φ on q, k
      ─► S_t = S_{t−1} + v_t φ(k_t)ᵀ,   o_t = S_t φ(q_t) · K^-½
      ─► per-head RMSNorm ─► o_proj

It is DeltaNet (zoo/layers/deltanet.py) with the delta rule's erase term ``−β_t S k_t k_tᵀ``
removed (and with it β and the output gate): the same projections, short conv and output norm
(both subclass ``RecurrentMixer``), and by default the same feature map (``feature_map="l2"``: L2-normalised q and k). A comparison between the two then
isolates the update rule, which is what the paper's MQAR and MAD comparisons are about. Other
feature maps: ``elu1`` (elu(x)+1, Katharopoulos et al. 2020) and ``identity``.

No normaliser ``φ(q)·Σφ(k)`` is divided out: it is a positive scalar per token and head, and the
per-head RMSNorm that follows is invariant to such a scale, so it would change nothing but eps.

The computation is chunkwise (chunk C, default 64), vectorised over all chunks at once with no
per-token or per-chunk loop: per chunk, ``O = Q S_inᵀ + (Q Kᵀ ⊙ causal) V`` and the state
entering each chunk is a (segmented) prefix sum of the chunks' ``Kᵀ V``. Packed documents
(``cu_seqlens``) are laid out so that every chunk belongs to one document (each document padded
to a multiple of C), so the state never crosses a document start. The state math is fp32; with
packed documents the prefix sum runs in fp64 so that subtracting a document's starting prefix
loses no precision, and autocast is off inside (its bf16 matmuls would round the state). The
same function serves CPU and CUDA (no Triton kernel: the cost is a few
small batched matmuls).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from zoo.layers.norm import l2_normalize
from zoo.layers.recurrent import RecurrentCache, RecurrentMixer

FEATURE_MAPS = ("l2", "elu1", "identity")


@dataclass
class LinearAttentionConfig:
    n_heads: Optional[int] = None  # None: the model's n_heads
    head_dim: Optional[int] = None  # key/query head dim; None: d_model // n_heads
    expand_v: float = 1.0  # value head dim = head_dim * expand_v
    feature_map: str = "l2"  # l2 (DeltaNet's q/k path) | elu1 | identity
    conv_size: int = 4  # short causal depthwise conv on q, k, v; 0 turns it off
    chunk_size: int = 64  # chunk length of the chunkwise form
    norm_eps: Optional[float] = None  # output RMSNorm; None: the model's norm_eps

    def __post_init__(self) -> None:
        if self.feature_map not in FEATURE_MAPS:
            raise ValueError(f"feature_map={self.feature_map!r} is not one of {', '.join(FEATURE_MAPS)}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size={self.chunk_size} must be >= 1")
        if self.conv_size < 0:
            raise ValueError(f"conv_size={self.conv_size} must be >= 0 (0 turns the conv off)")


def chunk_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: Optional[float] = None,
                           initial_state: Optional[torch.Tensor] = None, output_final_state: bool = False,
                           cu_seqlens: Optional[torch.Tensor] = None, chunk_size: int = 64
                           ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Causal additive linear attention ``o_t = (Σ_{s≤t} v_s k_sᵀ) q_t · scale``, chunkwise.

    Args (fla layout): q, k [B, T, H, K]; v [B, T, H, V]; scale defaults to K^-½;
    initial_state [N, H, K, V] (N = B, or the number of documents with ``cu_seqlens``);
    cu_seqlens int32/long [N+1] offsets into the flattened B·T tokens (needs B == 1), each
    document starts from its own (initial or zero) state.
    Returns (o [B, T, H, V] in q's dtype, final state [N, H, K, V] in at least fp32, or None).
    """
    B, T, H, K = q.shape
    if k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"linear attention: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} do not match")
    if cu_seqlens is not None and B != 1:
        raise ValueError(f"linear attention: packed input (cu_seqlens) needs batch size 1, got {B}")
    scale = K ** -0.5 if scale is None else scale
    with torch.autocast(q.device.type, enabled=False):  # the state math stays fp32 under autocast
        return _chunk(q, k, v, scale, initial_state, output_final_state, cu_seqlens, chunk_size)


def _chunk(q, k, v, scale, initial_state, output_final_state, cu_seqlens, chunk_size):
    B, T, H, K = q.shape
    V = v.shape[-1]
    f32 = torch.promote_types(q.dtype, torch.float32)
    if cu_seqlens is None:  # B documents of T tokens: pad T to a multiple of C, chunk each row
        C = max(1, min(chunk_size, T))  # short inputs (decode steps) need no padding to a full chunk
        N, nc = B, -(-T // C)
        pad = nc * C - T

        def chunks(x):  # [B, T, H, D] -> [B*nc, H, C, D]
            x = F.pad(x.to(f32), (0, 0, 0, 0, 0, pad))
            return x.view(B, nc, C, H, -1).transpose(2, 3).reshape(B * nc, H, C, -1)

        qc, kc, vc = chunks(q), chunks(k), chunks(v)
        kv = (kc.transpose(-1, -2) @ vc).view(B, nc, H, K, V)  # each chunk's Σ k vᵀ
        state_in = kv.cumsum(1) - kv  # exclusive prefix within each row (fp32, no cancellation)
        if initial_state is not None:
            state_in = state_in + initial_state.to(f32)[:, None]
        final = state_in[:, -1] + kv[:, -1] if output_final_state else None
        state_in = state_in.view(B * nc, H, K, V)
    else:
        C = chunk_size
        cu = cu_seqlens.long()
        N = cu.numel() - 1
        lengths = cu.diff()
        n_chunks = -(-lengths // C)  # [N]; a zero-length document gets no chunk
        first = torch.cumsum(n_chunks, 0) - n_chunks  # first chunk of each document
        total = int(n_chunks.sum())
        doc = torch.repeat_interleave(torch.arange(N, device=cu.device), n_chunks, output_size=total)  # [nc]
        pos = (torch.arange(total, device=cu.device) - first[doc])[:, None] * C + torch.arange(C, device=cu.device)
        valid = pos < lengths[doc][:, None]  # [nc, C]
        src = torch.where(valid, cu[doc][:, None] + pos, torch.zeros_like(pos))  # flattened token index

        def chunks(x):  # [1, T, H, D] -> [nc, H, C, D], padding slots zeroed
            x = x[0].to(f32)[src] * valid[..., None, None]
            return x.transpose(1, 2)

        qc, kc, vc = chunks(q), chunks(k), chunks(v)
        kv = kc.transpose(-1, -2) @ vc  # [nc, H, K, V]
        prefix = kv.double().cumsum(0) - kv.double()  # exclusive prefix over all chunks, fp64
        start = prefix[first.clamp(max=max(total - 1, 0))] if total else prefix.new_zeros(N, H, K, V)
        state_in = (prefix - start[doc]).to(f32)
        if initial_state is not None:
            state_in = state_in + initial_state.to(f32)[doc]
        if output_final_state:
            last = (first + n_chunks - 1).clamp(min=0)
            final = torch.zeros(N, H, K, V, device=q.device, dtype=f32) if initial_state is None else initial_state.to(f32).clone()
            if total:
                has = n_chunks > 0
                final[has] = (state_in[last] + kv[last])[has]
        else:
            final = None
    qc = qc * scale
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    scores = (qc @ kc.transpose(-1, -2)).masked_fill(~causal, 0.0)  # [nc, H, C, C]
    o = qc @ state_in + scores @ vc  # [nc, H, C, V]
    if cu_seqlens is None:
        o = o.view(B, nc, H, C, V).transpose(2, 3).reshape(B, nc * C, H, V)[:, :T]
    else:
        o = o.transpose(1, 2)  # [nc, C, H, V]
        flat = o.new_zeros(T, H, V)
        flat[src[valid]] = o[valid]
        o = flat[None]
    return o.to(q.dtype), final


class LinearAttention(RecurrentMixer):
    """Additive linear attention. forward(x [B, T, D], cu_seqlens=None, cache=None) -> [B, T, D]."""

    Config = LinearAttentionConfig

    def _feature(self, x: torch.Tensor) -> torch.Tensor:
        fm = self.config.feature_map
        if fm == "l2":
            return l2_normalize(x)
        if fm == "elu1":
            return F.elu(x) + 1.0
        return x

    def forward(self, x: torch.Tensor, cu_seqlens: Optional[torch.Tensor] = None,
                cache: Optional[RecurrentCache] = None) -> torch.Tensor:
        q, k, v = self.qkv(x, cu_seqlens, cache)
        o, state = chunk_linear_attention(self._feature(q), self._feature(k), v,
                                          initial_state=cache.state if cache else None,
                                          output_final_state=cache is not None, cu_seqlens=cu_seqlens,
                                          chunk_size=self.config.chunk_size)
        if cache is not None:
            cache.state = state
        return self.output(o)

    def state_flops(self, K: int, V: int, C: int) -> float:
        """Chunkwise linear attention (chunk C) per head and token: 2·(2·K·V + C·(K + V))."""
        return 2.0 * (2 * K * V + C * (K + V))
