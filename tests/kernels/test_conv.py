"""The fused causal conv1d + SiLU (Triton, through the interpreter) against the PyTorch reference:
output, dx, dweight and dtail; fp32 and 16-bit; sizes 1..4; with packed documents (pos), with a
tail (decode), odd T and C. Every kernel-filled buffer starts as NaN, so an unwritten element fails.
"""
import pytest
import torch

from zoo.kernels import conv
from zoo.kernels.conv import causal_conv1d_silu, torch_causal_conv1d_silu

from kernel_inputs import rel_rms

TOL = {torch.float32: 1e-6, torch.bfloat16: 1e-2, torch.float16: 1e-2}


@pytest.fixture(autouse=True)
def poison(monkeypatch):
    monkeypatch.setattr(conv, "_empty", lambda *s, **k: torch.empty(*s, **k).fill_(float("nan")))


def offsets(T, starts, first=0):
    """pos [T]: in-document offsets with documents starting at `starts` (the one at 0 already
    `first` tokens in, i.e. continued from the tail)."""
    pos, p = [], first - 1
    for t in range(T):
        p = 0 if t in starts else p + 1
        pos.append(p)
    return torch.tensor(pos)


def run(fn, x, w, tail, pos, dy):
    """fn's output and its gradients for x, w (and tail, when given)."""
    leaves = [t.detach().clone().requires_grad_() for t in (x, w) + ((tail,) if tail is not None else ())]
    y = fn(leaves[0], leaves[1], leaves[2] if tail is not None else None, pos)
    grads = torch.autograd.grad(y, leaves, dy, allow_unused=True)  # size 1: the empty tail is not read
    return (y, *(torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads)))


def check(x, w, tail, pos, dtype, names=("y", "dx", "dw", "dtail")):
    """Triton in `dtype` against the reference in fp32 on the same (rounded) inputs."""
    gen = torch.Generator().manual_seed(torch.seed() % 2**31)
    x, tail = x.to(dtype), tail.to(dtype) if tail is not None else None
    dy = torch.randn(x.shape, generator=gen).to(dtype)
    got = run(causal_conv1d_silu, x, w, tail, pos, dy)
    up = lambda t: None if t is None else t.float()  # noqa: E731
    want = run(torch_causal_conv1d_silu, up(x), w, up(tail), pos, dy.float())
    assert got[0].dtype == dtype and got[1].dtype == dtype and got[2].dtype == w.dtype
    for name, a, b in zip(names, got, want):
        assert torch.isfinite(a).all(), f"{name}: non-finite values (unwritten output?)"
        assert a.shape == b.shape, name
        if b.numel() == 0:
            continue
        err = rel_rms(a, b) if b.abs().max() > 0 else a.abs().max().item()
        assert err <= TOL[dtype], f"{name}: rel RMS {err:.2e} > {TOL[dtype]:.0e}"


# (B, T, C, tail, pos): plain; packed documents starting at t = 0, 1, 3 (a 1-token document at
# t = 0) and more; a tail under a document continued from it, restarting at t = 2; decode steps.
CASES = {
    "plain": (2, 63, 33, False, None),
    "packed": (1, 100, 100, False, dict(starts={0, 1, 3, 4, 40, 41, 42, 97})),
    "tail": (2, 3, 33, True, None),
    "tail+packed": (1, 63, 100, True, dict(starts={2, 3, 30, 62}, first=2)),
    "decode": (3, 1, 33, True, None),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference(case, size, dtype):
    B, T, C, with_tail, docs = CASES[case]
    gen = torch.Generator().manual_seed(torch.seed() % 2**31)
    x = torch.randn(B, T, C, generator=gen)
    w = torch.randn(C, size, generator=gen) * 0.6
    tail = torch.randn(B, size - 1, C, generator=gen) if with_tail else None
    pos = offsets(T, **docs) if docs else None
    check(x, w, tail, pos, dtype)


def test_fp16_and_int32_pos():
    x, w = torch.randn(2, 33, 100), torch.randn(100, 4) * 0.6
    check(x, w, torch.randn(2, 3, 100), offsets(33, {0, 1, 2, 20}).int(), torch.float16)


@pytest.mark.parametrize("layout", ["strided", "transposed"])
def test_noncontiguous_input(layout):
    x = torch.randn(2, 33, 200)[:, :, ::2] if layout == "strided" else torch.randn(2, 100, 33).transpose(1, 2)
    assert not x.is_contiguous()
    check(x, torch.randn(100, 4) * 0.6, None, offsets(33, {0, 5}), torch.float32)


def test_weight_gradient_in_weight_dtype_and_tail_without_grad():
    x = torch.randn(2, 7, 33, dtype=torch.bfloat16, requires_grad=True)
    w = torch.randn(33, 3, requires_grad=True)
    tail = torch.randn(2, 2, 33)  # a cache: no gradient
    y = causal_conv1d_silu(x, w, tail)
    y.float().sum().backward()
    assert y.dtype == torch.bfloat16 and w.grad.dtype == torch.float32 and x.grad.dtype == torch.bfloat16


def test_prefill_then_decode_equals_one_pass():
    """Prefill a prompt, then feed one token at a time with the last size-1 inputs as the tail."""
    B, T, C, size = 2, 9, 33, 4
    x, w = torch.randn(B, T, C), torch.randn(C, size)
    with torch.no_grad():
        full = causal_conv1d_silu(x, w)
        outs = [causal_conv1d_silu(x[:, :5], w)]
        xp = torch.cat([x.new_zeros(B, size - 1, C), x], dim=1)
        for t in range(5, T):
            outs.append(causal_conv1d_silu(x[:, t:t + 1], w, xp[:, t:t + size - 1]))
    torch.testing.assert_close(torch.cat(outs, dim=1), full, rtol=1e-6, atol=1e-6)


def test_rejects_bad_shapes_and_too_many_taps():
    x = torch.randn(1, 4, 8)
    with pytest.raises(ValueError, match="weight"):
        causal_conv1d_silu(x, torch.randn(9, 4))
    with pytest.raises(ValueError, match="up to 4 taps"):
        causal_conv1d_silu(x, torch.randn(8, 5))
    with pytest.raises(ValueError, match="tail"):
        causal_conv1d_silu(x, torch.randn(8, 4), torch.randn(1, 2, 8))
    with pytest.raises(ValueError, match="pos"):
        causal_conv1d_silu(x, torch.randn(8, 4), pos=torch.zeros(4))
