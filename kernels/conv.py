"""Causal depthwise conv1d + SiLU (the short convolution of the linear-attention mixers) in Triton,
forward and backward, beside its PyTorch reference.

With S taps, w [C, S] (w[:, S-1] multiplies the current token) and the input extended to the
left by the tail (zeros without one), xin(t) = x[t] for t >= 0 and tail[S-1+t] for t < 0:

    z_t  = sum_j keep(j, t) w[:, S-1-j] xin(t-j)          keep(j, t) = pos[t] >= j (1 without pos)
    y_t  = silu(z_t)
    g_t  = dy_t sigma(z_t) (1 + z_t (1 - sigma(z_t)))
    dx_u = sum_j keep(j, u+j) w[:, S-1-j] g_{u+j}         over 0 <= u+j < T (u < 0: the tail's gradient)
    dw[:, S-1-j] = sum_{b,t} keep(j, t) g_t xin(t-j)

pos [T] holds each token's offset in its document (packed input), so the conv never reads across a
document start. The forward saves only x, w, tail and pos; the backward recomputes z.

Both kernels walk time: a program owns BC channels (two per thread) of R consecutive rows of one
sequence and steps through them one row at a time, keeping the last S-1 inputs, the taps, the
partial dx of the rows still open and the dw sums in registers; row t's g completes dx of row
t-(S-1). So each element of x and dy is read once (plus S-1 rows of halo per program), dx is
written once, z and sigma are formed once per element, and no value crosses threads. Loads run two
rows ahead of use. dw: each program stores its fp32 sums, torch adds them up. The taps are named
variables, hence at most MAX_SIZE = 4. Block sizes come from the shapes (no autotune).
"""
from __future__ import annotations

import os
from typing import Optional

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
MAX_SIZE = 4  # taps the kernels hold (named variables)


def _empty(*shape, **kwargs) -> torch.Tensor:
    """Every buffer a kernel must fill comes from here (tests swap in a NaN-filled allocator)."""
    return torch.empty(*shape, **kwargs)


# --------------------------------------------------------------------------------------
# Triton kernels
# --------------------------------------------------------------------------------------
@triton.jit
def _row(x, tail, b, i, oc, mc, T, C, S: tl.constexpr, HAS_TAIL: tl.constexpr):
    """Row i of xin as loaded (x's dtype, not yet waited on): x for 0 <= i < T, the tail for
    1-S <= i < 0, zeros elsewhere."""
    ptr = x + (b * T + i).to(tl.int64) * C
    ok = (i >= 0) & (i < T)
    if HAS_TAIL:
        ptr = tl.where(i >= 0, ptr, tail + (b * (S - 1) + i + (S - 1)).to(tl.int64) * C)
        ok = (i >= 1 - S) & (i < T)
    return tl.load(ptr + oc, mask=mc & ok, other=0.0)


@triton.jit
def _tap(w, oc, mc, j: tl.constexpr, S: tl.constexpr):
    """fp32 weight of the input j tokens back, w[:, S-1-j] (zeros for j >= S)."""
    return tl.load(w + oc * S + (S - 1 - j), mask=mc & (j < S), other=0.0).to(tl.float32)


@triton.jit
def _taps(w, oc, mc, S: tl.constexpr):
    """The four fp32 taps w0..w3 (w0 multiplies the current token; zeros beyond S)."""
    return _tap(w, oc, mc, 0, S), _tap(w, oc, mc, 1, S), _tap(w, oc, mc, 2, S), _tap(w, oc, mc, 3, S)


@triton.jit
def _history(x, tail, b, t, oc, mc, T, C, S: tl.constexpr, HAS_TAIL: tl.constexpr):
    """Rows t-1, t-2, t-3 of xin in fp32: the inputs a walk starting at row t already needs."""
    return (_row(x, tail, b, t - 1, oc, mc, T, C, S, HAS_TAIL).to(tl.float32),
            _row(x, tail, b, t - 2, oc, mc, T, C, S, HAS_TAIL).to(tl.float32),
            _row(x, tail, b, t - 3, oc, mc, T, C, S, HAS_TAIL).to(tl.float32))


@triton.jit
def _pos(pos, t, T, HAS_POS: tl.constexpr):
    """pos[t] as loaded (0 outside [0, T)); without pos, 3 (every tap kept)."""
    if HAS_POS:
        return tl.load(pos + t, mask=(t >= 0) & (t < T), other=0).to(tl.int32)
    else:
        return tl.full([], 3, tl.int32)


@triton.jit
def _fwd_kernel(x, w, tail, pos, y, T, C, R,
                S: tl.constexpr, BC: tl.constexpr, HAS_TAIL: tl.constexpr, HAS_POS: tl.constexpr):
    """grid (C blocks, T / R, B): y = silu(z) on rows [t0, t0 + R)."""
    oc = tl.program_id(0) * BC + tl.arange(0, BC)
    mc = oc < C
    b = tl.program_id(2)
    t0 = tl.program_id(1) * R
    t1 = tl.minimum(t0 + R, T)
    w0, w1, w2, w3 = _taps(w, oc, mc, S)
    x1, x2, x3 = _history(x, tail, b, t0, oc, mc, T, C, S, HAS_TAIL)
    xa = _row(x, tail, b, t0, oc, mc, T, C, S, HAS_TAIL)  # prefetched rows t, t+1
    xb = _row(x, tail, b, t0 + 1, oc, mc, T, C, S, HAS_TAIL)
    pa = _pos(pos, t0, T, HAS_POS)
    pb = _pos(pos, t0 + 1, T, HAS_POS)
    for t in range(t0, t1):
        xt = xa.to(tl.float32)
        p = pa
        xa = xb
        pa = pb
        xb = _row(x, tail, b, t + 2, oc, mc, T, C, S, HAS_TAIL)
        pb = _pos(pos, t + 2, T, HAS_POS)
        z = w0 * xt
        z += tl.where(p >= 1, w1, 0.0) * x1
        z += tl.where(p >= 2, w2, 0.0) * x2
        z += tl.where(p >= 3, w3, 0.0) * x3
        x3 = x2
        x2 = x1
        x1 = xt
        tl.store(y + (b * T + t).to(tl.int64) * C + oc, (z * tl.sigmoid(z)).to(y.dtype.element_ty), mask=mc)


@triton.jit
def _bwd_kernel(x, w, tail, pos, dy, dx, dtail, dwp, T, C, R, P,
                S: tl.constexpr, BC: tl.constexpr, HAS_TAIL: tl.constexpr, HAS_POS: tl.constexpr,
                DTAIL: tl.constexpr):
    """grid (C blocks, (T + P) / R, B): dx of rows u in [u0, u1) (u < 0: the tail's gradient, when
    P = S - 1) and the dw partial sums of those rows, stored to dwp[b * groups + group, :, block].

    Row t of the walk (t from u0 to u1 + S - 2) forms z_t and g_t once; g_t completes dx of row
    t - (S-1) and adds to the running sums a1..a3 of rows t, t-1, t-2."""
    oc = tl.program_id(0) * BC + tl.arange(0, BC)
    mc = oc < C
    b = tl.program_id(2)
    u0 = tl.program_id(1) * R - P
    u1 = tl.minimum(u0 + R, T)
    w0, w1, w2, w3 = _taps(w, oc, mc, S)
    x1, x2, x3 = _history(x, tail, b, u0, oc, mc, T, C, S, HAS_TAIL)
    xa = _row(x, tail, b, u0, oc, mc, T, C, S, HAS_TAIL)  # prefetched rows t, t+1 of x and dy
    xb = _row(x, tail, b, u0 + 1, oc, mc, T, C, S, HAS_TAIL)
    pa = _pos(pos, u0, T, HAS_POS)
    pb = _pos(pos, u0 + 1, T, HAS_POS)
    da = tl.load(dy + (b * T + u0).to(tl.int64) * C + oc, mask=mc & (u0 >= 0) & (u0 < T), other=0.0)
    db = tl.load(dy + (b * T + u0 + 1).to(tl.int64) * C + oc, mask=mc & (u0 + 1 >= 0) & (u0 + 1 < T), other=0.0)
    a1 = tl.zeros([BC], dtype=tl.float32)
    a2 = tl.zeros([BC], dtype=tl.float32)
    a3 = tl.zeros([BC], dtype=tl.float32)
    dw0 = tl.zeros([BC], dtype=tl.float32)
    dw1 = tl.zeros([BC], dtype=tl.float32)
    dw2 = tl.zeros([BC], dtype=tl.float32)
    dw3 = tl.zeros([BC], dtype=tl.float32)
    for t in range(u0, u1 + S - 1):
        xt = xa.to(tl.float32)
        d = da.to(tl.float32)
        p = pa
        xa = xb
        da = db
        pa = pb
        xb = _row(x, tail, b, t + 2, oc, mc, T, C, S, HAS_TAIL)
        db = tl.load(dy + (b * T + t + 2).to(tl.int64) * C + oc, mask=mc & (t + 2 >= 0) & (t + 2 < T), other=0.0)
        pb = _pos(pos, t + 2, T, HAS_POS)
        k1 = p >= 1
        k2 = p >= 2
        k3 = p >= 3
        c1 = tl.where(k1, w1, 0.0)
        c2 = tl.where(k2, w2, 0.0)
        c3 = tl.where(k3, w3, 0.0)
        z = w0 * xt + c1 * x1 + c2 * x2 + c3 * x3
        sg = tl.sigmoid(z)
        g = d * sg * (1.0 + z * (1.0 - sg))  # 0 outside [0, T), as d is
        # dw over this program's rows only (rows >= u1 belong to the next program)
        go = tl.where(t < u1, g, 0.0)
        dw0 += go * xt
        dw1 += tl.where(k1, go * x1, 0.0)
        dw2 += tl.where(k2, go * x2, 0.0)
        dw3 += tl.where(k3, go * x3, 0.0)
        x3 = x2
        x2 = x1
        x1 = xt
        if S == 1:
            done = w0 * g
        elif S == 2:
            done = a1 + c1 * g
        elif S == 3:
            done = a2 + c2 * g
        else:
            done = a3 + c3 * g
        a3 = a2 + c2 * g
        a2 = a1 + c1 * g
        a1 = w0 * g
        u = t - (S - 1)
        mine = (u >= u0) & (u < u1)
        tl.store(dx + (b * T + u).to(tl.int64) * C + oc, done.to(dx.dtype.element_ty), mask=mc & mine & (u >= 0))
        if DTAIL:
            tl.store(dtail + (b * (S - 1) + u + (S - 1)).to(tl.int64) * C + oc, done.to(dtail.dtype.element_ty),
                     mask=mc & mine & (u < 0))
    part = dwp + ((b * tl.num_programs(1) + tl.program_id(1)) * S).to(tl.int64) * C + oc
    tl.store(part + (S - 1) * C, dw0, mask=mc)
    if S > 1:
        tl.store(part + (S - 2) * C, dw1, mask=mc)
    if S > 2:
        tl.store(part + (S - 3) * C, dw2, mask=mc)
    if S > 3:
        tl.store(part + (S - 4) * C, dw3, mask=mc)


# --------------------------------------------------------------------------------------
# launch configuration (from shapes; no autotune)
# --------------------------------------------------------------------------------------
def _config(B: int, rows: int, C: int):
    """(BC, R, num_warps): two channels per thread (a warp reads 64 channels of a row), up to 4
    warps across channels; R rows per program (16..256), as many as keep ~4096 warps busy (an H100
    holds ~32 per SM): more rows mean fewer fp32 dw partials (4 S / R bytes per element) and less
    halo, fewer mean more parallelism."""
    if _INTERPRET:  # few programs to emulate, still several row groups and channel blocks
        return 64, max(4, triton.next_power_of_2(triton.cdiv(rows, 3))), 1
    BC = min(256, max(64, triton.next_power_of_2(C)))
    warps = BC // 64
    R = triton.next_power_of_2(max(1, B * rows * triton.cdiv(C, BC) * warps // 4096))
    return BC, max(16, min(256, R)), warps


# --------------------------------------------------------------------------------------
# autograd
# --------------------------------------------------------------------------------------
def _check(x, weight, tail, pos):
    if x.dim() != 3:
        raise ValueError(f"x must be [B, T, C], got shape {tuple(x.shape)}")
    B, T, C = x.shape
    if weight.dim() != 2 or weight.shape[0] != C or weight.shape[1] < 1:
        raise ValueError(f"weight must be [C, size] = [{C}, size], got shape {tuple(weight.shape)}")
    S = weight.shape[1]
    if tail is not None and tail.shape != (B, S - 1, C):
        raise ValueError(f"tail must be [B, size-1, C] = [{B}, {S - 1}, {C}], got shape {tuple(tail.shape)}")
    if S > MAX_SIZE:
        raise ValueError(f"causal_conv1d_silu supports up to {MAX_SIZE} taps, got weight [C, {S}]; "
                         "use torch_causal_conv1d_silu")
    if pos is not None and (pos.shape != (T,) or pos.dtype.is_floating_point):
        raise ValueError(f"pos must be an integer tensor [T] = [{T}] of in-document offsets, got "
                         f"{tuple(pos.shape)} {pos.dtype}")
    if x.device.type != "cuda" and not _INTERPRET:
        raise ValueError(f"causal_conv1d_silu runs its Triton kernels on CUDA tensors; got {x.device}. "
                         "On CPU use torch_causal_conv1d_silu.")


class _CausalConv1dSilu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, tail, pos):
        """x [B, T, C] contiguous, weight [C, S], tail [B, S-1, C] in x's dtype or None, pos [T] or None."""
        B, T, C = x.shape
        S = weight.shape[1]
        y = _empty(B, T, C, device=x.device, dtype=x.dtype)
        BC, R, warps = _config(B, T, C)
        if y.numel():
            _fwd_kernel[(triton.cdiv(C, BC), triton.cdiv(T, R), B)](
                x, weight, tail if tail is not None else x, pos if pos is not None else x, y, T, C, R,
                S=S, BC=BC, HAS_TAIL=tail is not None, HAS_POS=pos is not None, num_warps=warps)
        ctx.save_for_backward(x, weight, tail, pos)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, tail, pos = ctx.saved_tensors
        B, T, C = x.shape
        S = weight.shape[1]
        dtail_needed = tail is not None and ctx.needs_input_grad[2]
        P = S - 1 if dtail_needed else 0  # rows -P..-1 are the tail's
        BC, R, warps = _config(B, T + P, C)
        groups = triton.cdiv(T + P, R)
        dx = _empty(B, T, C, device=x.device, dtype=x.dtype)
        dtail = _empty(B, S - 1, C, device=x.device, dtype=x.dtype) if dtail_needed else None
        dwp = _empty(B * groups, S, C, device=x.device, dtype=torch.float32)
        if dwp.numel():
            _bwd_kernel[(triton.cdiv(C, BC), groups, B)](
                x, weight, tail if tail is not None else x, pos if pos is not None else x, dy.contiguous(), dx,
                dtail if dtail is not None else dx, dwp, T, C, R, P,
                S=S, BC=BC, HAS_TAIL=tail is not None, HAS_POS=pos is not None, DTAIL=dtail_needed,
                num_warps=warps)
        dw = dwp.sum(0).t().to(weight.dtype)
        return dx, dw, dtail, None


def causal_conv1d_silu(x: torch.Tensor, weight: torch.Tensor, tail: Optional[torch.Tensor] = None,
                       pos: Optional[torch.Tensor] = None) -> torch.Tensor:
    """silu(causal depthwise conv1d(x)) with Triton kernels (CUDA, or the interpreter in tests).

    Args:
        x: [B, T, C] (any float dtype; made contiguous if it is not).
        weight: [C, size]; weight[:, -1] multiplies the current token. Any dtype (used in fp32).
        tail: [B, size-1, C] inputs that precede x (a generation cache), or None for zeros.
            It gets a gradient when it requires one.
        pos: int [T] offset of each token in its document (packed input), or None: the conv never
            reads across a document start (taps s > pos[t] are dropped).
    Returns:
        y [B, T, C] in x's dtype. Gradients flow to x, weight (in weight's dtype) and tail.
    """
    _check(x, weight, tail, pos)
    tail = tail.to(x.dtype).contiguous() if tail is not None and weight.shape[1] > 1 else None
    pos = pos.contiguous() if pos is not None else None
    return _CausalConv1dSilu.apply(x.contiguous(), weight.contiguous(), tail, pos)


# --------------------------------------------------------------------------------------
# PyTorch reference (the CPU path of ShortConvolution)
# --------------------------------------------------------------------------------------
class _ConvSiluFn(torch.autograd.Function):
    """silu(causal depthwise conv) of a left-padded input; saves only the input and the weight
    (the backward recomputes the pre-activation)."""

    @staticmethod
    def forward(ctx, xp, w, keep):
        """xp [B, size-1+T, C], w [C, size] (w[:, -1] multiplies the current token), keep [size, T]
        or None: keep[s, t] zeroes the input s tokens back at t (a document start within s)."""
        ctx.save_for_backward(xp, w, keep)
        return F.silu(_conv(xp, w, keep))

    @staticmethod
    def backward(ctx, dout):
        xp, w, keep = ctx.saved_tensors
        size = w.shape[1]
        T = xp.shape[1] - size + 1
        dt = torch.promote_types(xp.dtype, torch.float32)
        y = _conv(xp.to(dt), w.to(dt), None if keep is None else keep.to(dt))
        s = torch.sigmoid(y)
        dy = dout.to(dt) * s * (1 + y * (1 - s))
        dxp = torch.zeros(xp.shape, dtype=dt, device=xp.device)
        dw = torch.empty(w.shape, dtype=dt, device=w.device)
        for shift in range(size):
            lo = size - 1 - shift
            d = dy if keep is None or shift == 0 else dy * keep[shift, :, None].to(dt)
            dxp[:, lo : lo + T] += d * w[:, -1 - shift].to(dt)
            dw[:, -1 - shift] = (d * xp[:, lo : lo + T].to(dt)).sum((0, 1))
        return dxp.to(xp.dtype), dw.to(w.dtype), None


def _conv(xp, w, keep):
    size = w.shape[1]
    T = xp.shape[1] - size + 1
    y = xp[:, size - 1 :] * w[:, -1]
    for shift in range(1, size):
        past = xp[:, size - 1 - shift : size - 1 - shift + T]
        if keep is not None:
            past = past * keep[shift, :, None]
        y = y + past * w[:, -1 - shift]
    return y


def torch_causal_conv1d_silu(x: torch.Tensor, weight: torch.Tensor, tail: Optional[torch.Tensor] = None,
                             pos: Optional[torch.Tensor] = None) -> torch.Tensor:
    """PyTorch reference of `causal_conv1d_silu` (same signature): the conv runs in x's dtype (weight
    and tail cast to it), the hand-written backward in fp32. Without autograd it skips the Function."""
    B, T, C = x.shape
    size = weight.shape[1]
    left = tail.to(x.dtype) if tail is not None else x.new_zeros(B, size - 1, C)
    xp = torch.cat([left, x], dim=1)  # [B, size-1+T, C]
    keep = None
    if pos is not None:
        keep = (pos[None, :] >= torch.arange(size, device=pos.device)[:, None]).to(x.dtype)
    w = weight.to(x.dtype)
    return _ConvSiluFn.apply(xp, w, keep) if torch.is_grad_enabled() else F.silu(_conv(xp, w, keep))
