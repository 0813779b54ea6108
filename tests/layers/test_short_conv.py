"""ShortConvolution (causal depthwise conv + SiLU): the hand-written backward against gradcheck,
the module against a direct conv1d, and the no-grad path against the autograd path."""
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from zoo.layers.recurrent import ShortConvolution, _ConvSiluFn

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
