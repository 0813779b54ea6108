"""ShortConvolution (causal depthwise conv + SiLU): the reference's hand-written backward against
gradcheck, the module against a direct conv1d, the no-grad path against the autograd path, the
generation tail, and the module's Triton path (interpreted) against its reference path."""
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from zoo.kernels.conv import _ConvSiluFn
from zoo.layers import recurrent
from zoo.layers.recurrent import ShortConvolution

f64 = dict(dtype=torch.float64)


@pytest.mark.parametrize("packed", [False, True])
def test_conv_silu_gradients_and_output(packed):
    T, C, size = 9, 5, 4
    xp = torch.randn(2, size - 1 + T, C, **f64, requires_grad=True)
    w = torch.randn(C, size, **f64, requires_grad=True)
    pos = torch.tensor([0, 1, 2, 0, 1, 2, 3, 4, 0])
    keep = (pos[None, :] >= torch.arange(size)[:, None]).double() if packed else None
    assert gradcheck(lambda a, b: _ConvSiluFn.apply(a, b, keep), (xp, w))
    # the module against a direct depthwise conv1d (+ SiLU), documents cut where pos restarts
    conv = ShortConvolution(C, size).double()
    x = torch.randn(1, T, C, **f64)
    out, tail = conv(x, pos if packed else None)
    starts = [0, 3, 8, T] if packed else [0, T]
    want = torch.cat([F.silu(F.conv1d(F.pad(x[:, a:b].transpose(1, 2), (size - 1, 0)), conv.weight, groups=C))
                      .transpose(1, 2) for a, b in zip(starts, starts[1:])], dim=1)
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(tail, x[:, -(size - 1):])


def test_no_grad_path_equals_autograd_path():
    """Without autograd (decoding) the module skips its Function; the values must not change."""
    torch.manual_seed(0)
    x = torch.randn(1, 6, 16)
    pos = torch.tensor([0, 1, 2, 0, 1, 2])
    conv = ShortConvolution(16, 4)
    with torch.enable_grad():
        a = conv(x.clone().requires_grad_(), pos)[0]
    with torch.no_grad():
        b = conv(x, pos)[0]
    torch.testing.assert_close(a.detach(), b, rtol=0, atol=0)


@pytest.mark.parametrize("size", [1, 2, 4])
def test_prefill_then_decode_equals_one_pass(size):
    """Prompts shorter and longer than size-1, then one token at a time through the returned tail."""
    torch.manual_seed(0)
    conv = ShortConvolution(6, size)
    x = torch.randn(2, 8, 6)
    with torch.no_grad():
        full, full_tail = conv(x)
        for prompt in (1, 5):
            out, tail = conv(x[:, :prompt])
            outs = [out]
            for t in range(prompt, 8):
                out, tail = conv(x[:, t:t + 1], tail=tail)
                outs.append(out)
            torch.testing.assert_close(torch.cat(outs, dim=1), full, rtol=0, atol=1e-6)
            torch.testing.assert_close(tail, full_tail)
    assert full_tail.shape == (2, size - 1, 6)


def test_triton_path_matches_reference_path(monkeypatch):
    """The module on its Triton path (forced on CPU; the suite interprets Triton) against its CPU
    path: packed training with gradients, and decoding from a tail without them."""
    torch.manual_seed(0)
    conv = ShortConvolution(33, 4)
    x = torch.randn(1, 12, 33)
    pos = torch.tensor([0, 1, 0, 1, 2, 3, 4, 0, 0, 1, 2, 3])
    dy = torch.randn(1, 12, 33)
    runs = {}
    for fused in (False, True):
        monkeypatch.setattr(recurrent, "use_triton", lambda *ts: fused)
        conv.zero_grad()
        xg = x.clone().requires_grad_()
        out, tail = conv(xg, pos)
        out.backward(dy)
        with torch.no_grad():
            step, step_tail = conv(x[:, :1], tail=tail)
        runs[fused] = (out, xg.grad, conv.weight.grad.clone(), tail, step, step_tail)
    for a, b in zip(runs[True], runs[False]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
