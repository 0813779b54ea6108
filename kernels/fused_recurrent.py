"""Fused recurrent (token-by-token) delta rule and Gated delta rule in Triton, plus a decode step.

Per head, with the state kept as h = Sᵀ ∈ R^{K×V} (the `[N, H, K, V]` layout of the API):

    h'_t = exp(g_t) h_{t-1}                (gated only; otherwise h'_t = h_{t-1})
    w_t  = v_t − h'_tᵀ k_t                 (the delta: value minus the state's prediction)
    h_t  = h'_t + β_t k_t w_tᵀ
    o_t  = h_tᵀ (scale · q_t)

Forward: one program per (sequence·head, block of BV value columns) keeps its [K, BV] slice of
the state in registers and walks time. Value columns never interact, so V splits freely;
K is held whole. The forward saves w (fp32, [B, T, H, V]) for the backward.

Backward, with D_t the adjoint of h_t (it needs no forward state):

    D_t  += scale · q_t do_tᵀ
    du_t  = D_tᵀ k_t ;  dv_t = β_t du_t ;  dβ_t = du_t · w_t
    dk_t  = D_t (β_t w_t) − β_t h'_t du_t
    D_{t−1} = exp(g_t) (D_t − β_t k_t du_tᵀ)      (D_0 is the initial-state gradient)
    dq_t  = scale · h_t do_t

Pass 1 walks time backwards carrying D only; pass 2 walks forwards rebuilding h from h_0 and the
saved w (exact, no inversion of the recurrence) for dq and the h'-term of dk. The gate gradient
needs no state product: dg_t = <h_T, dh_T> + Σ_{s≥t} (q_s·dq_s − v_s·dv_s) within a sequence.

`delta_rule_step` is the single-token decode update used by generation caches: it updates a
[B, H, K, V] fp32 state in place and returns o; CPU tensors take a PyTorch path.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from .utils import check_delta_inputs

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"


def _check_triton_device(t: torch.Tensor, op: str) -> None:
    if t.device.type != "cuda" and not _INTERPRET:
        raise ValueError(
            f"{op} runs its Triton kernel on CUDA tensors; got {t.device} tensors. On CPU use "
            "zoo.kernels.naive (torch_chunk_delta_rule / naive_recurrent_delta_rule) or set "
            "TRITON_INTERPRET=1 before importing zoo.kernels (slow; meant for tests)."
        )


def _empty(*shape, **kwargs) -> torch.Tensor:
    """Every buffer a kernel must fill comes from here (tests swap in a NaN-filled allocator)."""
    return torch.empty(*shape, **kwargs)


def _fwd_config(K: int, V: int) -> Tuple[int, int]:
    """(BV, num_warps) of the forward: narrow value blocks in one warp, as many programs as
    possible (each step is a short dependent chain; parallel programs hide its latency)."""
    BK = triton.next_power_of_2(K)
    if _INTERPRET:  # fewer programs to emulate, still > 1 block when V = 64
        return min(triton.next_power_of_2(V), 32), 1
    bv = min(triton.next_power_of_2(V), 16 if BK <= 128 else 8)
    return bv, (1 if BK * bv <= 2048 else 2)


def _bwd_config(K: int, V: int) -> Tuple[int, int]:
    """(BV, num_warps) of the two backward passes: wide value blocks, since every block adds
    one fp32 [B, T, H, K] slab of dq and dk partial sums."""
    BK = triton.next_power_of_2(K)
    if _INTERPRET:
        return min(triton.next_power_of_2(V), 32), 1
    bv = min(triton.next_power_of_2(V), 64 if BK <= 128 else 32)
    return bv, _num_warps(BK, bv)


def _num_warps(BK: int, BV: int) -> int:
    return 1 if BK * BV <= 1024 else (2 if BK * BV <= 2048 else 4)


# ----------------------------------------------------------------------------------------------
# Triton kernels
# ----------------------------------------------------------------------------------------------
@triton.jit
def _fwd_kernel(
    q, k, v, beta, g, o, h0, ht, w_out, cu_seqlens, scale, T,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    USE_G: tl.constexpr, USE_H0: tl.constexpr, STORE_HT: tl.constexpr, STORE_W: tl.constexpr,
    IS_VARLEN: tl.constexpr,
):
    i_v = tl.program_id(0)
    i_nh = tl.program_id(1)
    i_n = i_nh // H
    i_h = i_nh % H
    if IS_VARLEN:
        bos = tl.load(cu_seqlens + i_n).to(tl.int64)
        eos = tl.load(cu_seqlens + i_n + 1).to(tl.int64)
    else:
        bos = tl.cast(i_n, tl.int64) * T
        eos = bos + T
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k = o_k < K
    m_v = o_v < V
    m_h = m_k[:, None] & m_v[None, :]
    off_h = tl.cast(i_nh, tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]

    b_h = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_H0:
        b_h += tl.load(h0 + off_h, mask=m_h, other=0.0).to(tl.float32)

    p_q = q + (bos * H + i_h) * K + o_k
    p_k = k + (bos * H + i_h) * K + o_k
    p_v = v + (bos * H + i_h) * V + o_v
    p_o = o + (bos * H + i_h) * V + o_v
    p_w = w_out + (bos * H + i_h) * V + o_v
    p_b = beta + bos * H + i_h
    p_g = g + bos * H + i_h
    # Inputs of step i+1 are loaded while step i computes (the loads do not depend on the state).
    L = eos - bos
    n_q = tl.load(p_q, mask=m_k & (L > 0), other=0.0)
    n_k = tl.load(p_k, mask=m_k & (L > 0), other=0.0)
    n_v = tl.load(p_v, mask=m_v & (L > 0), other=0.0)
    n_b = tl.load(p_b, mask=L > 0, other=0.0)
    n_g = tl.load(p_g, mask=L > 0, other=0.0) if USE_G else n_b
    for i in range(0, L):
        b_q = n_q.to(tl.float32) * scale
        b_k = n_k.to(tl.float32)
        b_v = n_v.to(tl.float32)
        b_beta = n_b.to(tl.float32)
        b_g = n_g.to(tl.float32)
        p_q += H * K
        p_k += H * K
        p_v += H * V
        p_b += H
        p_g += H
        more = i + 1 < L
        n_q = tl.load(p_q, mask=m_k & more, other=0.0)
        n_k = tl.load(p_k, mask=m_k & more, other=0.0)
        n_v = tl.load(p_v, mask=m_v & more, other=0.0)
        n_b = tl.load(p_b, mask=more, other=0.0)
        if USE_G:
            n_g = tl.load(p_g, mask=more, other=0.0)
            b_h = b_h * tl.exp(b_g)
        b_w = b_v - tl.sum(b_h * b_k[:, None], axis=0)
        b_h += b_k[:, None] * (b_beta * b_w)[None, :]
        b_o = tl.sum(b_h * b_q[:, None], axis=0)
        tl.store(p_o, b_o.to(p_o.dtype.element_ty), mask=m_v)
        if STORE_W:
            tl.store(p_w, b_w, mask=m_v)
        p_o += H * V
        p_w += H * V
    if STORE_HT:
        tl.store(ht + off_h, b_h, mask=m_h)


@triton.jit
def _bwd_reverse_kernel(
    q, k, v, beta, g, w, do, dht, dv, dk_part, db_part, vdv_part, dh0, cu_seqlens, scale, T, NT,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    USE_G: tl.constexpr, USE_DHT: tl.constexpr, STORE_DH0: tl.constexpr, IS_VARLEN: tl.constexpr,
):
    """Reverse-time pass: carries D (adjoint of h) only; writes dv (fp32), the D·u part of dk,
    dβ and v·dv partial sums per value block, and dh0."""
    i_v = tl.program_id(0)
    i_nh = tl.program_id(1)
    i_n = i_nh // H
    i_h = i_nh % H
    if IS_VARLEN:
        bos = tl.load(cu_seqlens + i_n).to(tl.int64)
        eos = tl.load(cu_seqlens + i_n + 1).to(tl.int64)
    else:
        bos = tl.cast(i_n, tl.int64) * T
        eos = bos + T
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k = o_k < K
    m_v = o_v < V
    m_h = m_k[:, None] & m_v[None, :]
    off_h = tl.cast(i_nh, tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]

    b_dh = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_DHT:
        b_dh += tl.load(dht + off_h, mask=m_h, other=0.0).to(tl.float32)

    last = eos - 1
    p_q = q + (last * H + i_h) * K + o_k
    p_k = k + (last * H + i_h) * K + o_k
    p_v = v + (last * H + i_h) * V + o_v
    p_w = w + (last * H + i_h) * V + o_v
    p_do = do + (last * H + i_h) * V + o_v
    p_dv = dv + (last * H + i_h) * V + o_v
    part = tl.cast(i_v, tl.int64) * NT * H  # offset of this value block's partial-sum slab
    p_dk = dk_part + (part + last * H + i_h) * K + o_k
    p_db = db_part + part + last * H + i_h
    p_vdv = vdv_part + part + last * H + i_h
    p_b = beta + last * H + i_h
    p_g = g + last * H + i_h
    # Inputs of the step before are loaded while this step computes.
    L = eos - bos
    n_q = tl.load(p_q, mask=m_k & (L > 0), other=0.0)
    n_k = tl.load(p_k, mask=m_k & (L > 0), other=0.0)
    n_w = tl.load(p_w, mask=m_v & (L > 0), other=0.0)
    n_do = tl.load(p_do, mask=m_v & (L > 0), other=0.0)
    n_b = tl.load(p_b, mask=L > 0, other=0.0)
    n_v = tl.load(p_v, mask=m_v & (L > 0), other=0.0) if USE_G else n_do
    n_g = tl.load(p_g, mask=L > 0, other=0.0) if USE_G else n_b
    for i in range(0, L):
        b_q = n_q.to(tl.float32) * scale
        b_k = n_k.to(tl.float32)
        b_w = n_w
        b_do = n_do.to(tl.float32)
        b_beta = n_b.to(tl.float32)
        b_v = n_v.to(tl.float32)
        b_g = n_g.to(tl.float32)
        p_q -= H * K
        p_k -= H * K
        p_w -= H * V
        p_do -= H * V
        p_b -= H
        more = i + 1 < L
        n_q = tl.load(p_q, mask=m_k & more, other=0.0)
        n_k = tl.load(p_k, mask=m_k & more, other=0.0)
        n_w = tl.load(p_w, mask=m_v & more, other=0.0)
        n_do = tl.load(p_do, mask=m_v & more, other=0.0)
        n_b = tl.load(p_b, mask=more, other=0.0)
        if USE_G:
            p_v -= H * V
            p_g -= H
            n_v = tl.load(p_v, mask=m_v & more, other=0.0)
            n_g = tl.load(p_g, mask=more, other=0.0)
        b_dh += b_q[:, None] * b_do[None, :]
        b_du = tl.sum(b_dh * b_k[:, None], axis=0)
        b_dk = tl.sum(b_dh * (b_beta * b_w)[None, :], axis=1)
        b_dv = b_beta * b_du
        tl.store(p_dv, b_dv, mask=m_v)
        tl.store(p_dk, b_dk, mask=m_k)
        tl.store(p_db, tl.sum(b_du * b_w, axis=0))
        b_dh -= b_k[:, None] * b_dv[None, :]
        if USE_G:
            tl.store(p_vdv, tl.sum(b_v * b_dv, axis=0))
            b_dh = b_dh * tl.exp(b_g)
        p_dv -= H * V
        p_dk -= H * K
        p_db -= H
        p_vdv -= H
    if STORE_DH0:
        tl.store(dh0 + off_h, b_dh, mask=m_h)


@triton.jit
def _bwd_forward_kernel(
    q, k, beta, g, w, do, dv, h0, dq_part, dk_part, qdq_part, cu_seqlens, scale, T, NT,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    USE_G: tl.constexpr, USE_H0: tl.constexpr, IS_VARLEN: tl.constexpr,
):
    """Forward-time pass: rebuilds h from h0 and the saved w; writes dq and adds the
    −β h' du part of dk (partial sums per value block), and q·dq partials for dg."""
    i_v = tl.program_id(0)
    i_nh = tl.program_id(1)
    i_n = i_nh // H
    i_h = i_nh % H
    if IS_VARLEN:
        bos = tl.load(cu_seqlens + i_n).to(tl.int64)
        eos = tl.load(cu_seqlens + i_n + 1).to(tl.int64)
    else:
        bos = tl.cast(i_n, tl.int64) * T
        eos = bos + T
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k = o_k < K
    m_v = o_v < V
    m_h = m_k[:, None] & m_v[None, :]
    off_h = tl.cast(i_nh, tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]

    b_h = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_H0:
        b_h += tl.load(h0 + off_h, mask=m_h, other=0.0).to(tl.float32)

    part = tl.cast(i_v, tl.int64) * NT * H
    p_q = q + (bos * H + i_h) * K + o_k
    p_k = k + (bos * H + i_h) * K + o_k
    p_w = w + (bos * H + i_h) * V + o_v
    p_do = do + (bos * H + i_h) * V + o_v
    p_dv = dv + (bos * H + i_h) * V + o_v
    p_dq = dq_part + (part + bos * H + i_h) * K + o_k
    p_dk = dk_part + (part + bos * H + i_h) * K + o_k
    p_qdq = qdq_part + part + bos * H + i_h
    p_b = beta + bos * H + i_h
    p_g = g + bos * H + i_h
    # Inputs of step i+1 are loaded while step i computes.
    L = eos - bos
    n_k = tl.load(p_k, mask=m_k & (L > 0), other=0.0)
    n_w = tl.load(p_w, mask=m_v & (L > 0), other=0.0)
    n_dv = tl.load(p_dv, mask=m_v & (L > 0), other=0.0)
    n_do = tl.load(p_do, mask=m_v & (L > 0), other=0.0)
    n_dk = tl.load(p_dk, mask=m_k & (L > 0), other=0.0)
    n_b = tl.load(p_b, mask=L > 0, other=0.0)
    n_q = tl.load(p_q, mask=m_k & (L > 0), other=0.0) if USE_G else n_k
    n_g = tl.load(p_g, mask=L > 0, other=0.0) if USE_G else n_b
    for i in range(0, L):
        b_k = n_k.to(tl.float32)
        b_w = n_w
        b_dv = n_dv
        b_do = n_do.to(tl.float32)
        b_dk = n_dk
        b_beta = n_b.to(tl.float32)
        b_q = n_q.to(tl.float32)
        b_g = n_g.to(tl.float32)
        more = i + 1 < L
        n_k = tl.load(p_k + H * K, mask=m_k & more, other=0.0)
        n_w = tl.load(p_w + H * V, mask=m_v & more, other=0.0)
        n_dv = tl.load(p_dv + H * V, mask=m_v & more, other=0.0)
        n_do = tl.load(p_do + H * V, mask=m_v & more, other=0.0)
        n_dk = tl.load(p_dk + H * K, mask=m_k & more, other=0.0)
        n_b = tl.load(p_b + H, mask=more, other=0.0)
        if USE_G:
            n_q = tl.load(p_q + H * K, mask=m_k & more, other=0.0)
            n_g = tl.load(p_g + H, mask=more, other=0.0)
            b_h = b_h * tl.exp(b_g)
        b_dk = b_dk - tl.sum(b_h * b_dv[None, :], axis=1)
        tl.store(p_dk, b_dk, mask=m_k)
        b_h += b_k[:, None] * (b_beta * b_w)[None, :]
        b_dq = tl.sum(b_h * b_do[None, :], axis=1) * scale
        tl.store(p_dq, b_dq, mask=m_k)
        if USE_G:
            tl.store(p_qdq, tl.sum(b_q * b_dq, axis=0))
        p_q += H * K
        p_k += H * K
        p_w += H * V
        p_do += H * V
        p_dv += H * V
        p_dq += H * K
        p_dk += H * K
        p_qdq += H
        p_b += H
        p_g += H


@triton.jit
def _step_kernel(
    q, k, v, beta, g, state, o, scale,
    K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, USE_G: tl.constexpr,
):
    """One token for one (batch·head, value block): h ← exp(g) h; h += β k (v − hᵀk)ᵀ; o = hᵀ(q·scale)."""
    i_v = tl.program_id(0)
    i_bh = tl.program_id(1)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k = o_k < K
    m_v = o_v < V
    m_h = m_k[:, None] & m_v[None, :]
    p_h = state + tl.cast(i_bh, tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]
    b_h = tl.load(p_h, mask=m_h, other=0.0)
    b_q = tl.load(q + i_bh * K + o_k, mask=m_k, other=0.0).to(tl.float32) * scale
    b_k = tl.load(k + i_bh * K + o_k, mask=m_k, other=0.0).to(tl.float32)
    b_v = tl.load(v + i_bh * V + o_v, mask=m_v, other=0.0).to(tl.float32)
    b_beta = tl.load(beta + i_bh).to(tl.float32)
    if USE_G:
        b_h = b_h * tl.exp(tl.load(g + i_bh).to(tl.float32))
    b_w = b_v - tl.sum(b_h * b_k[:, None], axis=0)
    b_h += b_k[:, None] * (b_beta * b_w)[None, :]
    b_o = tl.sum(b_h * b_q[:, None], axis=0)
    tl.store(p_h, b_h, mask=m_h)
    tl.store(o + i_bh * V + o_v, b_o.to(o.dtype.element_ty), mask=m_v)


# ----------------------------------------------------------------------------------------------
# Host side
# ----------------------------------------------------------------------------------------------
def _fwd(q, k, v, g, beta, scale, h0, output_final_state, cu_seqlens, N, store_w):
    B, T, H, K = q.shape
    V = v.shape[-1]
    BK = triton.next_power_of_2(K)
    BV, num_warps = _fwd_config(K, V)
    NV = triton.cdiv(V, BV)
    o = _empty(v.shape, dtype=v.dtype, device=v.device)
    ht = _empty(N, H, K, V, dtype=torch.float32, device=q.device) if output_final_state else None
    w = _empty(B, T, H, V, dtype=torch.float32, device=q.device) if store_w else None
    _fwd_kernel[(NV, N * H)](
        q, k, v, beta, g if g is not None else beta, o,
        h0 if h0 is not None else o, ht if ht is not None else o, w if w is not None else o,
        cu_seqlens, scale, T,
        H=H, K=K, V=V, BK=BK, BV=BV, USE_G=g is not None, USE_H0=h0 is not None,
        STORE_HT=ht is not None, STORE_W=w is not None, IS_VARLEN=cu_seqlens is not None,
        num_warps=num_warps,
    )
    return o, ht, w


def _reverse_segment_cumsum(x: torch.Tensor, cu_seqlens: Optional[torch.Tensor]) -> torch.Tensor:
    """Σ_{s ≥ t} x_s along dim 1 of x [B, T, H], restarting at every sequence end of cu_seqlens."""
    x = x.double()
    rc = x.flip(1).cumsum(1).flip(1)
    if cu_seqlens is None:
        return rc
    T = x.shape[1]
    pos = torch.arange(T, device=x.device)
    ends = cu_seqlens[1:].to(torch.long)
    eos = ends[torch.searchsorted(ends, pos, right=True)]  # end offset of each token's sequence
    tail = torch.cat([rc, rc.new_zeros(x.shape[0], 1, x.shape[2])], dim=1)[:, eos]
    return rc - tail


def _bwd(q, k, v, g, beta, scale, h0, w, ht, do, dht, cu_seqlens, N):
    B, T, H, K = q.shape
    V = v.shape[-1]
    BK = triton.next_power_of_2(K)
    BV, nw = _bwd_config(K, V)
    NV = triton.cdiv(V, BV)
    NT = B * T
    f32 = dict(device=q.device, dtype=torch.float32)
    dv = _empty(B, T, H, V, **f32)
    dk_part = _empty(NV, B, T, H, K, **f32)
    dq_part = _empty(NV, B, T, H, K, **f32)
    db_part = _empty(NV, B, T, H, **f32)
    use_g = g is not None
    vdv_part = _empty(NV, B, T, H, **f32) if use_g else db_part
    qdq_part = _empty(NV, B, T, H, **f32) if use_g else db_part
    dh0 = _empty(N, H, K, V, **f32) if h0 is not None else None
    gg = g if use_g else beta
    _bwd_reverse_kernel[(NV, N * H)](
        q, k, v, beta, gg, w, do, dht if dht is not None else dv, dv, dk_part, db_part, vdv_part,
        dh0 if dh0 is not None else dv, cu_seqlens, scale, T, NT,
        H=H, K=K, V=V, BK=BK, BV=BV, USE_G=use_g, USE_DHT=dht is not None,
        STORE_DH0=dh0 is not None, IS_VARLEN=cu_seqlens is not None, num_warps=nw,
    )
    _bwd_forward_kernel[(NV, N * H)](
        q, k, beta, gg, w, do, dv, h0 if h0 is not None else dv, dq_part, dk_part, qdq_part,
        cu_seqlens, scale, T, NT,
        H=H, K=K, V=V, BK=BK, BV=BV, USE_G=use_g, USE_H0=h0 is not None,
        IS_VARLEN=cu_seqlens is not None, num_warps=nw,
    )
    dq = dq_part.sum(0).to(q.dtype)
    dk = dk_part.sum(0).to(k.dtype)
    dbeta = db_part.sum(0).to(beta.dtype)
    dg = None
    if use_g:
        dg = _reverse_segment_cumsum((qdq_part - vdv_part).sum(0), cu_seqlens)
        if dht is not None:
            # <h_T, dh_T> of each sequence enters every dg_t of that sequence.
            c = (ht.double() * dht.double()).sum((-2, -1))  # [N, H]
            if cu_seqlens is None:
                dg = dg + c[:, None, :]
            else:
                lens = (cu_seqlens[1:] - cu_seqlens[:-1]).to(torch.long)
                dg = dg + torch.repeat_interleave(c, lens, dim=0)[None]
        dg = dg.to(g.dtype)
    return dq, dk, dv.to(v.dtype), dg, dbeta, dh0


class _FusedRecurrentFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, g, beta, scale, initial_state, output_final_state, cu_seqlens, N):
        needs_grad = any(ctx.needs_input_grad[i] for i in (0, 1, 2, 3, 4, 6))
        keep_ht = output_final_state or (needs_grad and g is not None)
        o, ht, w = _fwd(q, k, v, g, beta, scale, initial_state, keep_ht, cu_seqlens, N, needs_grad)
        if needs_grad:
            ctx.save_for_backward(q, k, v, g, beta, initial_state, w, ht, cu_seqlens)
            ctx.scale, ctx.N = scale, N
        if not output_final_state:
            return o, None
        return o, ht

    @staticmethod
    def backward(ctx, do, dht):
        q, k, v, g, beta, h0, w, ht, cu_seqlens = ctx.saved_tensors
        if do is None:
            do = torch.zeros_like(v)
        do = do.contiguous()
        if dht is not None:
            dht = dht.contiguous()
        dq, dk, dv, dg, dbeta, dh0 = _bwd(q, k, v, g, beta, ctx.scale, h0, w, ht, do, dht, cu_seqlens, ctx.N)
        if h0 is not None:
            dh0 = dh0.to(h0.dtype)
        return dq, dk, dv, dg, dbeta, None, dh0, None, None, None


def _fused_recurrent(op, q, k, v, g, beta, scale, initial_state, output_final_state, cu_seqlens):
    B, T, H, K, V, N = check_delta_inputs(q, k, v, beta, g=g, initial_state=initial_state, cu_seqlens=cu_seqlens)
    _check_triton_device(q, op)
    if scale is None:
        scale = K ** -0.5
    q, k, v, beta = (t.contiguous() for t in (q, k, v, beta))
    if g is not None:
        g = g.contiguous()
    if initial_state is not None:
        initial_state = initial_state.contiguous()
    if cu_seqlens is not None:
        cu_seqlens = cu_seqlens.to(device=q.device).contiguous()
    return _FusedRecurrentFunction.apply(
        q, k, v, g, beta, float(scale), initial_state, bool(output_final_state), cu_seqlens, N
    )


def fused_recurrent_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    scale: Optional[float] = None,
    initial_state: Optional[torch.Tensor] = None,
    output_final_state: bool = False,
    cu_seqlens: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Delta rule, token by token in Triton (forward and backward).

    Args:
        q, k: [B, T, H, K]; v: [B, T, H, V]; beta: [B, T, H] in (0, 1). q and k are used as
            given (the layer L2-normalises them). fp32, bf16 or fp16; math runs in fp32.
        scale: multiplies q; default K ** -0.5.
        initial_state: [N, H, K, V] (fp32 recommended); gets a gradient.
        output_final_state: also return the [N, H, K, V] fp32 state after the last token.
        cu_seqlens: int32/int64 [N + 1] offsets of packed sequences (then B = 1); each
            sequence starts from its own initial state (or zeros).
    Returns:
        (o [B, T, H, V] in v's dtype, final_state [N, H, K, V] fp32 or None).
    Time is sequential, so this suits short sequences and checking; train with chunk_delta_rule.
    """
    return _fused_recurrent("fused_recurrent_delta_rule", q, k, v, None, beta, scale,
                            initial_state, output_final_state, cu_seqlens)


def fused_recurrent_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: Optional[float] = None,
    initial_state: Optional[torch.Tensor] = None,
    output_final_state: bool = False,
    cu_seqlens: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Gated delta rule (state decays by exp(g_t) before each update), token by token in Triton.

    As `fused_recurrent_delta_rule`, plus g: [B, T, H] per-token, per-head log decay (<= 0),
    which gets a gradient.
    """
    return _fused_recurrent("fused_recurrent_gated_delta_rule", q, k, v, g, beta, scale,
                            initial_state, output_final_state, cu_seqlens)


def _step_torch(q, k, v, beta, state, g, scale):
    f = state.dtype
    if g is not None:
        state.mul_(torch.exp(g.to(f))[..., None, None])
    kf = k.to(f)
    w = v.to(f) - torch.einsum("bhkv,bhk->bhv", state, kf)
    state.add_(kf[..., :, None] * (beta.to(f)[..., None] * w)[..., None, :])
    return torch.einsum("bhkv,bhk->bhv", state, q.to(f) * scale).to(v.dtype)


def delta_rule_step_torch(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    state: torch.Tensor,
    g: Optional[torch.Tensor] = None,
    scale: Optional[float] = None,
) -> torch.Tensor:
    """PyTorch form of `delta_rule_step` (same arguments, state updated in place); the path
    `delta_rule_step` takes for CPU tensors."""
    return _step_torch(q, k, v, beta, state, g, q.shape[-1] ** -0.5 if scale is None else scale)


def delta_rule_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    state: torch.Tensor,
    g: Optional[torch.Tensor] = None,
    scale: Optional[float] = None,
) -> torch.Tensor:
    """One decode token of the (gated) delta rule; updates `state` in place, returns o.

    Args:
        q, k: [B, H, K]; v: [B, H, V]; beta: [B, H]; g: optional [B, H] log decay (gated).
        state: [B, H, K, V] float32, contiguous; overwritten with the new state.
        scale: multiplies q; default K ** -0.5.
    Returns:
        o: [B, H, V] in v's dtype. Equals one step of fused_recurrent_(gated_)delta_rule.
    CUDA tensors run one Triton launch (one program per batch·head and value block); CPU tensors
    run the same maths in PyTorch (unless TRITON_INTERPRET=1, which uses the kernel).
    """
    if q.dim() != 3 or k.shape != q.shape:
        raise ValueError(f"q and k must be [B, H, K] of one shape, got {tuple(q.shape)} and {tuple(k.shape)}")
    Bq, H, K = q.shape
    if v.dim() != 3 or v.shape[:2] != (Bq, H):
        raise ValueError(f"v must be [B, H, V] = [{Bq}, {H}, V], got {tuple(v.shape)}")
    V = v.shape[2]
    if beta.shape != (Bq, H):
        raise ValueError(f"beta must be [B, H] = [{Bq}, {H}], got {tuple(beta.shape)}")
    if g is not None and g.shape != (Bq, H):
        raise ValueError(f"g must be [B, H] = [{Bq}, {H}] (log decay), got {tuple(g.shape)}")
    if state.shape != (Bq, H, K, V) or state.dtype != torch.float32 or not state.is_contiguous():
        raise ValueError(
            f"state must be a contiguous float32 tensor [B, H, K, V] = [{Bq}, {H}, {K}, {V}] "
            f"(it is updated in place), got {tuple(state.shape)} {state.dtype}"
        )
    if scale is None:
        scale = K ** -0.5
    if q.device.type != "cuda" and not _INTERPRET:
        return _step_torch(q, k, v, beta, state, g, scale)
    if not q.is_contiguous():
        q = q.contiguous()
    if not k.is_contiguous():
        k = k.contiguous()
    if not v.is_contiguous():
        v = v.contiguous()
    if not beta.is_contiguous():
        beta = beta.contiguous()
    if g is not None and not g.is_contiguous():
        g = g.contiguous()
    o = _empty(v.shape, dtype=v.dtype, device=v.device)
    BK = triton.next_power_of_2(K)
    BV, num_warps = _step_config(Bq * H, K, V)
    _step_kernel[(triton.cdiv(V, BV), Bq * H)](
        q, k, v, beta, g if g is not None else beta, state, o, scale,
        K=K, V=V, BK=BK, BV=BV, USE_G=g is not None, num_warps=num_warps,
    )
    return o


def _step_config(BH: int, K: int, V: int) -> Tuple[int, int]:
    """(BV, num_warps) of the decode kernel. Measured on an H100 (H = 8, K = V = 128, states
    rotated past L2; "step_sweep_run1" of bench/results/kernels.json at commit 7f3faa1): 16 columns /
    1 warp is best up to B·H = 128 (B = 1: 2.9 µs, B = 16: 7.9 µs), 64 columns is best from
    B·H = 512 (B = 256: 97 µs against a 89 µs read+write floor of the state)."""
    BK = triton.next_power_of_2(K)
    bv = 64 if BH * triton.cdiv(V, 64) >= 1024 else 16
    if _INTERPRET or BK > 128:
        bv = 32
    bv = min(bv, triton.next_power_of_2(V))
    return bv, (1 if BK * bv <= 2048 else 4)
