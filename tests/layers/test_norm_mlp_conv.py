"""Hand-written backwards (RMSNorm, L2 norm, SwiGLU's silu·mul) against autograd of
the plain formulas, and what they keep for the backward."""
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from zoo.kernels.norm import _RMSNormFn, _SiluMulFn
from zoo.layers.mlp import SwiGLU
from zoo.layers.norm import RMSNorm, l2_normalize

f64 = dict(dtype=torch.float64)


def _saved(fn, *args):
    """Storages kept for the backward by fn(*args), as (shape, dtype) pairs."""
    kept = {}

    def pack(t):
        kept[t.untyped_storage().data_ptr()] = (tuple(t.shape), t.dtype)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args)
    return list(kept.values())


@pytest.mark.parametrize("gated", [False, True])
def test_rmsnorm_gradients(gated):
    x = torch.randn(3, 5, 8, **f64, requires_grad=True)
    w = torch.randn(8, **f64, requires_grad=True)
    g = torch.randn(3, 5, 8, **f64, requires_grad=True) if gated else None
    args = (x, w) + ((g,) if gated else ())
    assert gradcheck(lambda *a: _RMSNormFn.apply(a[0], a[1], a[2] if gated else None, 1e-6, torch.float64), args)
    ref = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w * (F.silu(g) if gated else 1)
    got = _RMSNormFn.apply(x, w, g, 1e-6, torch.float64)
    torch.testing.assert_close(got, ref)


def test_rmsnorm_keeps_input_and_rstd_only_and_returns_autocast_dtype():
    norm = RMSNorm(64)
    x = torch.randn(2, 16, 64, requires_grad=True)
    kept = _saved(norm, x)
    assert sorted(s for s, _ in kept) == [(2, 16, 1), (2, 16, 64), (64,)]
    assert norm(x).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert norm(x).dtype == torch.bfloat16


def test_l2_normalize_matches_f_normalize_including_tiny_rows():
    x = torch.randn(4, 6, **f64)
    x[0] *= 1e-9  # below eps: F.normalize divides by eps there
    x.requires_grad_()
    dy = torch.randn_like(x)
    got, ref = l2_normalize(x), F.normalize(x, dim=-1, eps=1e-6)
    torch.testing.assert_close(got, ref)
    ga, = torch.autograd.grad(got, x, dy)
    gb, = torch.autograd.grad(ref, x, dy)
    torch.testing.assert_close(ga, gb)
    xb = torch.randn(3, 8, dtype=torch.bfloat16, requires_grad=True)
    assert l2_normalize(xb).dtype == torch.bfloat16
    assert [d for _, d in _saved(l2_normalize, xb)] == [torch.bfloat16, torch.float32]  # no fp32 copy of x


def test_silu_mul_gradients_and_swiglu_output():
    g = torch.randn(3, 7, **f64, requires_grad=True)
    u = torch.randn(3, 7, **f64, requires_grad=True)
    assert gradcheck(_SiluMulFn.apply, (g, u))
    mlp = SwiGLU(8, 16).double()
    x = torch.randn(2, 3, 8, **f64)
    ref = mlp.down_proj(F.silu(mlp.gate_proj(x)) * mlp.up_proj(x))
    torch.testing.assert_close(mlp(x), ref)


def test_no_grad_path_equals_autograd_path():
    """Without autograd (decoding) the modules skip their Functions; the values must not change."""
    torch.manual_seed(0)
    x = torch.randn(2, 6, 16)
    norm = RMSNorm(16)
    mods = [norm, lambda t: norm(t, t.flip(-1)), l2_normalize, SwiGLU(16, 32)]
    for f in mods:
        with torch.enable_grad():
            a = f(x.clone().requires_grad_())
        with torch.no_grad():
            b = f(x)
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=0)
