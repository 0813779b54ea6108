"""Triton RMSNorm, L2 norm and silu * mul (zoo.kernels.norm) against their PyTorch references.

Runs the kernels under TRITON_INTERPRET=1 on CPU tensors (3 programs at most there, so the
grid-stride loops run several blocks per program). Every kernel-filled buffer is poisoned with
NaN first, so an unwritten element fails. Inputs are fresh random each run; the seed is in every
failure message. fp32 inputs are held to 1e-5 relative RMS (same fp32 maths, reduction order
aside), 16-bit inputs to 1e-2 against the reference on the same values upcast to fp32.
"""
import pytest
import torch

import zoo.layers.mlp as mlp_layer
import zoo.layers.norm as norm_layer
from zoo.kernels import norm as kn
from zoo.kernels.norm import l2_normalize, rms_norm, silu_mul, torch_l2_normalize, torch_rms_norm, torch_silu_mul

from kernel_inputs import rel_rms

TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 1e-2}


@pytest.fixture(autouse=True)
def poison(monkeypatch):
    """Kernel outputs and scratch start as NaN: any element a kernel fails to write shows up."""
    monkeypatch.setattr(kn, "_empty", lambda *shape, **kw: torch.empty(*shape, **kw).fill_(float("nan")))


class Rng:
    """Fresh random normal tensors from a seed that failure messages name."""

    def __init__(self):
        self.seed = torch.seed() % 2**31
        self.gen = torch.Generator().manual_seed(self.seed)

    def __call__(self, *shape, scale=1.0):
        return torch.randn(*shape, generator=self.gen) * scale


@pytest.fixture
def rng():
    return Rng()


def grads(fn, inputs, rng=None, dy=None):
    """(output, grads of every input) of fn(*inputs) for the cotangent dy (random if None)."""
    leaves = [t.detach().clone().requires_grad_() if t is not None else None for t in inputs]
    out = fn(*leaves)
    if dy is None:
        dy = rng(*out.shape).to(out.dtype)
    return out, torch.autograd.grad(out, [t for t in leaves if t is not None], dy), dy


def check(name, got, want, tol, seed):
    assert torch.isfinite(got).all(), f"{name}: non-finite values (unwritten output?), seed {seed}"
    err = rel_rms(got, want)
    assert err <= tol, f"{name}: rel RMS {err:.2e} > {tol:.0e}, seed {seed}"


ROW_SHAPES = [((3, 43), 33), ((2, 65), 100), ((7,), 1024), ((5, 9, 3), 64), ((1,), 256)]


@pytest.mark.parametrize("lead,D", ROW_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("gated", [False, True])
def test_rms_norm_matches_reference(lead, D, dtype, gated, rng):
    """A model cast to dtype (weight too; fp32 weights under autocast: the next test)."""
    x, w = rng(*lead, D) + 0.3, rng(D)  # weight != 1 so dweight carries information
    gate = rng(*lead, D, scale=2.0) if gated else None
    inputs = [x.to(dtype), w.to(dtype), gate.to(dtype) if gated else None]
    y, gs, dy = grads(lambda a, b, c: rms_norm(a, b, c, 1e-6, dtype), inputs, rng=rng)
    ref_in = [t.float() if t is not None else None for t in inputs]
    y_ref, gs_ref, _ = grads(lambda a, b, c: torch_rms_norm(a, b, c, 1e-6, torch.float32), ref_in, dy=dy.float())
    assert y.dtype == dtype and [g.dtype for g in gs] == [dtype] * len(gs)
    check("y", y, y_ref, TOL[dtype], rng.seed)
    for name, a, b in zip(["dx", "dweight", "dgate"], gs, gs_ref):
        check(name, a, b, TOL[dtype], rng.seed)


@pytest.mark.parametrize("gated", [False, True])
def test_rms_norm_autocast_dtypes(gated, rng):
    """As under bf16 autocast: fp32 residual x and weight, bf16 output (and bf16 gate, as the gated
    output norm gets it); dx stays fp32 and is exact given the same bf16 cotangent."""
    D = 1024 if not gated else 128
    x, w = rng(3, 5, D), rng(D)
    gate = rng(3, 5, D).bfloat16() if gated else None
    y, gs, dy = grads(lambda a, b, c: rms_norm(a, b, c, 1e-5, torch.bfloat16), [x, w, gate], rng=rng)
    y_ref, gs_ref, _ = grads(lambda a, b, c: torch_rms_norm(a, b, c, 1e-5, torch.float32), [x, w, gate],
                             dy=dy.float())
    assert y.dtype == torch.bfloat16 and gs[0].dtype == torch.float32 and gs[1].dtype == torch.float32
    check("y", y, y_ref, 1e-2, rng.seed)
    for name, a, b in zip(["dx", "dweight", "dgate"], gs, gs_ref):
        check(name, a, b, 1e-2 if name == "dgate" else 1e-5, rng.seed)


def test_rms_norm_strided_rows_and_cotangent(rng):
    """x a slice of a wider tensor (row stride != D), dy non-contiguous: no copies needed, same values."""
    wide = rng(4, 11, 96)
    x, w = wide[..., 8:72], rng(64)
    dy = rng(11, 4, 64).transpose(0, 1)
    y, gs, _ = grads(lambda a, b: rms_norm(a, b, None, 1e-6), [x, w], dy=dy)
    y_ref, gs_ref, _ = grads(lambda a, b: torch_rms_norm(a, b, None, 1e-6), [x, w], dy=dy)
    check("y", y, y_ref, 1e-5, rng.seed)
    for name, a, b in zip(["dx", "dweight"], gs, gs_ref):
        check(name, a, b, 1e-5, rng.seed)


@pytest.mark.parametrize("D", [32, 33, 100, 128, 256])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_l2_normalize_matches_reference_including_eps_branch(D, dtype, rng):
    """Rows with ‖x‖ <= eps (norms 1e-9 .. 0.9 eps) take the dy / eps branch; they are checked apart
    from the normal rows, whose gradients are ~1e6 times smaller."""
    x = rng(3, 21, 2, D)
    tiny = torch.zeros(3, 21, 2, dtype=torch.bool)
    tiny[0, :5] = True
    tiny[2, 20, 1] = True
    norms = torch.logspace(-9, torch.log10(torch.tensor(9e-7)).item(), int(tiny.sum()))
    x[tiny] *= (norms / x[tiny].norm(dim=-1))[:, None]
    x[1, 3, 0] *= 3e-6 / x[1, 3, 0].norm()  # just above eps: the normal branch with a tiny norm
    xd = x.to(dtype)
    y, (dx,), dy = grads(lambda a: l2_normalize(a, 1e-6), [xd], rng=rng)
    y_ref, (dx_ref,), _ = grads(lambda a: torch_l2_normalize(a, 1e-6), [xd.float()], dy=dy.float())
    assert y.dtype == dx.dtype == dtype
    for part, mask in (("normal", ~tiny), ("tiny", tiny)):
        check(f"y {part}", y[mask], y_ref[mask], TOL[dtype], rng.seed)
        check(f"dx {part}", dx[mask], dx_ref[mask], TOL[dtype], rng.seed)


@pytest.mark.parametrize("shape", [(2, 3, 2816), (7, 33), (1,), (4, 1025)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_silu_mul_matches_reference(shape, dtype, rng):
    g, u = rng(*shape, scale=3.0), rng(*shape)
    h, (dg, du), dh = grads(silu_mul, [g.to(dtype), u.to(dtype)], rng=rng)
    h_ref, (dg_ref, du_ref), _ = grads(torch_silu_mul, [g.to(dtype).float(), u.to(dtype).float()], dy=dh.float())
    assert h.dtype == dg.dtype == du.dtype == dtype
    for name, a, b in (("h", h, h_ref), ("dg", dg, dg_ref), ("du", du, du_ref)):
        check(name, a, b, TOL[dtype], rng.seed)


def test_silu_mul_non_contiguous_and_mixed_dtypes(rng):
    g = rng(40, 6).t()  # non-contiguous
    u = rng(6, 40).bfloat16()
    h, (dg, du), dh = grads(silu_mul, [g, u], rng=rng)
    h_ref, (dg_ref, du_ref), _ = grads(torch_silu_mul, [g, u], dy=dh)
    assert h.dtype == dg.dtype == torch.float32 and du.dtype == torch.bfloat16
    for name, a, b in (("h", h, h_ref), ("dg", dg, dg_ref), ("du", du, du_ref)):
        check(name, a, b, 1e-5 if name != "du" else 1e-2, rng.seed)


def test_no_grad_forward_equals_autograd_forward(rng):
    x, w, gate = rng(5, 7, 48), rng(48), rng(5, 7, 48)
    for f in (lambda: rms_norm(x, w, gate), lambda: l2_normalize(x), lambda: silu_mul(x, gate)):
        with torch.enable_grad():
            a = f()
        with torch.no_grad():
            b = f()
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=0)


def test_empty_rows():
    x, w = torch.randn(0, 64, requires_grad=True), torch.randn(64, requires_grad=True)
    y = rms_norm(x, w)
    dx, dw = torch.autograd.grad(y, [x, w], torch.randn(0, 64))
    assert y.shape == dx.shape == (0, 64) and torch.equal(dw, torch.zeros(64))
    assert l2_normalize(x).shape == silu_mul(x, x).shape == (0, 64)


def test_bad_inputs_raise():
    x = torch.randn(3, 8)
    with pytest.raises(ValueError, match="weight must be"):
        rms_norm(x, torch.randn(7))
    with pytest.raises(ValueError, match="gate must have"):
        rms_norm(x, torch.randn(8), torch.randn(3, 7))
    with pytest.raises(ValueError, match="torch_l2_normalize"):
        l2_normalize(x.double())
    with pytest.raises(ValueError, match="one shape"):
        silu_mul(x, torch.randn(8, 3))


def test_layers_take_the_triton_ops_where_told(monkeypatch, rng):
    """The layers' dispatch (CUDA tensors in production) forced onto the Triton ops on CPU: the
    same values as the reference path, and RMSNorm's autocast output dtype."""
    x, gate = rng(2, 6, 32), rng(2, 6, 32)
    norm, mlp = norm_layer.RMSNorm(32), mlp_layer.SwiGLU(32, 100)
    with torch.no_grad():
        norm.weight.copy_(rng(32))
    mods = [norm, lambda t: norm(t, gate), norm_layer.l2_normalize, mlp]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = [f(x) for f in mods]
    for mod in (norm_layer, mlp_layer):
        monkeypatch.setattr(mod, "use_triton", lambda *ts: True)
    monkeypatch.setattr(norm_layer, "torch_rms_norm", None)  # a wrong dispatch would fail loudly
    monkeypatch.setattr(norm_layer, "torch_l2_normalize", None)
    monkeypatch.setattr(mlp_layer, "torch_silu_mul", None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = [f(x) for f in mods]
    assert [t.dtype for t in got] == [torch.bfloat16, torch.bfloat16, torch.float32, torch.bfloat16]
    for a, b in zip(got, want):
        check("layer", a.float(), b.float(), 1e-2, rng.seed)
