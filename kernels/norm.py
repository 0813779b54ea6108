"""RMSNorm (plain and output-gated), the L2 norm and SwiGLU's silu(g) * u: one fused Triton kernel
per op and direction, beside the PyTorch autograd Functions they replace (the `torch_*` references,
the CPU path of the layers).

All arithmetic is fp32 in registers; each kernel reads its inputs once and writes its outputs once
(maths and traffic per call in kernels/README.md, "Norms and SwiGLU"). What the forwards keep for
the backward is only the inputs plus one fp32 scalar per row (rstd, resp. the norm): the backward
recomputes the normalised row while it has it in registers.

Row kernels (RMSNorm, L2 norm) see the input as rows [M, D] over the last dim: a program holds a
[ROWS, BLOCK_D] tile (BLOCK_D = next power of 2 >= D, ROWS = TUNING["tile"] // BLOCK_D, so small
per-head rows go several to a tile) and walks row blocks grid-stride over a grid capped at a few
programs per SM. The RMSNorm backward sums each program's dweight share in fp32 registers and
writes one [D] row per program; torch sums those rows. silu_mul runs on the flat tensor in blocks
of TUNING["elem_block"], grid-stride likewise. No autotuning: configs follow from the shapes.
"""
from __future__ import annotations

import functools
import os
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from .utils import KERNEL_DTYPES

__all__ = ["rms_norm", "l2_normalize", "silu_mul", "torch_rms_norm", "torch_l2_normalize", "torch_silu_mul"]


_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

# Launch knobs, for benchmarks (the defaults are untuned guesses for an H100):
#   tile: elements of one row-kernel tile;  elem_block: elements per silu_mul block;
#   per_sm: program cap per SM of the grid-stride kernels;  rms_bwd_per_sm: the same for the
#   RMSNorm backward, which writes one fp32 [D] dweight row per program (so fewer there).
TUNING: dict = dict(tile=2048, elem_block=4096, per_sm=8, rms_bwd_per_sm=4)


# ---------------------------------------------------------------------------------------------
# PyTorch references (the layers' CPU path; the Triton ops' ground truth in tests)
# ---------------------------------------------------------------------------------------------


def _silu_grad(g: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(g)
    return s * (1 + g * (1 - s))


def _rms_norm(x, weight, gate, eps: float, out_dtype: torch.dtype):
    """(y, rstd [..., 1]): the forward of RMSNorm, with and without autograd."""
    dt = torch.promote_types(x.dtype, torch.float32)
    xf = x.to(dt)
    rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    y = xf * rstd * weight.to(dt)
    if gate is not None:
        y = y * F.silu(gate.to(dt))
    return y.to(out_dtype), rstd


class _RMSNormFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, gate, eps: float, out_dtype: torch.dtype):
        y, rstd = _rms_norm(x, weight, gate, eps, out_dtype)
        ctx.save_for_backward(x, weight, gate, rstd)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, gate, rstd = ctx.saved_tensors
        dt = rstd.dtype
        n = x.to(dt) * rstd
        dy = dy.to(dt)
        dgate = None
        if gate is not None:
            gf = gate.to(dt)
            dgate = (dy * n * weight.to(dt) * _silu_grad(gf)).to(gate.dtype)
            dy = dy * F.silu(gf)
        dweight = (dy * n).reshape(-1, n.shape[-1]).sum(0).to(weight.dtype)
        dn = dy * weight.to(dt)
        dx = rstd * (dn - n * (dn * n).mean(-1, keepdim=True))
        return dx.to(x.dtype), dweight, dgate, None, None


def torch_rms_norm(x: torch.Tensor, weight: torch.Tensor, gate: Optional[torch.Tensor] = None,
                   eps: float = 1e-6, out_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """PyTorch reference of `rms_norm` (same signature); without autograd it skips the Function."""
    args = (x, weight, gate, eps, out_dtype or x.dtype)
    return _RMSNormFn.apply(*args) if torch.is_grad_enabled() else _rms_norm(*args)[0]


def _l2_norm(x, eps: float):
    """(y, ‖x‖ [..., 1]): the forward of l2_normalize, with and without autograd."""
    xf = x.to(torch.promote_types(x.dtype, torch.float32))
    norm = xf.norm(dim=-1, keepdim=True)
    return (xf / norm.clamp_min(eps)).to(x.dtype), norm


class _L2NormFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, eps: float):
        y, norm = _l2_norm(x, eps)
        ctx.save_for_backward(x, norm)
        ctx.eps = eps
        return y

    @staticmethod
    def backward(ctx, dy):
        x, norm = ctx.saved_tensors
        r = 1 / norm.clamp_min(ctx.eps)
        y = x.to(norm.dtype) * r
        dy = dy.to(norm.dtype)
        dx = torch.where(norm > ctx.eps, r * (dy - y * (dy * y).sum(-1, keepdim=True)), dy * r)
        return dx.to(x.dtype), None


def torch_l2_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """PyTorch reference of `l2_normalize` (same signature); without autograd it skips the Function."""
    return _L2NormFn.apply(x, eps) if torch.is_grad_enabled() else _l2_norm(x, eps)[0]


class _SiluMulFn(torch.autograd.Function):
    """silu(g) * u, saving only g and u (autograd would also keep silu(g))."""

    @staticmethod
    def forward(ctx, g, u):
        ctx.save_for_backward(g, u)
        return F.silu(g) * u

    @staticmethod
    def backward(ctx, dh):
        g, u = ctx.saved_tensors
        dt = torch.promote_types(g.dtype, torch.float32)
        gf, dhf = g.to(dt), dh.to(dt)
        s = torch.sigmoid(gf)
        dg = dhf * u.to(dt) * s * (1 + gf * (1 - s))
        return dg.to(g.dtype), (dhf * gf * s).to(u.dtype)


def torch_silu_mul(g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """PyTorch reference of `silu_mul` (same signature); without autograd it skips the Function."""
    return _SiluMulFn.apply(g, u) if torch.is_grad_enabled() else F.silu(g) * u


# ---------------------------------------------------------------------------------------------
# Triton kernels
# ---------------------------------------------------------------------------------------------


@triton.jit
def _tile(blk, ROWS: tl.constexpr, M, cmask):
    """Rows [blk * ROWS, (blk + 1) * ROWS) of a row kernel: (rows int64, row mask, [ROWS, BLOCK_D] mask)."""
    rows = tl.cast(blk, tl.int64) * ROWS + tl.arange(0, ROWS)
    rmask = rows < M
    return rows, rmask, rmask[:, None] & cmask[None, :]


@triton.jit
def _load_f32(ptr, rows, stride, cols, mask):
    """A [ROWS, BLOCK_D] tile of rows with the given row stride (unit column stride), in fp32."""
    return tl.load(ptr + rows[:, None] * stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _store_tile(ptr, rows, D, cols, val, mask):
    """val into a contiguous [M, D] output at the tile's rows, in the output's dtype."""
    tl.store(ptr + rows[:, None] * D + cols[None, :], val.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _rms_fwd_kernel(x_ptr, w_ptr, g_ptr, y_ptr, rstd_ptr, M, D, n_blocks, sx, sg, eps,
                    HAS_GATE: tl.constexpr, BLOCK_D: tl.constexpr, ROWS: tl.constexpr):
    pid, nprog = tl.program_id(0), tl.num_programs(0)
    cols = tl.arange(0, BLOCK_D)
    cmask = cols < D
    w = tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
    for blk in range(pid, n_blocks, nprog):
        rows, rmask, mask = _tile(blk, ROWS, M, cmask)
        x = _load_f32(x_ptr, rows, sx, cols, mask)
        rstd = tl.rsqrt(tl.sum(x * x, axis=1) / D + eps)
        y = x * rstd[:, None] * w[None, :]
        if HAS_GATE:
            g = _load_f32(g_ptr, rows, sg, cols, mask)
            y = y * (g * tl.sigmoid(g))
        _store_tile(y_ptr, rows, D, cols, y, mask)
        tl.store(rstd_ptr + rows, rstd, mask=rmask)


@triton.jit
def _rms_bwd_kernel(x_ptr, w_ptr, g_ptr, dy_ptr, rstd_ptr, dx_ptr, dg_ptr, dw_ptr, M, D, n_blocks,
                    sx, sg, sdy, HAS_GATE: tl.constexpr, BLOCK_D: tl.constexpr, ROWS: tl.constexpr):
    pid, nprog = tl.program_id(0), tl.num_programs(0)
    cols = tl.arange(0, BLOCK_D)
    cmask = cols < D
    w = tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK_D], dtype=tl.float32)
    for blk in range(pid, n_blocks, nprog):
        rows, rmask, mask = _tile(blk, ROWS, M, cmask)
        x = _load_f32(x_ptr, rows, sx, cols, mask)
        dy = _load_f32(dy_ptr, rows, sdy, cols, mask)
        rstd = tl.load(rstd_ptr + rows, mask=rmask, other=0.0)
        n = x * rstd[:, None]
        if HAS_GATE:
            g = _load_f32(g_ptr, rows, sg, cols, mask)
            s = tl.sigmoid(g)
            dg = dy * n * w[None, :] * (s * (1 + g * (1 - s)))
            _store_tile(dg_ptr, rows, D, cols, dg, mask)
            dy = dy * (g * s)
        dw += tl.sum(dy * n, axis=0)
        dn = dy * w[None, :]
        dx = rstd[:, None] * (dn - n * (tl.sum(dn * n, axis=1) / D)[:, None])
        _store_tile(dx_ptr, rows, D, cols, dx, mask)
    tl.store(dw_ptr + pid * D + cols, dw, mask=cmask)


@triton.jit
def _l2_fwd_kernel(x_ptr, y_ptr, norm_ptr, M, D, n_blocks, sx, eps, BLOCK_D: tl.constexpr, ROWS: tl.constexpr):
    pid, nprog = tl.program_id(0), tl.num_programs(0)
    cols = tl.arange(0, BLOCK_D)
    cmask = cols < D
    for blk in range(pid, n_blocks, nprog):
        rows, rmask, mask = _tile(blk, ROWS, M, cmask)
        x = _load_f32(x_ptr, rows, sx, cols, mask)
        norm = tl.sqrt(tl.sum(x * x, axis=1))
        y = x / tl.maximum(norm, eps)[:, None]
        _store_tile(y_ptr, rows, D, cols, y, mask)
        tl.store(norm_ptr + rows, norm, mask=rmask)


@triton.jit
def _l2_bwd_kernel(x_ptr, dy_ptr, norm_ptr, dx_ptr, M, D, n_blocks, sx, sdy, eps,
                   BLOCK_D: tl.constexpr, ROWS: tl.constexpr):
    pid, nprog = tl.program_id(0), tl.num_programs(0)
    cols = tl.arange(0, BLOCK_D)
    cmask = cols < D
    for blk in range(pid, n_blocks, nprog):
        rows, rmask, mask = _tile(blk, ROWS, M, cmask)
        x = _load_f32(x_ptr, rows, sx, cols, mask)
        dy = _load_f32(dy_ptr, rows, sdy, cols, mask)
        norm = tl.load(norm_ptr + rows, mask=rmask, other=0.0)
        r = 1.0 / tl.maximum(norm, eps)
        y = x * r[:, None]
        proj = dy - y * tl.sum(dy * y, axis=1)[:, None]
        dx = tl.where((norm > eps)[:, None], r[:, None] * proj, dy * r[:, None])
        _store_tile(dx_ptr, rows, D, cols, dx, mask)


@triton.jit
def _silu_mul_fwd_kernel(g_ptr, u_ptr, h_ptr, N, n_blocks, BLOCK: tl.constexpr):
    pid, nprog = tl.program_id(0), tl.num_programs(0)
    for blk in range(pid, n_blocks, nprog):
        offs = tl.cast(blk, tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        u = tl.load(u_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        tl.store(h_ptr + offs, (g * tl.sigmoid(g) * u).to(h_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _silu_mul_bwd_kernel(g_ptr, u_ptr, dh_ptr, dg_ptr, du_ptr, N, n_blocks, BLOCK: tl.constexpr):
    pid, nprog = tl.program_id(0), tl.num_programs(0)
    for blk in range(pid, n_blocks, nprog):
        offs = tl.cast(blk, tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < N
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        u = tl.load(u_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        dh = tl.load(dh_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        s = tl.sigmoid(g)
        tl.store(dg_ptr + offs, (dh * u * (s * (1 + g * (1 - s)))).to(dg_ptr.dtype.element_ty), mask=mask)
        tl.store(du_ptr + offs, (dh * (g * s)).to(du_ptr.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------------------
# Launch helpers
# ---------------------------------------------------------------------------------------------


def _empty(*shape, **kwargs) -> torch.Tensor:
    """Every buffer a kernel must fill comes from here (tests swap in a NaN-filled allocator)."""
    return torch.empty(*shape, **kwargs)


@functools.lru_cache(maxsize=None)
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _programs(n_blocks: int, device: torch.device, per_sm: int) -> int:
    """Grid size: every block once, capped at per_sm programs per SM (3 under the interpreter, so
    the tests walk the grid-stride loops); at least 1, so empty inputs still launch cleanly."""
    if _INTERPRET:
        return max(1, min(n_blocks, 3))
    index = device.index if device.index is not None else torch.cuda.current_device()
    return max(1, min(n_blocks, _sm_count(index) * per_sm))


def _row_launch(M: int, D: int, device: torch.device, per_sm: int) -> Tuple[tuple, int, dict]:
    """(grid, n_blocks, meta) of a row kernel over M rows of D: [ROWS, BLOCK_D] tiles of
    ~TUNING['tile'] elements (one row when D is larger), 1..8 warps at ~256 elements per warp."""
    block_d = triton.next_power_of_2(D)
    rows = max(1, TUNING["tile"] // block_d)
    n_blocks = triton.cdiv(M, rows)
    meta = dict(BLOCK_D=block_d, ROWS=rows, num_warps=min(8, max(1, rows * block_d // 256)))
    return (_programs(n_blocks, device, per_sm),), n_blocks, meta


def _check(op: str, **tensors) -> None:
    for name, t in tensors.items():
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in KERNEL_DTYPES:
            raise ValueError(f"{op}: {name} must be fp16, bf16 or fp32, got {t.dtype} "
                             f"(the PyTorch reference torch_{op} takes any float dtype)")
        if t.device.type != "cuda" and not _INTERPRET:
            raise ValueError(f"{op} runs a Triton kernel on CUDA tensors; {name} is on {t.device}. "
                             f"On CPU use torch_{op} (or set TRITON_INTERPRET=1 before importing zoo.kernels).")
    devices = {t.device for t in tensors.values() if t is not None}
    if len(devices) > 1:
        raise ValueError(f"{op}: {', '.join(tensors)} must be on one device, got {devices}")


def _rows(t: torch.Tensor, D: int) -> torch.Tensor:
    """t as [M, D] rows with unit column stride (a copy only if the view cannot have it)."""
    t2 = t.reshape(-1, D)
    return t2 if t2.stride(1) == 1 or D == 1 else t2.contiguous()


def _rms_fwd(x, weight, gate, eps: float, out_dtype: torch.dtype):
    """(x2, g2, y [M, D], rstd [M] fp32): the Triton forward on x, gate as rows."""
    D = x.shape[-1]
    x2 = _rows(x, D)
    g2 = _rows(gate, D) if gate is not None else None
    M = x2.shape[0]
    y = _empty(M, D, device=x.device, dtype=out_dtype)
    rstd = _empty(M, device=x.device, dtype=torch.float32)
    grid, n_blocks, meta = _row_launch(M, D, x.device, TUNING["per_sm"])
    g_arg, sg = (g2, g2.stride(0)) if g2 is not None else (x2, 0)
    _rms_fwd_kernel[grid](x2, weight.contiguous(), g_arg, y, rstd, M, D, n_blocks, x2.stride(0), sg, eps,
                          HAS_GATE=g2 is not None, **meta)
    return x2, g2, y, rstd


class _RMSNormTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, gate, eps: float, out_dtype: torch.dtype):
        x2, g2, y, rstd = _rms_fwd(x, weight, gate, eps, out_dtype)
        ctx.save_for_backward(x2, weight, g2, rstd)
        ctx.x_shape = x.shape
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, dy):
        x2, weight, g2, rstd = ctx.saved_tensors
        M, D = x2.shape
        dy2 = _rows(dy, D)
        dx = _empty(M, D, device=x2.device, dtype=x2.dtype)
        dg = _empty(M, D, device=x2.device, dtype=g2.dtype) if g2 is not None else None
        grid, n_blocks, meta = _row_launch(M, D, x2.device, TUNING["rms_bwd_per_sm"])
        dw_part = _empty(grid[0], D, device=x2.device, dtype=torch.float32)
        g_arg, dg_arg, sg = (g2, dg, g2.stride(0)) if g2 is not None else (x2, dx, 0)
        _rms_bwd_kernel[grid](x2, weight.contiguous(), g_arg, dy2, rstd, dx, dg_arg, dw_part, M, D, n_blocks,
                              x2.stride(0), sg, dy2.stride(0), HAS_GATE=g2 is not None, **meta)
        dgate = dg.view(ctx.x_shape) if dg is not None else None
        return dx.view(ctx.x_shape), dw_part.sum(0).to(weight.dtype), dgate, None, None


def rms_norm(x: torch.Tensor, weight: torch.Tensor, gate: Optional[torch.Tensor] = None,
             eps: float = 1e-6, out_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """x * rsqrt(mean(x², -1) + eps) * weight [* silu(gate)], in fp32, returned in out_dtype.

    Args:
        x: [..., D] fp16 / bf16 / fp32, any leading shape (copied only if D is not unit-stride).
        weight: [D]; its gradient comes back in weight's dtype (summed in fp32).
        gate: None or x's shape (any of the three dtypes); output-gated norm rmsnorm(x) * silu(gate).
        eps: added to the mean square.
        out_dtype: dtype of the output (None: x's); the layers pass the autocast dtype.
    Returns: [..., D] in out_dtype. Saves x, weight, gate and rstd [M] (fp32) for the backward.
    """
    _check("rms_norm", x=x, weight=weight, gate=gate)
    D = x.shape[-1]
    if weight.shape != (D,):
        raise ValueError(f"rms_norm: weight must be [D] = [{D}], got {tuple(weight.shape)}")
    if gate is not None and gate.shape != x.shape:
        raise ValueError(f"rms_norm: gate must have x's shape {tuple(x.shape)}, got {tuple(gate.shape)}")
    out_dtype = out_dtype or x.dtype
    if torch.is_grad_enabled():
        return _RMSNormTriton.apply(x, weight, gate, eps, out_dtype)
    return _rms_fwd(x, weight, gate, eps, out_dtype)[2].view(x.shape)


def _l2_fwd(x, eps: float):
    """(x2, y [M, D], norm [M] fp32): the Triton forward on x as rows."""
    D = x.shape[-1]
    x2 = _rows(x, D)
    M = x2.shape[0]
    y = _empty(M, D, device=x.device, dtype=x.dtype)
    norm = _empty(M, device=x.device, dtype=torch.float32)
    grid, n_blocks, meta = _row_launch(M, D, x.device, TUNING["per_sm"])
    _l2_fwd_kernel[grid](x2, y, norm, M, D, n_blocks, x2.stride(0), eps, **meta)
    return x2, y, norm


class _L2NormTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, eps: float):
        x2, y, norm = _l2_fwd(x, eps)
        ctx.save_for_backward(x2, norm)
        ctx.eps, ctx.x_shape = eps, x.shape
        return y.view(x.shape)

    @staticmethod
    def backward(ctx, dy):
        x2, norm = ctx.saved_tensors
        M, D = x2.shape
        dy2 = _rows(dy, D)
        dx = _empty(M, D, device=x2.device, dtype=x2.dtype)
        grid, n_blocks, meta = _row_launch(M, D, x2.device, TUNING["per_sm"])
        _l2_bwd_kernel[grid](x2, dy2, norm, dx, M, D, n_blocks, x2.stride(0), dy2.stride(0), ctx.eps, **meta)
        return dx.view(ctx.x_shape), None


def l2_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x / max(‖x‖, eps) over the last dim, in fp32, returned in x's dtype.

    Args: x [..., D] fp16 / bf16 / fp32 (DeltaNet's q, k: [B, T, H, K]). Saves x and ‖x‖ [M] fp32.
    The backward is r (dy - y <dy, y>) with r = 1 / ‖x‖, or dy / eps on rows with ‖x‖ <= eps.
    """
    _check("l2_normalize", x=x)
    if torch.is_grad_enabled():
        return _L2NormTriton.apply(x, eps)
    return _l2_fwd(x, eps)[1].view(x.shape)


def _flat_launch(kernel, *args) -> None:
    """kernel(*args, N, n_blocks) over the N elements of args[0] in blocks of TUNING['elem_block']."""
    n, block = args[0].numel(), TUNING["elem_block"]
    n_blocks = triton.cdiv(n, block)
    grid = (_programs(n_blocks, args[0].device, TUNING["per_sm"]),)
    kernel[grid](*args, n, n_blocks, BLOCK=block, num_warps=min(8, max(1, block // 512)))


def _silu_mul_fwd(g, u):
    h = _empty(g.shape, device=g.device, dtype=torch.promote_types(g.dtype, u.dtype))
    _flat_launch(_silu_mul_fwd_kernel, g, u, h)
    return h


class _SiluMulTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, g, u):
        g, u = g.contiguous(), u.contiguous()
        ctx.save_for_backward(g, u)
        return _silu_mul_fwd(g, u)

    @staticmethod
    def backward(ctx, dh):
        g, u = ctx.saved_tensors
        dh = dh.contiguous()
        dg = _empty(g.shape, device=g.device, dtype=g.dtype)
        du = _empty(u.shape, device=u.device, dtype=u.dtype)
        _flat_launch(_silu_mul_bwd_kernel, g, u, dh, dg, du)
        return dg, du


def silu_mul(g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """silu(g) * u elementwise, in fp32, returned in the promoted dtype of g and u.

    Args: g, u of one shape (SwiGLU's gate and up projections, [B, T, hidden]), fp16 / bf16 / fp32.
    Saves g and u (contiguous); the backward gives dg = dh u σ(g)(1 + g(1 - σ(g))), du = dh silu(g).
    """
    _check("silu_mul", g=g, u=u)
    if g.shape != u.shape:
        raise ValueError(f"silu_mul: g and u must have one shape, got {tuple(g.shape)} and {tuple(u.shape)}")
    if torch.is_grad_enabled():
        return _SiluMulTriton.apply(g, u)
    return _silu_mul_fwd(g.contiguous(), u.contiguous())
