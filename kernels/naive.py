"""PyTorch references for the (gated) delta rule, in the kernels' layout.

Two families, same signature and layout as the Triton ops (fla layout):
q, k [B, T, H, K]; v [B, T, H, V]; beta [B, T, H]; g [B, T, H] (log decay, <= 0);
initial_state / final_state [N, H, K, V]. The state is stored K x V, i.e. the transpose
of DESIGN.md's d_v x d_k S, so o_t = q_t . S_t (a row vector times the state).

* `naive_recurrent_*`: one Python step per token, the definition itself. Tests only.
* `torch_chunk_*`: the chunkwise WY/UT form, vectorised over all chunks (Python loops
  only over chunks for the K x V state recurrence). Differentiable by autograd; the CPU
  training path of the layers.

Math runs in float32 (float64 when the inputs are float64); o comes back in the input
dtype, final_state in the math dtype. With cu_seqlens (B must be 1) every document starts
from its own initial_state[n] (or zeros) and final_state has one row per document.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .utils import check_delta_inputs, compute_dtype, seq_bounds

__all__ = [
    "naive_recurrent_delta_rule",
    "naive_recurrent_gated_delta_rule",
    "torch_chunk_delta_rule",
    "torch_chunk_gated_delta_rule",
]


# --------------------------------------------------------------------------------------
# per-token recurrence
# --------------------------------------------------------------------------------------
def _recurrent(q, k, v, beta, g, scale, h0):
    """One sequence batch without offsets: q,k [B,T,H,K] etc. in the math dtype; h0 [B,H,K,V] or None."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    S = q.new_zeros(B, H, K, V) if h0 is None else h0
    outs = []
    for t in range(T):
        if g is not None:
            S = S * g[:, t].exp()[..., None, None]
        kt = k[:, t]  # [B, H, K]
        u = beta[:, t, :, None] * (v[:, t] - torch.einsum("bhk,bhkv->bhv", kt, S))
        S = S + kt[..., :, None] * u[..., None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, S))
    o = torch.stack(outs, dim=1) if outs else v.new_zeros(B, 0, H, V)
    return o, S


def _naive_entry(q, k, v, beta, g, scale, initial_state, output_final_state, cu_seqlens):
    B, T, H, K, V, N = check_delta_inputs(q, k, v, beta, g, initial_state, cu_seqlens)
    scale = K ** -0.5 if scale is None else scale
    dt = compute_dtype(q.dtype)
    qf, kf, vf, bf = q.to(dt), k.to(dt), v.to(dt), beta.to(dt)
    gf = g.to(dt) if g is not None else None
    h0 = initial_state.to(dt) if initial_state is not None else None
    if cu_seqlens is None:
        o, S = _recurrent(qf, kf, vf, bf, gf, scale, h0)
        return o.to(q.dtype), (S if output_final_state else None)
    outs, finals = [], []
    for n, (s, e) in enumerate(seq_bounds(cu_seqlens, B, T)):
        o_n, S_n = _recurrent(
            qf[:, s:e], kf[:, s:e], vf[:, s:e], bf[:, s:e],
            gf[:, s:e] if gf is not None else None, scale,
            h0[n : n + 1] if h0 is not None else None,
        )
        outs.append(o_n)
        finals.append(S_n)
    o = torch.cat(outs, dim=1)
    return o.to(q.dtype), (torch.cat(finals, dim=0) if output_final_state else None)


def naive_recurrent_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    scale: Optional[float] = None,
    initial_state: Optional[torch.Tensor] = None,
    output_final_state: bool = False,
    cu_seqlens: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Delta rule, one token at a time (the definition; tests only).

    S_t = S_{t-1} + k_t u_t^T,  u_t = beta_t (v_t - S_{t-1}^T k_t),  o_t = (scale q_t)^T S_t.

    Args:
        q, k: [B, T, H, K] (k should be L2-normalised; the op does not normalise).
        v: [B, T, H, V].  beta: [B, T, H] in (0, 1).
        scale: multiplies q; default K ** -0.5.
        initial_state: [N, H, K, V] or None (zeros).
        output_final_state: return the last state.
        cu_seqlens: int [N + 1] document offsets over T (B must be 1).
    Returns:
        o [B, T, H, V] in q's dtype; final_state [N, H, K, V] (math dtype) or None.
    """
    return _naive_entry(q, k, v, beta, None, scale, initial_state, output_final_state, cu_seqlens)


def naive_recurrent_gated_delta_rule(
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
    """Gated delta rule, one token at a time (tests only): the delta rule with S_{t-1}
    multiplied by exp(g_t) first. g: [B, T, H] log decay (<= 0). Other args and returns as
    `naive_recurrent_delta_rule`."""
    return _naive_entry(q, k, v, beta, g, scale, initial_state, output_final_state, cu_seqlens)


# --------------------------------------------------------------------------------------
# chunkwise WY / UT form
# --------------------------------------------------------------------------------------
class _UnitLowerInverse(torch.autograd.Function):
    """(I + A)^-1 for strictly lower-triangular A [..., C, C], with an analytic backward.

    torch.linalg.solve_triangular against the identity is much faster on CPU than solving
    against a wide right-hand side or its autograd; the backward is
    dA = -tril(X^T dX X^T, -1) with X = (I + A)^-1."""

    @staticmethod
    def forward(ctx, A):
        C = A.shape[-1]
        eye = torch.eye(C, dtype=A.dtype, device=A.device).expand(A.shape).contiguous()
        X = torch.linalg.solve_triangular(A + eye, eye, upper=False, unitriangular=True)
        ctx.save_for_backward(X)
        return X

    @staticmethod
    def backward(ctx, dX):
        (X,) = ctx.saved_tensors
        Xt = X.transpose(-1, -2)
        return -(Xt @ dX @ Xt).tril(-1)


def _chunk_layout(x, C, NC):
    """[B, T, H, *D] -> [B, H, NC, C, *D], zero-padding T up to NC * C."""
    B, T, H = x.shape[:3]
    pad = NC * C - T
    if pad:
        x = torch.cat([x, x.new_zeros(B, pad, *x.shape[2:])], dim=1)
    x = x.reshape(B, NC, C, H, *x.shape[3:])
    return x.movedim(3, 1).contiguous()


def _varlen_pack(x, bounds, C):
    """Flat [1, T, H, *D] -> [1, P, H, *D] with every document zero-padded to a multiple of C.

    Returns the packed tensor, the padded position of every original token (LongTensor [T])
    and per-document (first_chunk, n_chunks)."""
    device = x.device
    src, dst, spans = [], [], []
    pos = 0
    T = x.shape[1]
    for s, e in bounds:
        L = e - s
        nc = -(-L // C)
        spans.append((pos // C, nc))
        idx = torch.arange(s, e, device=device)
        src.append(torch.cat([idx, torch.full((nc * C - L,), T, device=device, dtype=torch.long)]))
        dst.append(torch.arange(pos, pos + L, device=device))
        pos += nc * C
    src = torch.cat(src) if src else torch.zeros(0, dtype=torch.long, device=device)
    dst = torch.cat(dst) if dst else torch.zeros(0, dtype=torch.long, device=device)
    return src, dst, spans


def _torch_chunk(q, k, v, beta, g, scale, h0, output_final_state, C, spans):
    """Chunkwise core on chunk-aligned inputs [B, T, H, *] (T multiple of C, math dtype).

    spans: None (each row one sequence, initial state h0[b]) or, for B == 1, a list of
    (first_chunk, n_chunks) per document; the state is reset to h0[n] (or zero) at each
    document's first chunk and read out after its last."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    NC = T // C
    qc = _chunk_layout(q * scale, C, NC)  # [B, H, NC, C, K]
    kc = _chunk_layout(k, C, NC)
    vc = _chunk_layout(v, C, NC)
    bc = _chunk_layout(beta, C, NC)  # [B, H, NC, C]
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    strict = causal.clone().fill_diagonal_(False)
    kkT = kc @ kc.transpose(-1, -2)
    qkT = qc @ kc.transpose(-1, -2)
    if g is not None:
        gc = _chunk_layout(g, C, NC).cumsum(-1)  # [B, H, NC, C] within-chunk cumulative log decay
        diff = gc[..., :, None] - gc[..., None, :]
        Gam = torch.where(causal, diff, diff.new_tensor(float("-inf"))).exp()  # exp(g_i - g_j), j <= i
        A = torch.where(strict, kkT * Gam, kkT.new_zeros(()))
        P = qkT * Gam
        eg = gc.exp()
        rhs_k = (bc * eg)[..., None] * kc
        qg = qc * eg[..., None]
        kd = kc * (gc[..., -1:] - gc).exp()[..., None]  # decay of each key to the chunk end
        dec = gc[..., -1].exp()  # [B, H, NC]
    else:
        A = torch.where(strict, kkT, kkT.new_zeros(()))
        P = torch.where(causal, qkT, qkT.new_zeros(()))
        rhs_k, qg, kd, dec = bc[..., None] * kc, qc, kc, None
    A = A * bc[..., :, None]
    Tinv = _UnitLowerInverse.apply(A)  # (I + A)^-1 of every chunk at once
    W = Tinv @ rhs_k
    U = Tinv @ (bc[..., None] * vc)

    starts, ends = {}, {}
    if spans is not None:
        for n, (c0, nc) in enumerate(spans):
            if nc:
                starts[c0] = n
                ends[c0 + nc - 1] = n
    S = h0 if (h0 is not None and spans is None) else q.new_zeros(B, H, K, V)
    # unbind once: per-chunk slicing inside the loop would make autograd build a full-size
    # zero gradient for every slice (quadratic in the number of chunks).
    Ws, Us, kds = W.unbind(2), U.unbind(2), kd.transpose(-1, -2).unbind(2)
    decs = dec.unbind(2) if dec is not None else None
    states, news = [], []
    finals = [None] * (len(spans) if spans is not None else 0)
    for c in range(NC):
        if c in starts:
            n = starts[c]
            S = h0[n : n + 1] if h0 is not None else q.new_zeros(1, H, K, V)
        states.append(S)
        Un = Us[c] - Ws[c] @ S  # [B, H, C, V] the chunk's effective values
        news.append(Un)
        if decs is not None:
            S = S * decs[c][..., None, None]
        S = S + kds[c] @ Un
        if c in ends:
            finals[ends[c]] = S
    St = torch.stack(states, dim=2)  # [B, H, NC, K, V] state entering each chunk
    Un = torch.stack(news, dim=2)
    o = qg @ St + P @ Un  # [B, H, NC, C, V]
    o = o.movedim(1, 3).reshape(B, T, H, V)
    final = None
    if output_final_state:
        if spans is None:
            final = S
        else:
            rows = []
            for n, f in enumerate(finals):
                if f is None:  # empty document: the state passes through
                    f = h0[n : n + 1] if h0 is not None else q.new_zeros(1, H, K, V)
                rows.append(f)
            final = torch.cat(rows, dim=0)
    return o, final


def _torch_chunk_entry(q, k, v, beta, g, scale, initial_state, output_final_state, cu_seqlens, chunk_size):
    B, T, H, K, V, N = check_delta_inputs(q, k, v, beta, g, initial_state, cu_seqlens)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    scale = K ** -0.5 if scale is None else scale
    dt = compute_dtype(q.dtype)
    xs = [q.to(dt), k.to(dt), v.to(dt), beta.to(dt)] + ([g.to(dt)] if g is not None else [])
    h0 = initial_state.to(dt) if initial_state is not None else None
    C = chunk_size
    if cu_seqlens is None:
        Tp = -(-T // C) * C
        if Tp != T:
            xs = [torch.cat([x, x.new_zeros(B, Tp - T, *x.shape[2:])], dim=1) for x in xs]
        if Tp == 0:
            o = v.new_zeros(B, 0, H, V)
            S = h0 if h0 is not None else q.new_zeros(B, H, K, V, dtype=dt)
            return o, (S if output_final_state else None)
        gx = xs[4] if g is not None else None
        o, S = _torch_chunk(xs[0], xs[1], xs[2], xs[3], gx, scale, h0, output_final_state, C, None)
        return o[:, :T].to(q.dtype), S
    src, dst, spans = _varlen_pack(q, seq_bounds(cu_seqlens, B, T), C)
    if src.numel() == 0:  # every document empty
        final = h0 if h0 is not None else q.new_zeros(N, H, K, V, dtype=dt)
        return v.new_zeros(1, 0, H, V), (final if output_final_state else None)
    xs = [torch.cat([x, x.new_zeros(1, 1, *x.shape[2:])], dim=1)[:, src] for x in xs]
    gx = xs[4] if g is not None else None
    o, S = _torch_chunk(xs[0], xs[1], xs[2], xs[3], gx, scale, h0, output_final_state, C, spans)
    return o[:, dst].to(q.dtype), S


def torch_chunk_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    scale: Optional[float] = None,
    initial_state: Optional[torch.Tensor] = None,
    output_final_state: bool = False,
    cu_seqlens: Optional[torch.Tensor] = None,
    *,
    chunk_size: int = 64,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Delta rule in the chunkwise WY/UT form, in PyTorch (autograd-differentiable; CPU path).

    Per chunk of `chunk_size` tokens: W = T (beta K), U = T (beta V) with
    T = (I + tril(diag(beta) K K^T, -1))^-1 (one triangular solve for all chunks), then the
    state recurrence over chunks and O = Q S + (Q K^T * causal)(U - W S). Any T (the last
    chunk is zero-padded internally; with cu_seqlens every document is padded to whole
    chunks so no chunk spans two documents).

    Args:
        q, k: [B, T, H, K] (k L2-normalised by the caller).  v: [B, T, H, V].
        beta: [B, T, H].  scale: multiplies q, default K ** -0.5.
        initial_state: [N, H, K, V] or None.  output_final_state: return the last state.
        cu_seqlens: int [N + 1] document offsets (B must be 1).
        chunk_size: tokens per chunk (keyword only).
    Returns:
        o [B, T, H, V] in q's dtype; final_state [N, H, K, V] (float32, float64 for
        float64 inputs) or None.
    """
    return _torch_chunk_entry(q, k, v, beta, None, scale, initial_state, output_final_state, cu_seqlens, chunk_size)


def torch_chunk_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: Optional[float] = None,
    initial_state: Optional[torch.Tensor] = None,
    output_final_state: bool = False,
    cu_seqlens: Optional[torch.Tensor] = None,
    *,
    chunk_size: int = 64,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Gated delta rule in the chunkwise form (autograd-differentiable; CPU path).

    As `torch_chunk_delta_rule` with the decay folded in through the within-chunk
    cumulative log decay G: A_ij = beta_i exp(G_i - G_j) k_i.k_j (j < i),
    W = T (beta e^G K), O = (e^G Q) S + (Q K^T * exp(G_i - G_j) causal)(U - W S),
    S' = e^{G_C} S + (K * e^{G_C - G})^T (U - W S).
    g: [B, T, H] log decay (<= 0). Other args and returns as `torch_chunk_delta_rule`.
    """
    return _torch_chunk_entry(q, k, v, beta, g, scale, initial_state, output_final_state, cu_seqlens, chunk_size)
