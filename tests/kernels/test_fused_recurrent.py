"""Fused recurrent (gated) delta rule and the decode step against the per-token PyTorch references.

Runs the Triton kernels under TRITON_INTERPRET=1 (tests/kernels/conftest.py sets it before any
kernel import). Every kernel-filled buffer is poisoned with NaN, so an unwritten element fails.
"""
import pytest
import torch
import torch.nn.functional as F

from zoo.kernels import fused_recurrent as fr
from zoo.kernels.fused_recurrent import (
    delta_rule_step,
    fused_recurrent_delta_rule,
    fused_recurrent_gated_delta_rule,
)
from zoo.kernels.naive import naive_recurrent_delta_rule, naive_recurrent_gated_delta_rule

TOL = {torch.float32: 1e-4, torch.bfloat16: 1e-2, torch.float16: 1e-2}


@pytest.fixture(autouse=True)
def poison(monkeypatch):
    """Kernel outputs and scratch start as NaN: any element a kernel fails to write shows up."""

    def nan_empty(*shape, **kwargs):
        return torch.empty(*shape, **kwargs).fill_(float("nan"))

    monkeypatch.setattr(fr, "_empty", nan_empty)


def rel_rms(x, ref):
    x, ref = x.double(), ref.double()
    assert torch.isfinite(x).all(), "non-finite values (unwritten output?)"
    return ((x - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def make_inputs(B, T, H, K, V, N, gated, dtype, h0=True):
    q = torch.randn(B, T, H, K)
    k = F.normalize(torch.randn(B, T, H, K), dim=-1)
    v = torch.randn(B, T, H, V)
    beta = torch.rand(B, T, H) * 0.9 + 0.05
    g = F.logsigmoid(torch.randn(B, T, H) + 2.0) if gated else None
    init = torch.randn(N, H, K, V) * 0.5 if h0 else None
    cast = [t.to(dtype) for t in (q, k, v)] + [beta.to(dtype)] + ([g.to(dtype)] if gated else [])
    return cast, init


def run_both(gated, inputs, init, cu_seqlens, scale=None):
    """(kernel outputs and grads, fp32 reference outputs and grads) for the same inputs."""
    fn = fused_recurrent_gated_delta_rule if gated else fused_recurrent_delta_rule
    ref_fn = naive_recurrent_gated_delta_rule if gated else naive_recurrent_delta_rule
    q, k, v, beta = inputs[:4]
    g = inputs[4] if gated else None
    args_of = (lambda t: (t[0], t[1], t[2], t[4], t[3])) if gated else (lambda t: tuple(t[:4]))

    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    h0 = init.clone().requires_grad_() if init is not None else None
    o, ht = fn(*args_of(leaves), scale=scale, initial_state=h0, output_final_state=True, cu_seqlens=cu_seqlens)
    do = torch.randn(o.shape)
    dht = torch.randn(ht.shape)
    ((o.float() * do).sum() + (ht * dht).sum()).backward()
    got = [o, ht] + [t.grad for t in leaves] + ([h0.grad] if h0 is not None else [])

    rleaves = [t.detach().float().requires_grad_() for t in inputs]
    rh0 = init.clone().requires_grad_() if init is not None else None
    ro, rht = ref_fn(*args_of(rleaves), scale=scale, initial_state=rh0, output_final_state=True,
                     cu_seqlens=cu_seqlens)
    ((ro * do).sum() + (rht * dht).sum()).backward()
    want = [ro, rht] + [t.grad for t in rleaves] + ([rh0.grad] if rh0 is not None else [])
    names = ["o", "ht", "dq", "dk", "dv", "dbeta"] + (["dg"] if gated else []) + (["dh0"] if h0 is not None else [])
    return names, got, want, g


def assert_close(names, got, want, tol):
    errs = {n: rel_rms(a, b) for n, a, b in zip(names, got, want)}
    bad = {n: e for n, e in errs.items() if not e <= tol}
    assert not bad, f"relative RMS over {tol}: {bad} (all: {errs})"


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("T", [1, 63, 100, 130])
def test_fp32_matches_reference(gated, T):
    B, H, K, V = (2 if T == 1 else 1), 2, 32, 16
    inputs, init = make_inputs(B, T, H, K, V, B, gated, torch.float32)
    names, got, want, _ = run_both(gated, inputs, init, None)
    assert got[0].dtype == torch.float32 and got[1].dtype == torch.float32
    assert_close(names, got, want, TOL[torch.float32])


@pytest.mark.parametrize("gated", [False, True])
def test_varlen_wide_v_blocks(gated):
    """Packed documents (one of length 1, one empty) and V = 64, which splits the value dim
    into two blocks, so the cross-block partial sums of dq, dk, dbeta, dg are exercised."""
    cu = torch.tensor([0, 1, 30, 30, 57], dtype=torch.int32)
    inputs, init = make_inputs(1, 57, 2, 32, 64, 4, gated, torch.float32)
    names, got, want, _ = run_both(gated, inputs, init, cu, scale=0.3)
    assert got[1].shape == (4, 2, 32, 64)
    assert_close(names, got, want, TOL[torch.float32])


@pytest.mark.parametrize("K,V", [(256, 32), (32, 256), (48, 80)])
def test_head_dim_extremes_and_non_powers_of_two(K, V):
    """K, V from 32 to 256 (K != V), and dims that are not powers of two (masked lanes)."""
    inputs, init = make_inputs(1, 9, 2, K, V, 1, True, torch.float32)
    names, got, want, _ = run_both(True, inputs, init, None)
    assert_close(names, got, want, TOL[torch.float32])


@pytest.mark.parametrize("gated,dtype", [(False, torch.bfloat16), (True, torch.bfloat16), (True, torch.float16)])
def test_half_precision_against_fp32_reference(gated, dtype):
    inputs, init = make_inputs(1, 40, 2, 64, 32, 1, gated, dtype)
    names, got, want, _ = run_both(gated, inputs, init, None)
    assert got[0].dtype == dtype and got[2].dtype == dtype
    assert_close(names, got, want, TOL[dtype])


def test_no_initial_state_and_no_final_state():
    inputs, _ = make_inputs(2, 20, 3, 32, 48, 2, False, torch.float32, h0=False)
    q, k, v, beta = (t.requires_grad_() for t in inputs)
    o, ht = fused_recurrent_delta_rule(q, k, v, beta)
    assert ht is None
    ro, _ = naive_recurrent_delta_rule(q, k, v, beta)
    assert rel_rms(o, ro) <= 1e-4
    do = torch.randn(o.shape)
    got = torch.autograd.grad((o * do).sum(), (q, k, v, beta))
    want = torch.autograd.grad((ro * do).sum(), (q, k, v, beta))
    assert_close(["dq", "dk", "dv", "dbeta"], got, want, 1e-4)


@pytest.mark.parametrize("gated", [False, True])
def test_step_equals_recurrence_token_by_token(gated):
    B, T, H, K, V = 3, 6, 2, 32, 64
    inputs, init = make_inputs(B, T, H, K, V, B, gated, torch.float32)
    q, k, v, beta = inputs[:4]
    g = inputs[4] if gated else None
    ref_fn = naive_recurrent_gated_delta_rule if gated else naive_recurrent_delta_rule
    ref_args = (q, k, v, g, beta) if gated else (q, k, v, beta)
    ro, rht = ref_fn(*ref_args, initial_state=init, output_final_state=True)
    for step in (delta_rule_step, fr.delta_rule_step_torch):
        state = init.clone()
        for t in range(T):
            o = step(q[:, t], k[:, t], v[:, t], beta[:, t], state, g=g[:, t] if gated else None)
            assert rel_rms(o, ro[:, t]) <= 1e-5, (step.__name__, t)
        assert rel_rms(state, rht) <= 1e-5


def test_step_bf16_inputs():
    B, H, K, V = 2, 2, 64, 32
    q, k, v = torch.randn(B, H, K), F.normalize(torch.randn(B, H, K), dim=-1), torch.randn(B, H, V)
    beta, g = torch.rand(B, H), -torch.rand(B, H)
    state = torch.randn(B, H, K, V)
    ref_state = state.clone()
    o = delta_rule_step(q.bfloat16(), k.bfloat16(), v.bfloat16(), beta.bfloat16(), state, g=g.bfloat16())
    ro = fr.delta_rule_step_torch(q.bfloat16().float(), k.bfloat16().float(), v.bfloat16().float(),
                              beta.bfloat16().float(), ref_state, g=g.bfloat16().float())
    assert o.dtype == torch.bfloat16
    assert rel_rms(o, ro) <= 1e-2 and rel_rms(state, ref_state) <= 1e-5


def test_step_rejects_bad_state():
    q = torch.randn(1, 2, 32)
    with pytest.raises(ValueError, match="state must be a contiguous float32"):
        delta_rule_step(q, q, torch.randn(1, 2, 16), torch.rand(1, 2), torch.zeros(1, 2, 32, 16, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match=r"beta must be \[B, H\]"):
        delta_rule_step(q, q, torch.randn(1, 2, 16), torch.rand(1, 2, 1), torch.zeros(1, 2, 32, 16))


def test_bad_inputs_name_the_argument():
    q = torch.randn(1, 4, 2, 32)
    with pytest.raises(ValueError, match="beta"):
        fused_recurrent_delta_rule(q, q, torch.randn(1, 4, 2, 16), torch.rand(1, 4))
    with pytest.raises(ValueError, match="initial_state"):
        fused_recurrent_delta_rule(q, q, torch.randn(1, 4, 2, 16), torch.rand(1, 4, 2),
                                   initial_state=torch.zeros(1, 2, 16, 32))


def test_cpu_without_interpreter(monkeypatch):
    """Outside the interpreter, CPU tensors get a clear error from the Triton ops, while the
    decode step takes its PyTorch path (the layer calls it on CPU too)."""
    monkeypatch.setattr(fr, "_INTERPRET", False)
    inputs, _ = make_inputs(1, 3, 2, 32, 16, 1, False, torch.float32, h0=False)
    with pytest.raises(ValueError, match="CUDA tensors"):
        fused_recurrent_delta_rule(*inputs)
    q, k, v, beta = (t[:, 0] for t in inputs)
    state = torch.randn(1, 2, 32, 16)
    ref_state = state.clone()
    o = delta_rule_step(q, k, v, beta, state)
    ro = fr.delta_rule_step_torch(q, k, v, beta, ref_state)
    assert torch.equal(o, ro) and torch.equal(state, ref_state)
