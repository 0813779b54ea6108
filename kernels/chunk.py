"""Chunkwise (gated) delta rule in Triton: forward, and a backward that recomputes.

The maths is in kernels/README.md. Chunks are BT = 64 tokens; every sequence (a batch row,
or a document of cu_seqlens) is cut into its own chunks, so no chunk spans two sequences and
the uniform batch is handled as N = B documents of length T over the flat B*T tokens.

Kernels (one launch per stage, all chunks at once):
  _solve_kernel  grid (chunks, H)          within-chunk cumulative log decay G and the UT transform
                                           Tinv = (I + A)^-1, from 16x16 diagonal-block inverses
                                           (forward substitution) merged by block substitution.
  _wu_kernel     grid (chunks, H)          unfused path only: W = Tinv (beta e^G K), U = Tinv (beta V);
                                           for the gated rule also the masked, decayed scores
                                           P = scale (Q K^T * exp(G_i - G_j), j <= i).
  _fwd_kernel    grid (V blocks, N*H)      the state recurrence over chunks fused with the output
                                           o = scale e^G Q S + P Vn, Vn = U - W S. FUSED forms Vn as
                                           Tinv (beta (V - e^G K S)) from the Tinv, beta, k and v tiles
                                           (W and U never stored) and P from the q and k tiles;
                                           unfused loads W and U (and the gated P), forming the plain
                                           P. In the backward it re-runs without the output to store
                                           S and Vn.
  _bwd_dh_kernel grid (V blocks, N*H)      the reverse recurrence of the state gradient, P^T formed in
                                           place (or the gated one loaded, unfused); W^T dVn loaded
                                           or, FUSED, formed as K^T (beta e^G (Tinv^T dVn)); stores dS
                                           per chunk and dVn.
  _bwd_kernel    grid (chunks, H)          every per-chunk gradient (q, k, v, beta, g) in one pass,
                                           the gated P's Q K^T formed here.
Forward: solve (+ wu) + fwd. Backward: (wu +) fwd (recompute) and bwd_dh (side by side on two CUDA
streams where they run few programs: the two serial passes are independent), then bwd. The path
(fused or not) is chosen per call by _fused and kept for the backward. The forward keeps Tinv and G
for the backward (65 values per token and head); W, U, the gated P, the chunk states and Vn are
recomputed.

Portability: plain pointer arithmetic with masks (no block pointers), so the kernels run on
Triton 3.6 on GPU and under TRITON_INTERPRET=1 on CPU tensors (there every dot's operands are
rounded to the dot dtype, then multiplied in fp32, since the interpreter's bf16 dot is wrong).
"""
from __future__ import annotations

import contextlib
import os
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from .utils import check_delta_inputs

__all__ = ["chunk_delta_rule", "chunk_gated_delta_rule"]

BT = 64  # chunk length (the kernels hard-code 4 sub-blocks of 16 for the UT transform)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


# Overrides for tests and benchmarks (empty = the defaults chosen below). Keys:
#   precision: a PRESETS name;  fp32_bufs: buffer names stored in fp32;  <stage>_fp32: fp32 dots
#   for a stage (solve, wu, fwd, bwd_dh, bwd);  fp32_dot: "tf32x3", "tf32" or "ieee" (slow) for
#   fp32 inputs (default: as torch.get_float32_matmul_precision() says, see _up);
#   fwd_bv / fwd_warps / fwd_stages and bwd_dh_*: recurrence launches;
#   bwd_warps / bwd_stages / bwd_bk / bwd_bv;  solve_warps;  wu_warps / wu_stages (unfused only);
#   fuse_wu: True / False forces the fused / unfused path (default: _fused decides per call);
#   keep_states: the forward recurrence stores the chunk states and Vn = U - W S, so the backward
#   skips their recomputation (the states add K*V/64 values per token and head; unfused, the backward
#   still re-runs _wu);  overlap: True / False runs the backward's two recurrences side by side on two
#   CUDA streams / one after the other (default: side by side where they run few programs, _overlaps).
TUNING: dict = {}

# Precision presets for 16-bit inputs: which stages run their dots on fp32 operands (tf32 tensor
# cores) and which intermediate buffers are stored in fp32. "fast" (default) rounds every
# intermediate to the input dtype, as fla does: relative RMS errors 3e-3 .. 6e-3 against an fp32
# reference on bf16 inputs (H100, 8x2048x16x128). "balanced" keeps dots and the per-token
# buffers in fp32 and only the per-chunk states and Tinv in the input dtype; "accurate" keeps
# all in fp32. Both cost ~1.6x the time for ~1.5x smaller errors.
PRESETS = {
    "fast": dict(stages=(), bufs=()),
    "balanced": dict(stages=("solve", "wu", "fwd", "bwd_dh", "bwd"), bufs=("w", "u", "p", "vn", "dvn")),
    "accurate": dict(stages=("solve", "wu", "fwd", "bwd_dh", "bwd"),
                     bufs=("w", "u", "p", "tinv", "hs", "vn", "dhs", "dvn")),
}
DEFAULT_PRECISION = "fast"


def _preset() -> dict:
    return PRESETS[TUNING.get("precision", DEFAULT_PRECISION)]


_TL_DTYPE = {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
@triton.jit
def _inv16x4(a0, a1, a2, a3):
    """(I + a)^-1 of four strictly lower-triangular 16x16 fp32 tiles at once.

    Forward substitution on a [4, 16, 16] stack: 15 dependent steps for all four blocks
    instead of 60, so the latency-bound loop has four times the work per step."""
    o = tl.arange(0, 16)
    b = tl.arange(0, 4)[:, None, None]
    x = -(tl.where(b == 0, a0[None, :, :], 0.0) + tl.where(b == 1, a1[None, :, :], 0.0)
          + tl.where(b == 2, a2[None, :, :], 0.0) + tl.where(b == 3, a3[None, :, :], 0.0))
    row = o[None, :, None]
    for i in range(1, 16):
        r = tl.sum(tl.where(row == i, x, 0.0), 1)  # [4, 16]: row i of every block
        r = r + tl.sum(r[:, :, None] * x, 1)
        x = tl.where(row == i, r[:, None, :], x)
    x = x + tl.where(row == o[None, None, :], 1.0, 0.0)
    return (tl.sum(tl.where(b == 0, x, 0.0), 0), tl.sum(tl.where(b == 1, x, 0.0), 0),
            tl.sum(tl.where(b == 2, x, 0.0), 0), tl.sum(tl.where(b == 3, x, 0.0), 0))


@triton.jit
def _mm(a, b, UP: tl.constexpr):
    """tl.dot by mode UP: 0 native (bf16/fp16 tensor cores, tf32 for fp32 operands);
    1 interpreter: operands, already rounded to the dot dtype, upcast to fp32 (the
    interpreter's bf16/fp16 dot is wrong); 2 fp32 inputs: 3 x tf32 (near-fp32); 3 ieee fp32."""
    if UP == 1:
        return tl.dot(a.to(tl.float32), b.to(tl.float32))
    elif UP == 2:
        return tl.dot(a, b, input_precision="tf32x3")
    elif UP == 3:
        return tl.dot(a, b, input_precision="ieee")
    else:
        return tl.dot(a, b)


@triton.jit
def _dot32(a, b):
    """Exact-ish fp32 product of two small fp32 tiles (ieee on GPU)."""
    return tl.dot(a, b, input_precision="ieee")


@triton.jit
def _a_block(kk, b_i, g_i, g_j, DIAG: tl.constexpr, USE_G: tl.constexpr):
    """16x16 block of A = diag(beta) (K K^T * exp(G_i - G_j)) from its K K^T block ``kk``, strictly
    lower on the diagonal."""
    a = kk * b_i[:, None]
    o = tl.arange(0, 16)
    if USE_G:
        d = g_i[:, None] - g_j[None, :]
        if DIAG:
            d = tl.where(o[:, None] > o[None, :], d, 0.0)
        a = a * tl.exp(d)
    if DIAG:
        a = tl.where(o[:, None] > o[None, :], a, 0.0)
    return a


@triton.jit
def _load_rows(ptr, t0, eos, H, h, D: tl.constexpr, BD: tl.constexpr, R: tl.constexpr, d0):
    """Load rows t0..t0+R-1 (masked at eos) of a [tokens, H, D] tensor, columns d0..d0+BD-1.

    A scalar 64-bit base plus 32-bit tile offsets keeps the pointer tiles cheap."""
    base = ptr + (t0.to(tl.int64) * H + h) * D
    r = tl.arange(0, R)
    c = d0 + tl.arange(0, BD)
    m = (t0 + r < eos)[:, None] & (c < D)[None, :]
    return tl.load(base + (r * (H * D))[:, None] + c[None, :], mask=m, other=0.0)


@triton.jit
def _load_rows_t(ptr, t0, eos, H, h, D: tl.constexpr, BD: tl.constexpr, R: tl.constexpr, d0):
    """Transposed tile [BD, R] of rows t0.. of a [tokens, H, D] tensor."""
    base = ptr + (t0.to(tl.int64) * H + h) * D
    r = tl.arange(0, R)
    c = d0 + tl.arange(0, BD)
    m = (c < D)[:, None] & (t0 + r < eos)[None, :]
    return tl.load(base + (r * (H * D))[None, :] + c[:, None], mask=m, other=0.0)


@triton.jit
def _store_rows(ptr, x, t0, eos, H, h, D: tl.constexpr, BD: tl.constexpr, R: tl.constexpr, d0):
    base = ptr + (t0.to(tl.int64) * H + h) * D
    r = tl.arange(0, R)
    c = d0 + tl.arange(0, BD)
    m = (t0 + r < eos)[:, None] & (c < D)[None, :]
    tl.store(base + (r * (H * D))[:, None] + c[None, :], x.to(ptr.dtype.element_ty), mask=m)


@triton.jit
def _load_vec(ptr, t0, eos, H, h, R: tl.constexpr):
    r = tl.arange(0, R)
    return tl.load(ptr + t0.to(tl.int64) * H + h + r * H, mask=t0 + r < eos, other=0.0).to(tl.float32)


@triton.jit
def _load_g(gcum, t0, eos, H, h):
    """(G of the chunk's 64 rows, G at its last row). Rows past the end repeat the last G (as if
    g = 0 there), so exp(G_i - G_j) on j <= i stays <= 1 on them too: with 0 there it overflows
    once the chunk's decay passes e^-88, and 0 * inf poisons the sums over rows."""
    g_last = tl.load(gcum + (tl.minimum(t0 + 63, eos - 1)).to(tl.int64) * H + h).to(tl.float32)
    return tl.where(t0 + tl.arange(0, 64) < eos, _load_vec(gcum, t0, eos, H, h, 64), g_last), g_last


@triton.jit
def _chunk_bounds(cu, chunk_seq, chunk_idx, i_c, T, NT, VARLEN: tl.constexpr):
    """(first token, end of its sequence) of global chunk i_c: from the varlen tables, or
    arithmetically for a uniform batch of sequences of length T (NT chunks each)."""
    if VARLEN:
        n = tl.load(chunk_seq + i_c)
        c = tl.load(chunk_idx + i_c)
        bos = tl.load(cu + n)
        eos = tl.load(cu + n + 1)
    else:
        n = i_c // NT
        c = i_c % NT
        bos = n * T
        eos = bos + T
    return bos + c * 64, eos


@triton.jit
def _seq_bounds(cu, chunk_off, n, T, NT, VARLEN: tl.constexpr):
    """(first token, end, first global chunk) of sequence n."""
    if VARLEN:
        bos = tl.load(cu + n)
        eos = tl.load(cu + n + 1)
        co = tl.load(chunk_off + n).to(tl.int64)
    else:
        bos = n * T
        eos = bos + T
        co = n.to(tl.int64) * NT
    return bos, eos, co


# --------------------------------------------------------------------------------------
# stage 1: per-chunk UT transform
# --------------------------------------------------------------------------------------
@triton.jit
def _solve_kernel(
    k, beta, g, cu, chunk_seq, chunk_idx, t_out, g_out,
    T, NT, H,
    K: tl.constexpr, BK: tl.constexpr, BKS: tl.constexpr, USE_G: tl.constexpr, VARLEN: tl.constexpr,
    DT: tl.constexpr, UP: tl.constexpr,
):
    """Tinv = (I + A)^-1 of one chunk (and the within-chunk cumulative log decay G).

    K K^T's ten lower 16x16 blocks are summed over BKS-wide slices of the keys (BKS = BK in one
    pass; narrower for fp32 keys, whose 64 x 256 tile would spill registers). The four diagonal
    blocks of A are inverted together by forward substitution (few warps, so the row reductions
    stay inside a warp); the off-diagonal blocks follow by block substitution
    X_ij = -X_ii sum_m A_im X_mj. Only the lower blocks of Tinv are written."""
    i_c = tl.program_id(0)
    h = tl.program_id(1)
    t0, eos = _chunk_bounds(cu, chunk_seq, chunk_idx, i_c, T, NT, VARLEN)
    o16 = tl.arange(0, 16)
    s00 = tl.zeros([16, 16], dtype=tl.float32)
    s10 = s00
    s20 = s00
    s30 = s00
    s11 = s00
    s21 = s00
    s31 = s00
    s22 = s00
    s32 = s00
    s33 = s00
    for d0 in range(0, BK, BKS):
        k0 = _load_rows(k, t0, eos, H, h, K, BKS, 16, d0).to(DT)
        k1 = _load_rows(k, t0 + 16, eos, H, h, K, BKS, 16, d0).to(DT)
        k2 = _load_rows(k, t0 + 32, eos, H, h, K, BKS, 16, d0).to(DT)
        k3 = _load_rows(k, t0 + 48, eos, H, h, K, BKS, 16, d0).to(DT)
        s00 += _mm(k0, tl.trans(k0), UP)
        s10 += _mm(k1, tl.trans(k0), UP)
        s20 += _mm(k2, tl.trans(k0), UP)
        s30 += _mm(k3, tl.trans(k0), UP)
        s11 += _mm(k1, tl.trans(k1), UP)
        s21 += _mm(k2, tl.trans(k1), UP)
        s31 += _mm(k3, tl.trans(k1), UP)
        s22 += _mm(k2, tl.trans(k2), UP)
        s32 += _mm(k3, tl.trans(k2), UP)
        s33 += _mm(k3, tl.trans(k3), UP)
    b0 = _load_vec(beta, t0, eos, H, h, 16)
    b1 = _load_vec(beta, t0 + 16, eos, H, h, 16)
    b2 = _load_vec(beta, t0 + 32, eos, H, h, 16)
    b3 = _load_vec(beta, t0 + 48, eos, H, h, 16)
    if USE_G:
        gl = tl.cumsum(_load_vec(g, t0, eos, H, h, 64), 0)
        tl.store(g_out + (t0 + tl.arange(0, 64)).to(tl.int64) * H + h, gl, mask=t0 + tl.arange(0, 64) < eos)
        g0 = tl.cumsum(_load_vec(g, t0, eos, H, h, 16), 0)
        g1 = tl.cumsum(_load_vec(g, t0 + 16, eos, H, h, 16), 0) + tl.sum(tl.where(o16 == 15, g0, 0.0), 0)
        g2 = tl.cumsum(_load_vec(g, t0 + 32, eos, H, h, 16), 0) + tl.sum(tl.where(o16 == 15, g1, 0.0), 0)
        g3 = tl.cumsum(_load_vec(g, t0 + 48, eos, H, h, 16), 0) + tl.sum(tl.where(o16 == 15, g2, 0.0), 0)
    else:
        g0 = tl.zeros([16], dtype=tl.float32)
        g1 = g0
        g2 = g0
        g3 = g0
    a00 = _a_block(s00, b0, g0, g0, True, USE_G)
    a10 = _a_block(s10, b1, g1, g0, False, USE_G)
    a20 = _a_block(s20, b2, g2, g0, False, USE_G)
    a30 = _a_block(s30, b3, g3, g0, False, USE_G)
    a11 = _a_block(s11, b1, g1, g1, True, USE_G)
    a21 = _a_block(s21, b2, g2, g1, False, USE_G)
    a31 = _a_block(s31, b3, g3, g1, False, USE_G)
    a22 = _a_block(s22, b2, g2, g2, True, USE_G)
    a32 = _a_block(s32, b3, g3, g2, False, USE_G)
    a33 = _a_block(s33, b3, g3, g3, True, USE_G)
    x00, x11, x22, x33 = _inv16x4(a00, a11, a22, a33)
    x10 = -_dot32(x11, _dot32(a10, x00))
    x21 = -_dot32(x22, _dot32(a21, x11))
    x32 = -_dot32(x33, _dot32(a32, x22))
    x20 = -_dot32(x22, _dot32(a20, x00) + _dot32(a21, x10))
    x31 = -_dot32(x33, _dot32(a31, x11) + _dot32(a32, x21))
    x30 = -_dot32(x33, _dot32(a30, x00) + _dot32(a31, x10) + _dot32(a32, x20))
    _store_rows(t_out, x00, t0, eos, H, h, 64, 16, 16, 0)
    _store_rows(t_out, x10, t0 + 16, eos, H, h, 64, 16, 16, 0)
    _store_rows(t_out, x11, t0 + 16, eos, H, h, 64, 16, 16, 16)
    _store_rows(t_out, x20, t0 + 32, eos, H, h, 64, 16, 16, 0)
    _store_rows(t_out, x21, t0 + 32, eos, H, h, 64, 16, 16, 16)
    _store_rows(t_out, x22, t0 + 32, eos, H, h, 64, 16, 16, 32)
    _store_rows(t_out, x30, t0 + 48, eos, H, h, 64, 16, 16, 0)
    _store_rows(t_out, x31, t0 + 48, eos, H, h, 64, 16, 16, 16)
    _store_rows(t_out, x32, t0 + 48, eos, H, h, 64, 16, 16, 32)
    _store_rows(t_out, x33, t0 + 48, eos, H, h, 64, 16, 16, 48)


@triton.jit
def _wu_kernel(
    q, k, v, beta, gcum, tinv, cu, chunk_seq, chunk_idx,
    w_out, u_out, p_out,
    scale, T, NT, H,
    K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    USE_G: tl.constexpr, VARLEN: tl.constexpr, DT: tl.constexpr, UP: tl.constexpr,
):
    """W = Tinv (beta e^G K), U = Tinv (beta V); gated: also P = scale (Q K^T * exp(G_i - G_j)) on j <= i."""
    i_c = tl.program_id(0)
    h = tl.program_id(1)
    t0, eos = _chunk_bounds(cu, chunk_seq, chunk_idx, i_c, T, NT, VARLEN)
    o64 = tl.arange(0, 64)
    causal = o64[:, None] >= o64[None, :]
    b_t = tl.where(causal, _load_rows(tinv, t0, eos, H, h, 64, 64, 64, 0), 0.0).to(DT)
    b_b = _load_vec(beta, t0, eos, H, h, 64)
    b_k = _load_rows(k, t0, eos, H, h, K, BK, 64, 0)
    if USE_G:
        b_g, _ = _load_g(gcum, t0, eos, H, h)
        b_bk = b_b * tl.exp(b_g)
    else:
        b_bk = b_b
    _store_rows(w_out, _mm(b_t, (b_k * b_bk[:, None]).to(DT), UP), t0, eos, H, h, K, BK, 64, 0)
    for v0 in range(0, V, BV):
        b_v = _load_rows(v, t0, eos, H, h, V, BV, 64, v0)
        _store_rows(u_out, _mm(b_t, (b_v * b_b[:, None]).to(DT), UP), t0, eos, H, h, V, BV, 64, v0)
    if USE_G:
        b_q = _load_rows(q, t0, eos, H, h, K, BK, 64, 0).to(DT)
        s = _mm(b_q, tl.trans(b_k.to(DT)), UP) * scale
        s = s * tl.exp(tl.where(causal, b_g[:, None] - b_g[None, :], 0.0))
        _store_rows(p_out, tl.where(causal, s, 0.0), t0, eos, H, h, 64, 64, 64, 0)


# --------------------------------------------------------------------------------------
# stage 2: state recurrence (+ output)
# --------------------------------------------------------------------------------------
@triton.jit
def _fwd_kernel(
    q, k, v, beta, tinv, w, u, p, gcum, h0, cu, chunk_off,
    o, ht, h_out, vn_out,
    scale, T, NT, H,
    K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    VARLEN: tl.constexpr, USE_G: tl.constexpr, USE_H0: tl.constexpr, STORE_HT: tl.constexpr,
    OUTPUT: tl.constexpr, STORE_H: tl.constexpr, DT: tl.constexpr, UP: tl.constexpr,
    FUSED: tl.constexpr,
):
    """The state recurrence of one sequence and V block; Vn = U - W S.

    FUSED: Vn = Tinv (beta (V - e^G K S)) from the Tinv, beta, k and v tiles, and P formed from the q
    and k tiles; per chunk the loads and P come first, independent of the state, so they can overlap
    the state's chain K S -> Vn -> S'. Unfused: W and U (and the gated P) from _wu_kernel, the plain P
    formed here. Each path keeps the op order it was timed with: ptxas' spills follow it
    (bench/kernel_regs.py)."""
    i_v = tl.program_id(0)
    i_nh = tl.program_id(1)
    n = i_nh // H
    h = i_nh % H
    bos, eos, co = _seq_bounds(cu, chunk_off, n, T, NT, VARLEN)
    nc = tl.cdiv(eos - bos, 64)
    v0 = i_v * BV
    ok = tl.arange(0, BK)
    ov = v0 + tl.arange(0, BV)
    o64 = tl.arange(0, 64)
    causal = o64[:, None] >= o64[None, :]
    mkv = (ok < K)[:, None] & (ov < V)[None, :]
    st_off = (ok * V)[:, None] + ov[None, :]
    b_h = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_H0:
        b_h += tl.load(h0 + i_nh.to(tl.int64) * K * V + st_off, mask=mkv, other=0.0)
    for c in range(0, nc):
        t0 = bos + c * 64
        if FUSED:
            b_k = _load_rows(k, t0, eos, H, h, K, BK, 64, 0).to(DT)
            b_kt = tl.trans(b_k)
            # the upper blocks of Tinv are never written
            b_t = tl.where(causal, _load_rows(tinv, t0, eos, H, h, 64, 64, 64, 0), 0.0).to(DT)
            b_b = _load_vec(beta, t0, eos, H, h, 64)
            b_v = _load_rows(v, t0, eos, H, h, V, BV, 64, v0).to(tl.float32)
            if USE_G:
                b_g, g_last = _load_g(gcum, t0, eos, H, h)
                b_eg = tl.exp(b_g)
            if OUTPUT:
                b_q = _load_rows(q, t0, eos, H, h, K, BK, 64, 0).to(DT)
                b_p = _mm(b_q, b_kt, UP) * scale
                if USE_G:  # exponent masked first: exp(G_i - G_j) overflows above the diagonal
                    b_p = b_p * tl.exp(tl.where(causal, b_g[:, None] - b_g[None, :], 0.0))
                b_p = tl.where(causal, b_p, 0.0).to(DT)
        if STORE_H:
            tl.store(h_out + ((co + c) * H + h) * (K * V) + st_off, b_h.to(h_out.dtype.element_ty), mask=mkv)
        b_hd = b_h.to(DT)
        if FUSED:
            b_ks = _mm(b_k, b_hd, UP)
            if USE_G:
                b_ks = b_ks * b_eg[:, None]
            b_vn = _mm(b_t, ((b_v - b_ks) * b_b[:, None]).to(DT), UP)
        else:
            b_w = _load_rows(w, t0, eos, H, h, K, BK, 64, 0).to(DT)
            b_vn = _load_rows(u, t0, eos, H, h, V, BV, 64, v0).to(tl.float32) - _mm(b_w, b_hd, UP)
        if STORE_H:
            _store_rows(vn_out, b_vn, t0, eos, H, h, V, BV, 64, v0)
        b_vnd = b_vn.to(DT)
        if not FUSED:
            b_kt = _load_rows_t(k, t0, eos, H, h, K, BK, 64, 0).to(DT)
            if USE_G:
                b_g, g_last = _load_g(gcum, t0, eos, H, h)
        if OUTPUT:
            if not FUSED:
                b_q = _load_rows(q, t0, eos, H, h, K, BK, 64, 0).to(DT)
            b_oi = _mm(b_q, b_hd, UP) * scale
            if not FUSED:
                if USE_G:
                    b_p = _load_rows(p, t0, eos, H, h, 64, 64, 64, 0).to(DT)
                else:  # P = scale (Q K^T) on j <= i, from the tiles already here
                    b_p = tl.where(causal, _mm(b_q, b_kt, UP) * scale, 0.0).to(DT)
            if USE_G:
                b_oi = b_oi * tl.exp(b_g)[:, None]
            _store_rows(o, b_oi + _mm(b_p, b_vnd, UP), t0, eos, H, h, V, BV, 64, v0)
        if USE_G:
            # decay each key to the chunk end: scale the rows of Vn instead of the keys
            b_vnd = (b_vn * tl.exp(g_last - b_g)[:, None]).to(DT)
            b_h = b_h * tl.exp(g_last)
        b_h += _mm(b_kt, b_vnd, UP)
    if STORE_HT:
        tl.store(ht + i_nh.to(tl.int64) * K * V + st_off, b_h, mask=mkv)


# --------------------------------------------------------------------------------------
# stage 3: reverse recurrence of the state gradient
# --------------------------------------------------------------------------------------
@triton.jit
def _bwd_dh_kernel(
    q, k, beta, tinv, w, p, gcum, do, dht, cu, chunk_off,
    dh_out, dvn_out, dh0,
    scale, T, NT, H,
    K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    VARLEN: tl.constexpr, USE_G: tl.constexpr, USE_DHT: tl.constexpr, STORE_DH0: tl.constexpr, DT: tl.constexpr, UP: tl.constexpr,
    FUSED: tl.constexpr, LATE: tl.constexpr,
):
    """dS <- e^gamma dS + scale (e^G Q)^T dO - W^T dVn.

    P^T = scale (K Q^T * exp(G_i - G_j)) on i >= j (row j, column i) is formed from the q and k
    tiles (unfused, the gated one is loaded from _wu_kernel). FUSED: W^T dVn = K^T (beta e^G
    (Tinv^T dVn)), with K^T K's tile read transposed, except with LATE (one-pass tf32 dots at
    K > 128): tf32 dots read their operands only K-major, so K^T needs its own shared-memory copy,
    and it and Tinv^T are loaded after dVn, where the q tile's two copies are dead; loaded early,
    keys of 256 needed 292 KB of shared memory, over sm_90's 227 KB. As in _fwd_kernel, each path
    keeps the op order it was timed with."""
    i_v = tl.program_id(0)
    i_nh = tl.program_id(1)
    n = i_nh // H
    h = i_nh % H
    bos, eos, co = _seq_bounds(cu, chunk_off, n, T, NT, VARLEN)
    nc = tl.cdiv(eos - bos, 64)
    v0 = i_v * BV
    ok = tl.arange(0, BK)
    ov = v0 + tl.arange(0, BV)
    o64 = tl.arange(0, 64)
    anticausal = o64[:, None] <= o64[None, :]  # [j, i]: i >= j
    mkv = (ok < K)[:, None] & (ov < V)[None, :]
    st_off = (ok * V)[:, None] + ov[None, :]
    b_dh = tl.zeros([BK, BV], dtype=tl.float32)
    if USE_DHT:
        b_dh += tl.load(dht + i_nh.to(tl.int64) * K * V + st_off, mask=mkv, other=0.0)
    for cr in range(0, nc):
        c = nc - 1 - cr
        t0 = bos + c * 64
        if not FUSED:
            tl.store(dh_out + ((co + c) * H + h) * (K * V) + st_off, b_dh.to(dh_out.dtype.element_ty), mask=mkv)
        b_do = _load_rows(do, t0, eos, H, h, V, BV, 64, v0)
        b_k = _load_rows(k, t0, eos, H, h, K, BK, 64, 0).to(DT)
        b_qt = _load_rows_t(q, t0, eos, H, h, K, BK, 64, 0).to(DT)
        if FUSED:  # the state-independent work first: loads, P^T
            if not LATE:  # Tinv^T; the upper blocks of Tinv are never written
                b_tt = tl.where(anticausal, _load_rows_t(tinv, t0, eos, H, h, 64, 64, 64, 0), 0.0).to(DT)
            b_bw = _load_vec(beta, t0, eos, H, h, 64)
            b_pt = _mm(b_k, b_qt, UP) * scale
            if USE_G:
                b_g, g_last = _load_g(gcum, t0, eos, H, h)
                b_pt = b_pt * tl.exp(tl.where(anticausal, b_g[None, :] - b_g[:, None], 0.0))
                b_dos = (b_do.to(tl.float32) * (tl.exp(b_g) * scale)[:, None]).to(DT)
                b_bw = b_bw * tl.exp(b_g)
            else:
                b_dos = (b_do.to(tl.float32) * scale).to(DT)
            b_pt = tl.where(anticausal, b_pt, 0.0).to(DT)
            tl.store(dh_out + ((co + c) * H + h) * (K * V) + st_off, b_dh.to(dh_out.dtype.element_ty), mask=mkv)
        b_kdh = _mm(b_k, b_dh.to(DT), UP)
        if not FUSED:
            if USE_G:
                b_g, g_last = _load_g(gcum, t0, eos, H, h)
                b_dos = (b_do.to(tl.float32) * (tl.exp(b_g) * scale)[:, None]).to(DT)
                b_pt = _load_rows_t(p, t0, eos, H, h, 64, 64, 64, 0).to(DT)
            else:  # P^T = scale (K Q^T) on i >= j (row j, column i), from the tiles already here
                b_dos = (b_do.to(tl.float32) * scale).to(DT)
                b_pt = tl.where(anticausal, _mm(b_k, b_qt, UP) * scale, 0.0).to(DT)
        if USE_G:
            b_kdh = b_kdh * tl.exp(g_last - b_g)[:, None]
        b_dvn = _mm(b_pt, b_do.to(DT), UP) + b_kdh
        _store_rows(dvn_out, b_dvn, t0, eos, H, h, V, BV, 64, v0)
        if FUSED:
            if LATE:
                b_tt = tl.where(anticausal, _load_rows_t(tinv, t0, eos, H, h, 64, 64, 64, 0), 0.0).to(DT)
                b_kt = _load_rows_t(k, t0, eos, H, h, K, BK, 64, 0).to(DT)
            else:
                b_kt = tl.trans(b_k)
            b_y = (_mm(b_tt, b_dvn.to(DT), UP) * b_bw[:, None]).to(DT)
        else:
            b_wt = _load_rows_t(w, t0, eos, H, h, K, BK, 64, 0).to(DT)
        if USE_G:
            b_dh = b_dh * tl.exp(g_last)
        if FUSED:
            b_dh += _mm(b_qt, b_dos, UP) - _mm(b_kt, b_y, UP)
        else:
            b_dh += _mm(b_qt, b_dos, UP) - _mm(b_wt, b_dvn.to(DT), UP)
    if STORE_DH0:
        tl.store(dh0 + i_nh.to(tl.int64) * K * V + st_off, b_dh, mask=mkv)


# --------------------------------------------------------------------------------------
# stage 4: per-chunk gradients
# --------------------------------------------------------------------------------------
@triton.jit
def _gamma(gcum, t0, eos, H, h, USE_G: tl.constexpr):
    """[64, 64] exp(G_i - G_j) on j <= i, zero above the diagonal (all ones below without gates)."""
    o64 = tl.arange(0, 64)
    causal = o64[:, None] >= o64[None, :]
    if USE_G:
        b_g, _ = _load_g(gcum, t0, eos, H, h)
        gam = tl.where(causal, tl.exp(tl.where(causal, b_g[:, None] - b_g[None, :], 0.0)), 0.0)
    else:
        gam = tl.where(causal, 1.0, 0.0)
    return gam


@triton.jit
def _bwd_kernel(
    q, k, v, beta, gcum, tinv, hs, dhs, vn, dvn, do, cu, chunk_seq, chunk_idx,
    dq, dk, dv, dbeta, dg,
    scale, T, NT, H,
    K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    USE_G: tl.constexpr, VARLEN: tl.constexpr, DT: tl.constexpr, UP: tl.constexpr,
):
    """Every per-chunk gradient in one pass; dk is written once.

    dTinv = dU (beta V)^T + dW (beta e^G K)^T collapses to dVn (Vn^T (I + A)^T), because
    (I + A) Vn = beta V - beta e^G K S: so dA (and with it the A-terms of dk, dbeta, dG) is
    known after the V loop, before the K loop that finishes dq and dk."""
    i_c = tl.program_id(0)
    h = tl.program_id(1)
    t0, eos = _chunk_bounds(cu, chunk_seq, chunk_idx, i_c, T, NT, VARLEN)
    o64 = tl.arange(0, 64)
    strict = o64[:, None] > o64[None, :]
    st_base = (i_c.to(tl.int64) * H + h) * K * V

    b_b = _load_vec(beta, t0, eos, H, h, 64)
    # Tinv^T; the upper blocks of Tinv are never written
    b_tdt = tl.trans(tl.where(o64[:, None] >= o64[None, :], _load_rows(tinv, t0, eos, H, h, 64, 64, 64, 0), 0.0).to(DT))
    gam = _gamma(gcum, t0, eos, H, h, USE_G)
    if USE_G:
        b_g, g_last = _load_g(gcum, t0, eos, H, h)
        b_eg = tl.exp(b_g)
        b_kdec = tl.exp(g_last - b_g)
    else:
        b_eg = tl.full([64], 1.0, dtype=tl.float32)
        b_kdec = b_eg

    # phase 0: A = strict(diag(beta) (K K^T * Gamma)); gated: Q K^T for P = scale (Q K^T * Gamma)
    b_kk = tl.zeros([64, 64], dtype=tl.float32)
    b_qk = tl.zeros([64, 64], dtype=tl.float32)
    for k0 in range(0, K, BK):
        b_kd = _load_rows(k, t0, eos, H, h, K, BK, 64, k0).to(DT)
        b_kk += _mm(b_kd, tl.trans(b_kd), UP)
        if USE_G:
            b_qk += _mm(_load_rows(q, t0, eos, H, h, K, BK, 64, k0).to(DT), tl.trans(b_kd), UP)
    b_gkk = tl.where(strict, b_kk * gam, 0.0)
    b_a = b_gkk * b_b[:, None]

    # phase 1: over V blocks -> dP, dVn Vn^T, dv and beta's dv part
    b_dp = tl.zeros([64, 64], dtype=tl.float32)
    b_dvv = tl.zeros([64, 64], dtype=tl.float32)
    b_db = tl.zeros([64], dtype=tl.float32)
    for v0 in range(0, V, BV):
        b_dvn = _load_rows(dvn, t0, eos, H, h, V, BV, 64, v0).to(DT)
        b_vnt = tl.trans(_load_rows(vn, t0, eos, H, h, V, BV, 64, v0).to(DT))
        b_v = _load_rows(v, t0, eos, H, h, V, BV, 64, v0).to(tl.float32)
        b_dp += _mm(_load_rows(do, t0, eos, H, h, V, BV, 64, v0).to(DT), b_vnt, UP)
        b_dvv += _mm(b_dvn, b_vnt, UP)
        b_dxv = _mm(b_tdt, b_dvn, UP)
        _store_rows(dv, b_dxv * b_b[:, None], t0, eos, H, h, V, BV, 64, v0)
        b_db += tl.sum(b_dxv * b_v, 1)

    # dTinv = dVn Vn^T (I + A)^T;  dA = -Tinv^T dTinv Tinv^T (strictly lower part used)
    b_dtin = b_dvv + _mm(b_dvv.to(DT), tl.trans(b_a.to(DT)), UP)
    b_da = -_mm(_mm(b_tdt, b_dtin.to(DT), UP).to(DT), b_tdt, UP)
    b_db += tl.sum(b_da * b_gkk, 1)
    b_dG = tl.zeros([64], dtype=tl.float32)
    d_last = tl.zeros([64], dtype=tl.float32)  # per-row parts of d(G at the chunk's last row)
    d_hh = tl.zeros([BV], dtype=tl.float32)
    b_dpm = b_dp * gam * scale
    if USE_G:
        b_e = b_dpm * b_qk + tl.where(strict, b_da * b_a, 0.0)
        b_dG += tl.sum(b_e, 1) - tl.sum(b_e, 0)
    b_dkk = tl.where(strict, b_da * gam * b_b[:, None], 0.0)
    b_dpmd = b_dpm.to(DT)
    b_dpmtd = tl.trans(b_dpm).to(DT)
    b_dkks = (b_dkk + tl.trans(b_dkk)).to(DT)

    # phase 2: over K blocks -> dq, dk, and beta's dW part
    for k0 in range(0, K, BK):
        b_qd = _load_rows(q, t0, eos, H, h, K, BK, 64, k0).to(DT)
        b_kd = _load_rows(k, t0, eos, H, h, K, BK, 64, k0).to(DT)
        acc_dq = tl.zeros([64, BK], dtype=tl.float32)
        acc_dkt = tl.zeros([64, BK], dtype=tl.float32)
        acc_dw = tl.zeros([64, BK], dtype=tl.float32)
        okk = k0 + tl.arange(0, BK)
        for v0 in range(0, V, BV):
            ovv = v0 + tl.arange(0, BV)
            m_kv = (okk < K)[None, :] & (ovv < V)[:, None]
            # transposed state tiles [BV, BK]
            offs = (okk * V)[None, :] + ovv[:, None]
            b_ht = tl.load(hs + st_base + offs, mask=m_kv, other=0.0).to(DT)
            b_dht = tl.load(dhs + st_base + offs, mask=m_kv, other=0.0).to(DT)
            acc_dq += _mm(_load_rows(do, t0, eos, H, h, V, BV, 64, v0).to(DT), b_ht, UP)
            acc_dkt += _mm(_load_rows(vn, t0, eos, H, h, V, BV, 64, v0).to(DT), b_dht, UP)
            acc_dw -= _mm(_load_rows(dvn, t0, eos, H, h, V, BV, 64, v0).to(DT), b_ht, UP)
            if USE_G:
                d_hh += tl.sum(b_ht.to(tl.float32) * b_dht.to(tl.float32), 1)
        b_dq = acc_dq * (b_eg * scale)[:, None] + _mm(b_dpmd, b_kd, UP)
        _store_rows(dq, b_dq, t0, eos, H, h, K, BK, 64, k0)
        b_dxk = _mm(b_tdt, acc_dw.to(DT), UP)
        b_dk = (acc_dkt * b_kdec[:, None] + _mm(b_dpmtd, b_qd, UP) + _mm(b_dkks, b_kd, UP)
                + b_dxk * (b_b * b_eg)[:, None])
        _store_rows(dk, b_dk, t0, eos, H, h, K, BK, 64, k0)
        b_dxkk = tl.sum(b_dxk * b_kd.to(tl.float32), 1) * b_eg
        b_db += b_dxkk
        if USE_G:
            b_dG += scale * b_eg * tl.sum(b_qd.to(tl.float32) * acc_dq, 1)
            r = b_kdec * tl.sum(acc_dkt * b_kd.to(tl.float32), 1)
            b_dG += b_dxkk * b_b - r
            d_last += r

    rows = t0 + o64
    tl.store(dbeta + rows.to(tl.int64) * H + h, b_db.to(dbeta.dtype.element_ty), mask=rows < eos)
    if USE_G:
        d_tot = tl.sum(d_last, 0) + tl.sum(d_hh, 0) * tl.exp(g_last)
        b_dG += tl.where(rows == tl.minimum(t0 + 63, eos - 1), d_tot, 0.0)
        # dg_t = sum over i >= t (within the chunk) of dG_i
        b_dgv = tl.sum(b_dG, 0) - tl.cumsum(b_dG, 0) + b_dG
        tl.store(dg + rows.to(tl.int64) * H + h, b_dgv.to(dg.dtype.element_ty), mask=rows < eos)


# --------------------------------------------------------------------------------------
# host side
# --------------------------------------------------------------------------------------
def _alloc(shape, *, device, dtype) -> torch.Tensor:
    """Every buffer the kernels write (tests replace this to poison them with NaN)."""
    return torch.empty(tuple(shape), device=device, dtype=dtype)


def _pow2(x: int, lo: int = 16) -> int:
    return max(lo, triton.next_power_of_2(x))


class _Meta:
    """Where the chunks are: N sequences over the flat tokens, cut into 64-token chunks.

    A uniform batch (B rows of T tokens) needs no tables: the kernels locate chunks
    arithmetically (VARLEN=False). cu_seqlens builds the tables once per call: offsets `cu`,
    first global chunk of each sequence `chunk_off`, and per chunk its sequence and index."""

    def __init__(self, cu_seqlens: Optional[torch.Tensor], B: int, T: int, device):
        self.varlen = cu_seqlens is not None
        if not self.varlen:
            self.N, self.T, self.NT = B, T, triton.cdiv(T, BT)
            self.total = B * self.NT
            self.cu = self.chunk_off = self.chunk_seq = self.chunk_idx = None
            return
        self.N, self.T, self.NT = cu_seqlens.numel() - 1, 0, 0
        cu = cu_seqlens.to(device=device, dtype=torch.int32)
        nchunks = (cu[1:] - cu[:-1] + BT - 1) // BT
        self.total = int(nchunks.sum().item())
        self.cu = cu.contiguous()
        self.chunk_off = torch.cat([nchunks.new_zeros(1), nchunks.cumsum(0)]).to(torch.int32)
        self.chunk_seq = torch.repeat_interleave(
            torch.arange(self.N, device=device, dtype=torch.int32), nchunks.long(), output_size=self.total
        )
        self.chunk_idx = (
            torch.arange(self.total, device=device, dtype=torch.int32) - self.chunk_off[self.chunk_seq.long()]
        ).to(torch.int32)

    def chunks(self, dummy: torch.Tensor):
        """Kernel args locating each chunk (grid over chunks): cu, chunk_seq, chunk_idx."""
        if not self.varlen:
            return dummy, dummy, dummy
        return self.cu, self.chunk_seq, self.chunk_idx

    def seqs(self, dummy: torch.Tensor):
        """Kernel args locating each sequence (grid over sequences): cu, chunk_off."""
        if not self.varlen:
            return dummy, dummy
        return self.cu, self.chunk_off


def _cfg(name: str, default):
    return TUNING.get(name, default)


def _dot_dtype(dtype: torch.dtype, stage: str):
    """Operand dtype of a stage's dots: the input dtype, or fp32 (tf32 tensor cores) where
    TUNING[stage + '_fp32'] asks for it. The interpreter upcasts inside _mm either way."""
    return tl.float32 if _cfg(stage + "_fp32", stage in _preset()["stages"]) else _TL_DTYPE[dtype]


def _buf(name: str, dtype: torch.dtype) -> torch.dtype:
    """Storage dtype of an intermediate buffer (input dtype unless TUNING['fp32_bufs'] names it)."""
    return torch.float32 if name in TUNING.get("fp32_bufs", _preset()["bufs"]) else dtype


FP32_DOT = {"tf32x3": 2, "tf32": 0, "ieee": 3}  # fp32 inputs' dot modes (_mm's UP)


def _up(dtype: torch.dtype) -> int:
    """Dot mode of _mm: the interpreter; 16-bit inputs native; fp32 inputs TUNING['fp32_dot'], else as
    torch's float32 matmul precision says: "highest" (torch's default) 3 x tf32, near fp32; "high" or
    "medium" (e.g. after ``torch.backends.cuda.matmul.allow_tf32 = True``) one tf32 pass, as torch's own
    matmuls then do, with a third of the dots and far fewer registers."""
    if _interpreting():
        return 1
    if dtype != torch.float32:
        return 0
    mode = _cfg("fp32_dot", "tf32x3" if torch.get_float32_matmul_precision() == "highest" else "tf32")
    if mode not in FP32_DOT:
        raise ValueError(f"TUNING['fp32_dot']={mode!r}: use one of {', '.join(FP32_DOT)}")
    return FP32_DOT[mode]


def _solve_slice(K: int, dot_dtype) -> int:
    """Key columns per pass of the solve's K K^T: all at once for 16-bit tiles; 64 for fp32 tiles
    (four 16 x 256 fp32 tiles spilled ~46 KB of registers per thread for sm_90, ptxas -v)."""
    return min(_pow2(K), 64) if dot_dtype == tl.float32 else _pow2(K)


def _tf32_wide_keys(K: int, dtype: torch.dtype, stage: str) -> bool:
    """One-pass tf32 dots (fp32 operands, read from shared memory) on keys over 128: the stage's
    tiles nearly fill sm_90's 227 KB of shared memory, so the recurrences take narrow V blocks and the
    fused reverse one loads its late tiles after the early ones are dead (LATE)."""
    return _dot_dtype(dtype, stage) == tl.float32 and _up(dtype) == 0 and _pow2(K) > 128


def _rec_block(K: int, V: int, NH: int, name: str, dtype: torch.dtype) -> Tuple[int, int, int]:
    """(BV, num_warps, num_stages) of a recurrence kernel (grid V/BV x N*H, serial over chunks).

    From H100 sweeps: 4 warps; the forward takes 64-wide V blocks when that still gives >= 256
    programs at K = 128, else 32 (more programs for few heads or short keys), the reverse one 64 at
    K <= 64, else 32; both pipeline their loads (2 stages) where the shared memory fits (16-bit dots,
    K <= 128): for the reverse one 8-14% less fwd+bwd at 4x4096 to 1x16384 x16x128 (2026-11-27,
    check_kernels_gpu sweep "dh_stages"). Keys of 256 with
    one-pass tf32 dots (fp32 operands on the tensor cores' shared-memory path) take 16-wide V
    blocks: with 32, both recurrences need 232-240 KB of shared memory for sm_90, over its 227 KB."""
    wide = dtype == torch.float32 or _dot_dtype(dtype, name) == tl.float32
    BV = _cfg(name + "_bv", None)
    if BV is None:
        if name == "fwd":
            BV = 64 if (NH * triton.cdiv(V, 64) >= 256 and _pow2(K) == 128) else 32
        else:
            BV = 64 if _pow2(K) <= 64 else 32
        if _tf32_wide_keys(K, dtype, name):
            BV = 16
        if _interpreting():
            BV = 64
        BV = min(BV, _pow2(V))
    nw = _cfg(name + "_warps", 4)
    ns = _cfg(name + "_stages", 2 if (not wide and _pow2(K) <= 128) else 1)
    return BV, nw, ns


def _launch(kernel, grid, args, kwargs):
    """Launch; if the pipelined configuration does not fit in shared memory, retry unpipelined."""
    try:
        kernel[grid](*args, **kwargs)
    except triton.runtime.errors.OutOfResources:
        if kwargs.get("num_stages", 1) == 1:
            raise
        kernel[grid](*args, **dict(kwargs, num_stages=1))


def _solve(k, g, beta, meta, H):
    """Tinv [tokens, H, 64] (lower blocks written) and G [tokens, H] fp32 (gated only)."""
    Ttot, K = k.shape[0], k.shape[-1]
    dt = k.dtype
    tinv = _alloc((Ttot, H, BT), device=k.device, dtype=_buf("tinv", dt))
    gcum = _alloc((Ttot, H), device=k.device, dtype=torch.float32) if g is not None else None
    if meta.total:
        _solve_kernel[(meta.total, H)](
            k, beta, g if g is not None else beta, *meta.chunks(beta),
            tinv, gcum if gcum is not None else tinv,
            meta.T, meta.NT, H,
            K=K, BK=_pow2(K), BKS=_solve_slice(K, _dot_dtype(dt, "solve")), USE_G=g is not None, VARLEN=meta.varlen,
            DT=_dot_dtype(dt, "solve"), UP=_up(dt),
            num_warps=_cfg("solve_warps", 2), num_stages=1,
        )
    return tinv, gcum


def _fused(K: int, V: int, NH: int, gated: bool, dtype: torch.dtype) -> bool:
    """Whether the recurrences form Vn from Tinv, beta, k, v (FUSED) instead of loading _wu_kernel's
    W, U and gated P: TUNING["fuse_wu"], else always for the plain rule and, gated, iff the forward
    recurrence has >= 256 programs. Fusing drops a launch and two q-sized writes but adds a 64 x 64 dot
    to each chunk's sequential chain, which the gated rule's longer chain (decays) exposes where few
    programs run. H100, bf16, 2026-11-27 (check_kernels_gpu sweep "fuse_wu", table in kernels/README.md):
    plain fused fwd+bwd 2-15% faster at all five timed shapes (64 to 512 programs); gated 12-13% faster
    at 256 and 512 programs, 6-25% slower at 128 and 64."""
    return bool(_cfg("fuse_wu", not gated or _fwd_programs(K, V, NH, dtype) >= 256))


def _fwd_programs(K: int, V: int, NH: int, dtype: torch.dtype) -> int:
    """Programs of the forward recurrence (V blocks x N*H), on which the path and overlap choices rest."""
    return triton.cdiv(V, _rec_block(K, V, NH, "fwd", dtype)[0]) * NH


def _wu(q, k, v, beta, gcum, tinv, scale, meta, H):
    """W [tokens, H, K], U [tokens, H, V] of every chunk, and for the gated rule P [tokens, H, 64]
    (else None: the plain recurrences form P from their q and k tiles)."""
    Ttot, K, V = k.shape[0], k.shape[-1], v.shape[-1]
    dt = k.dtype
    w = _alloc((Ttot, H, K), device=k.device, dtype=_buf("w", dt))
    u = _alloc((Ttot, H, V), device=k.device, dtype=_buf("u", dt))
    p = _alloc((Ttot, H, BT), device=k.device, dtype=_buf("p", dt)) if gcum is not None else None
    if meta.total:
        _wu_kernel[(meta.total, H)](
            q, k, v, beta, gcum if gcum is not None else beta, tinv, *meta.chunks(beta),
            w, u, p if p is not None else w,
            scale, meta.T, meta.NT, H,
            K=K, V=V, BK=_pow2(K), BV=min(64, _pow2(V)),
            USE_G=gcum is not None, VARLEN=meta.varlen, DT=_dot_dtype(dt, "wu"), UP=_up(dt),
            num_warps=_cfg("wu_warps", 4), num_stages=_cfg("wu_stages", 1),
        )
    return w, u, p


def _recurrence(q, k, v, beta, tinv, wup, gcum, h0, scale, meta, H, output, output_final_state, store_h,
                stream=None):
    """Forward recurrence: (o or None, ht or None, h per chunk or None, Vn = U - W S or None); o when
    ``output``, the chunk states and Vn when ``store_h`` (the backward's inputs). ``wup``: (W, U, P)
    from _wu, or None for the fused form. ``stream``: launch there, after the current stream's work so
    far; the outputs are allocated on the current stream, which must wait for ``stream`` to read them."""
    Ttot, K, V = q.shape[0], q.shape[-1], v.shape[-1]
    dt = q.dtype
    NH = meta.N * H
    BV, nw, ns = _rec_block(K, V, NH, "fwd", dt)
    o = _alloc((Ttot, H, V), device=q.device, dtype=dt) if output else None
    ht = _alloc((meta.N, H, K, V), device=q.device, dtype=torch.float32) if output_final_state else None
    hs = _alloc((meta.total, H, K, V), device=q.device, dtype=_buf("hs", dt)) if store_h else None
    vn = _alloc((Ttot, H, V), device=q.device, dtype=_buf("vn", dt)) if store_h else None
    dummy = tinv
    w, u, p = wup if wup is not None else (dummy,) * 3
    if stream is not None:
        stream.wait_stream(torch.cuda.current_stream(q.device))
    with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
        _launch(_fwd_kernel, (triton.cdiv(V, BV), NH), (
            q, k, v, beta, tinv, w, u, p if p is not None else dummy, gcum if gcum is not None else dummy,
            h0 if h0 is not None else dummy,
            *meta.seqs(dummy),
            o if o is not None else dummy, ht if ht is not None else dummy,
            hs if hs is not None else dummy, vn if vn is not None else dummy,
            scale, meta.T, meta.NT, H), dict(
            K=K, V=V, BK=_pow2(K), BV=BV, VARLEN=meta.varlen,
            USE_G=gcum is not None, USE_H0=h0 is not None, STORE_HT=ht is not None,
            OUTPUT=output, STORE_H=store_h, DT=_dot_dtype(dt, "fwd"), UP=_up(dt), FUSED=wup is None,
            num_warps=nw, num_stages=ns,
        ))
    return o, ht, hs, vn


_SIDE_STREAMS: dict = {}


def _overlaps(programs: int) -> bool:
    """Whether the backward's two recurrences share the GPU (see _side_stream)."""
    return bool(_cfg("overlap", programs < 256))


def _side_stream(device: torch.device, programs: int) -> Optional[torch.cuda.Stream]:
    """A second CUDA stream of ``device`` for the states' recompute, where the recurrences run fewer
    than 256 ``programs`` (else None, and on CPU tensors; TUNING["overlap"] True / False forces it).

    The backward's two recurrences run one program per sequence, head and V block, serially over
    chunks: with few programs each leaves most SMs idle (latency-bound), so running the recompute
    beside the reverse recurrence costs little more than the longer one. H100, 2026-11-27 (CUDA-graph
    times, bench/results/kernels_sweep_h100.md): fwd+bwd 8-19% less at 2x8192 and 1x16384 x16x128
    (128 and 64 programs), within 1% at 256 and more, where the two together no longer fit the SMs
    at once; so the default keeps one stream there."""
    if device.type != "cuda" or not _overlaps(programs):
        return None
    side = _SIDE_STREAMS.get(device.index)
    if side is None:
        side = _SIDE_STREAMS[device.index] = torch.cuda.Stream(device)
    return side


def _backward(q, k, v, g, beta, scale, h0, tinv, gcum, do, dht, meta, H, fused, kept):
    """Every gradient. ``kept``: (chunk states, Vn) as the forward kept them, or (None, None): then
    the forward recurrence recomputes them, beside the reverse one. Unfused, _wu first re-forms W, U
    and the gated P."""
    Ttot, K, V = q.shape[0], q.shape[-1], v.shape[-1]
    dt = q.dtype
    NH = meta.N * H
    hs, vn = kept
    wup = None if fused else _wu(q, k, v, beta, gcum, tinv, scale, meta, H)
    w, _, p = wup if wup is not None else (None,) * 3
    side = None
    if hs is None:  # the states' recompute and the reverse recurrence are independent: side by side
        side = _side_stream(q.device, _fwd_programs(K, V, NH, dt))
        _, _, hs, vn = _recurrence(q, k, v, beta, tinv, wup, gcum, h0, scale, meta, H, output=False,
                                   output_final_state=False, store_h=True, stream=side)
    dhs = _alloc((meta.total, H, K, V), device=q.device, dtype=_buf("dhs", dt))
    dvn = _alloc((Ttot, H, V), device=q.device, dtype=_buf("dvn", dt))
    dh0 = _alloc((meta.N, H, K, V), device=q.device, dtype=torch.float32) if h0 is not None else None
    BV, nw, ns = _rec_block(K, V, NH, "bwd_dh", dt)
    _launch(_bwd_dh_kernel, (triton.cdiv(V, BV), NH), (
        q, k, beta, tinv, w if w is not None else tinv, p if p is not None else tinv,
        gcum if gcum is not None else tinv, do, dht if dht is not None else tinv,
        *meta.seqs(tinv), dhs, dvn, dh0 if dh0 is not None else tinv,
        scale, meta.T, meta.NT, H), dict(
        K=K, V=V, BK=_pow2(K), BV=BV, VARLEN=meta.varlen,
        USE_G=gcum is not None, USE_DHT=dht is not None, STORE_DH0=dh0 is not None, DT=_dot_dtype(dt, "bwd_dh"), UP=_up(dt),
        FUSED=fused, LATE=fused and _tf32_wide_keys(K, dt, "bwd_dh"),
        num_warps=nw, num_stages=ns,
    ))
    if side is not None:  # join: every tensor the side stream touched was allocated on this one
        torch.cuda.current_stream(q.device).wait_stream(side)
    dq = _alloc(q.shape, device=q.device, dtype=q.dtype)
    dk = _alloc(k.shape, device=k.device, dtype=k.dtype)
    dv = _alloc(v.shape, device=v.device, dtype=v.dtype)
    dbeta = _alloc(beta.shape, device=beta.device, dtype=beta.dtype)
    dg = _alloc(g.shape, device=g.device, dtype=g.dtype) if g is not None else None
    BK = min(_cfg("bwd_bk", 64), _pow2(K))
    if BK < min(64, _pow2(K)):
        raise ValueError(f"TUNING['bwd_bk']={BK} with K={K}: key blocks under 64 raised an illegal memory "
                         "access on an H100 (Triton 3.6) in the backward; use 64 or 128")
    if meta.total:
        # H100 sweep "bwd_stages" (2026-11-27): 4 warps with pipelined loads, 3-11% less fwd+bwd at
        # DESIGN §9's shapes and 1x16384 than the 8 warps, 1 stage kept for fp32 dots and head dims of 256
        small = _dot_dtype(dt, "bwd") != tl.float32 and _pow2(K) <= 128 and _pow2(V) <= 128
        interp = _interpreting()
        _bwd_kernel[(meta.total, H)](
            q, k, v, beta, gcum if gcum is not None else beta, tinv,
            hs, dhs, vn, dvn, do,
            *meta.chunks(beta),
            dq, dk, dv, dbeta, dg if dg is not None else dbeta,
            scale, meta.T, meta.NT, H,
            K=K, V=V, BK=BK, BV=min(_cfg("bwd_bv", 64), _pow2(V)),
            USE_G=g is not None, VARLEN=meta.varlen, DT=_dot_dtype(dt, "bwd"), UP=_up(dt),
            num_warps=_cfg("bwd_warps", 4 if small or interp else 8),
            num_stages=_cfg("bwd_stages", 2 if small else 1),
        )
    else:
        dq.zero_(), dk.zero_(), dv.zero_(), dbeta.zero_()
        if dg is not None:
            dg.zero_()
    return dq, dk, dv, dbeta, dg, dh0


class _ChunkDeltaRule(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, g, beta, scale, initial_state, output_final_state, cu_seqlens):
        B, T, H, K = q.shape
        V = v.shape[-1]
        meta = _Meta(cu_seqlens, B, T, q.device)
        # flat tokens [B*T, H, D]; contiguous so the kernels' pointer arithmetic holds
        qf, kf, vf = (x.reshape(B * T, H, x.shape[-1]).contiguous() for x in (q, k, v))
        bf = beta.reshape(B * T, H).contiguous()
        gf = g.reshape(B * T, H).contiguous() if g is not None else None
        h0 = initial_state.contiguous() if initial_state is not None else None
        tinv, gcum = _solve(kf, gf, bf, meta, H)
        fused = _fused(K, V, meta.N * H, g is not None, q.dtype)  # the backward takes the same path
        wup = None if fused else _wu(qf, kf, vf, bf, gcum, tinv, scale, meta, H)
        keep_states = _cfg("keep_states", False)
        o, ht, hs, vn = _recurrence(qf, kf, vf, bf, tinv, wup, gcum, h0, scale, meta, H, output=True,
                                    output_final_state=output_final_state, store_h=keep_states)
        # Tinv and G are kept (64 + 1 values per token and head); by default the backward recomputes
        # the chunk states and Vn (TUNING keep_states keeps them instead) and, unfused, W, U and P.
        ctx.save_for_backward(qf, kf, vf, gf, bf, h0, tinv, gcum, hs, vn)
        ctx.meta, ctx.scale, ctx.shape, ctx.fused = meta, scale, (B, T, H, K, V), fused
        return o.reshape(B, T, H, V), ht

    @staticmethod
    def backward(ctx, do, dht):
        qf, kf, vf, gf, bf, h0, tinv, gcum, *kept = ctx.saved_tensors
        B, T, H, K, V = ctx.shape
        do = do.reshape(B * T, H, V).to(qf.dtype).contiguous()
        dht = dht.float().contiguous() if dht is not None else None
        dq, dk, dv, db, dg, dh0 = _backward(qf, kf, vf, gf, bf, ctx.scale, h0, tinv, gcum, do, dht, ctx.meta, H,
                                          ctx.fused, kept)
        return (
            dq.reshape(B, T, H, K), dk.reshape(B, T, H, K), dv.reshape(B, T, H, V),
            dg.reshape(B, T, H) if dg is not None else None, db.reshape(B, T, H),
            None, dh0, None, None,
        )


def _entry(q, k, v, g, beta, scale, initial_state, output_final_state, cu_seqlens):
    B, T, H, K, V, N = check_delta_inputs(q, k, v, beta, g, initial_state, cu_seqlens)
    if q.dtype == torch.float64:
        raise ValueError("the Triton chunk kernels take fp32/bf16/fp16; use torch_chunk_* for float64")
    if K > 256 or V > 256:
        raise ValueError(f"head dims up to 256 are supported, got K={K}, V={V}")
    if q.device.type != "cuda" and not _interpreting():
        raise ValueError(
            "chunk kernels need CUDA tensors (or TRITON_INTERPRET=1 set before import); "
            "on CPU use zoo.kernels.torch_chunk_delta_rule / torch_chunk_gated_delta_rule"
        )
    scale = K ** -0.5 if scale is None else float(scale)
    if initial_state is not None:
        initial_state = initial_state.float()
    o, ht = _ChunkDeltaRule.apply(q, k, v, g, beta, scale, initial_state, output_final_state, cu_seqlens)
    return o, (ht if output_final_state else None)


def chunk_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    scale: Optional[float] = None,
    initial_state: Optional[torch.Tensor] = None,
    output_final_state: bool = False,
    cu_seqlens: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Delta rule, chunkwise in Triton (64-token chunks), differentiable.

    S_t = S_{t-1} + k_t (beta_t (v_t - S_{t-1}^T k_t))^T,  o_t = (scale q_t)^T S_t, with the
    state S [K, V] per head.

    Args:
        q, k: [B, T, H, K] (k should be L2-normalised; the op does not normalise).
        v: [B, T, H, V]; K, V <= 256 (any size; tiles are padded to powers of two).
        beta: [B, T, H], in (0, 1).
        scale: multiplies q; default K ** -0.5.
        initial_state: [N, H, K, V] (float32; cast if not) or None for zeros; differentiable.
        output_final_state: also return the state after the last token.
        cu_seqlens: int32/int64 [N + 1] offsets of N packed documents (then B must be 1); each
            document starts from its own initial_state[n] (or zeros).
    Returns:
        o [B, T, H, V] in q's dtype, and final_state [N, H, K, V] float32 (None unless
        output_final_state).
    Inputs fp32 / bf16 / fp16 on CUDA (or CPU under TRITON_INTERPRET=1). With 16-bit inputs
    the dots run on 16-bit tensor cores and intermediates are stored in the input dtype
    (relative RMS errors ~3e-3 against fp32 at 8x2048x16x128 on an H100); chunk.PRESETS /
    chunk.TUNING["precision"] trade speed for fp32 intermediates. fp32 inputs use 3 x tf32 dots, or
    one tf32 pass when torch's float32 matmul precision is "high" or "medium".
    """
    return _entry(q, k, v, None, beta, scale, initial_state, output_final_state, cu_seqlens)


def chunk_gated_delta_rule(
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
    """Gated delta rule (Gated DeltaNet), chunkwise in Triton, differentiable.

    As `chunk_delta_rule`, with S_{t-1} multiplied by exp(g_t) before each update.
    g: [B, T, H] log decay (<= 0), any float dtype; its gradient comes back in g's dtype.
    Other args and returns as `chunk_delta_rule`.
    """
    return _entry(q, k, v, g, beta, scale, initial_state, output_final_state, cu_seqlens)
