"""Input validation and cu_seqlens helpers shared by every delta-rule op.

Every public op calls `check_delta_inputs` first, so a wrong shape or dtype fails at
the entry with a message that names the argument and the fix, not deep in a kernel.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_delta_inputs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    g: Optional[torch.Tensor] = None,
    initial_state: Optional[torch.Tensor] = None,
    cu_seqlens: Optional[torch.Tensor] = None,
) -> Tuple[int, int, int, int, int, int]:
    """Validate the inputs of a (gated) delta-rule op; return (B, T, H, K, V, N).

    Expected: q, k [B, T, H, K]; v [B, T, H, V]; beta [B, T, H]; g [B, T, H] (gated ops);
    initial_state [N, H, K, V]; cu_seqlens int32/int64 [N + 1] (then B must be 1),
    starting at 0, non-decreasing, ending at T. N is B without cu_seqlens.
    Raises ValueError naming the offending argument.
    """
    for name, t in (("q", q), ("k", k), ("v", v), ("beta", beta)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in _FLOAT_DTYPES:
            raise ValueError(f"{name} must be a floating tensor (fp16/bf16/fp32/fp64), got {t.dtype}")
    if q.dim() != 4:
        raise ValueError(f"q must be [B, T, H, K] (fla layout), got shape {tuple(q.shape)}")
    B, T, H, K = q.shape
    if k.shape != q.shape:
        raise ValueError(f"k must have q's shape {tuple(q.shape)} [B, T, H, K], got {tuple(k.shape)}")
    if v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v must be [B, T, H, V] = [{B}, {T}, {H}, V], got {tuple(v.shape)}")
    V = v.shape[3]
    if beta.shape != (B, T, H):
        raise ValueError(
            f"beta must be [B, T, H] = [{B}, {T}, {H}] (one scalar per token and head), got {tuple(beta.shape)}"
        )
    if g is not None:
        if not isinstance(g, torch.Tensor) or g.dtype not in _FLOAT_DTYPES:
            raise ValueError("g must be a floating torch.Tensor of log-decays [B, T, H]")
        if g.shape != (B, T, H):
            raise ValueError(f"g must be [B, T, H] = [{B}, {T}, {H}] (log decay, <= 0), got {tuple(g.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    devices = {t.device for t in (q, k, v, beta) + ((g,) if g is not None else ())}
    if len(devices) != 1:
        raise ValueError(f"q, k, v, beta{', g' if g is not None else ''} must be on one device, got {devices}")
    if K == 0 or V == 0 or H == 0:
        raise ValueError(f"head dims must be positive, got H={H}, K={K}, V={V}")
    N = B
    if cu_seqlens is not None:
        if not isinstance(cu_seqlens, torch.Tensor) or cu_seqlens.dim() != 1 or cu_seqlens.numel() < 2:
            raise ValueError("cu_seqlens must be a 1-D integer tensor [N + 1] of document offsets")
        if cu_seqlens.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"cu_seqlens must be int32 or int64, got {cu_seqlens.dtype}")
        if B != 1:
            raise ValueError(
                f"with cu_seqlens the batch must be flattened to B = 1 (got B = {B}); "
                "reshape q/k/v/beta to [1, B*T, ...] and pass offsets over the flat tokens"
            )
        offs = cu_seqlens.tolist()
        if offs[0] != 0 or offs[-1] != T or any(b < a for a, b in zip(offs, offs[1:])):
            raise ValueError(f"cu_seqlens must start at 0, be non-decreasing and end at T = {T}, got {offs}")
        N = len(offs) - 1
    if initial_state is not None:
        if not isinstance(initial_state, torch.Tensor):
            raise ValueError("initial_state must be a torch.Tensor [N, H, K, V]")
        if initial_state.shape != (N, H, K, V):
            raise ValueError(
                f"initial_state must be [N, H, K, V] = [{N}, {H}, {K}, {V}] "
                f"(N = number of sequences), got {tuple(initial_state.shape)}"
            )
    return B, T, H, K, V, N


def seq_bounds(cu_seqlens: Optional[torch.Tensor], B: int, T: int) -> List[Tuple[int, int]]:
    """Host list of (start, end) token offsets per sequence; without cu_seqlens, B rows of length T."""
    if cu_seqlens is None:
        return [(0, T)] * B
    offs = cu_seqlens.tolist()
    return list(zip(offs[:-1], offs[1:]))


KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)  # what the Triton layer ops take (fp64: the references)


def use_triton(*tensors: Optional[torch.Tensor]) -> bool:
    """Whether a layer takes its Triton op: every given tensor (None skipped) on CUDA in fp16/bf16/fp32."""
    return all(t is None or (t.is_cuda and t.dtype in KERNEL_DTYPES) for t in tensors)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Math dtype of the reference ops: float64 stays float64, everything else runs in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32
