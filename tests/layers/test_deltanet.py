"""DeltaNet / Gated DeltaNet layers: the conv never reads across documents, caches, errors."""
import pytest
import torch

from zoo.layers.deltanet import DeltaNet, DeltaNetConfig, GatedDeltaNet, GatedDeltaNetConfig
from zoo.layers.recurrent import ShortConvolution
from zoo.layers.packing import positions_in_document


def test_short_conv_is_causal_and_respects_document_starts():
    torch.manual_seed(0)
    conv = ShortConvolution(6, 4).double()
    x = torch.randn(1, 12, 6, dtype=torch.float64)
    cu = torch.tensor([0, 5, 12])
    packed, _ = conv(x, positions_in_document(cu, 12))
    first, _ = conv(x[:, :5])
    second, _ = conv(x[:, 5:])
    torch.testing.assert_close(packed, torch.cat([first, second], 1))


def test_short_conv_tail_continues_the_sequence():
    torch.manual_seed(0)
    conv = ShortConvolution(3, 4).double()
    x = torch.randn(2, 9, 3, dtype=torch.float64)
    full, _ = conv(x)
    head, tail = conv(x[:, :5])
    rest, _ = conv(x[:, 5:], tail=tail)
    torch.testing.assert_close(torch.cat([head, rest], 1), full)


@pytest.mark.parametrize("cls,cfg", [(DeltaNet, DeltaNetConfig), (GatedDeltaNet, GatedDeltaNetConfig)])
@pytest.mark.parametrize("conv_size,use_gate,expand_v", [(4, False, 1.0), (0, True, 2.0), (2, True, 0.5)])
def test_options_change_shapes_not_contract(cls, cfg, conv_size, use_gate, expand_v):
    torch.manual_seed(0)
    layer = cls(32, cfg(n_heads=2, head_dim=16, conv_size=conv_size, use_gate=use_gate, expand_v=expand_v)).double()
    x = torch.randn(2, 11, 32, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
    cache = layer.init_cache(2)
    steps = torch.cat([layer(x[:, i : i + 1].detach(), cache=cache) for i in range(11)], 1)
    torch.testing.assert_close(steps, y.detach())
    assert cache.state.shape == (2, 2, 16, int(16 * expand_v)) and cache.state.dtype == torch.float64  # fp32 or wider


def test_gated_decay_is_a_log_decay():
    layer = GatedDeltaNet(32, GatedDeltaNetConfig(n_heads=2))
    g = -layer.A_log.exp() * torch.nn.functional.softplus(layer.a_proj(torch.randn(3, 32)) + layer.dt_bias)
    assert (g <= 0).all()


def test_gate_init_ranges():
    """A ~ U(A_min, A_max) and softplus(dt_bias) ~ logU(dt_min, dt_max) per head; bad ranges name the fix."""
    layer = GatedDeltaNet(64, GatedDeltaNetConfig(n_heads=64, A_min=2.0, A_max=3.0, dt_min=1e-3, dt_max=2e-3))
    A, dt = layer.A_log.exp(), torch.nn.functional.softplus(layer.dt_bias)
    assert ((A >= 2.0 - 1e-6) & (A <= 3.0 + 1e-6)).all() and A.std() > 0
    assert ((dt >= 1e-3 * (1 - 1e-4)) & (dt <= 2e-3 * (1 + 1e-4))).all()
    torch.manual_seed(0)
    default = GatedDeltaNet(32, GatedDeltaNetConfig(n_heads=2))
    torch.manual_seed(0)
    slow = GatedDeltaNet(32, GatedDeltaNetConfig(n_heads=2, A_max=1.0, dt_max=1e-3))
    assert torch.allclose(slow.A_log.exp(), torch.ones(2)) and torch.equal(default.q_proj.weight, slow.q_proj.weight)
    with pytest.raises(ValueError, match="need 0 < A_min <= A_max"):
        GatedDeltaNetConfig(A_min=4.0, A_max=2.0)
    with pytest.raises(ValueError, match="need 0 < dt_min <= dt_max"):
        GatedDeltaNetConfig(dt_min=0.0)


def test_cache_and_packed_documents_are_exclusive():
    layer = DeltaNet(32, DeltaNetConfig(n_heads=2))
    with pytest.raises(ValueError, match="cu_seqlens"):
        layer(torch.randn(1, 4, 32), cu_seqlens=torch.tensor([0, 4]), cache=layer.init_cache(1))


def test_cache_bytes_are_constant_in_context():
    layer = DeltaNet(64, DeltaNetConfig(n_heads=4))
    assert layer.cache_bytes(2, 1024, 2) == layer.cache_bytes(2, 65536, 2) == 2 * (4 * 16 * 16 * 4 + 3 * 3 * 64 * 2)


@pytest.mark.parametrize("cls,cfg", [(DeltaNet, DeltaNetConfig), (GatedDeltaNet, GatedDeltaNetConfig)])
def test_fp32_decode_steps_update_the_state_in_place(cls, cfg):
    torch.manual_seed(0)
    layer = cls(32, cfg(n_heads=2))
    x = torch.randn(2, 9, 32)
    full = layer(x)
    cache = layer.init_cache(2)
    out = [layer(x[:, :4], cache=cache)]
    state = cache.state
    out += [layer(x[:, i : i + 1], cache=cache) for i in range(4, 9)]
    assert cache.state is state  # the decode step wrote into the prefill's state
    torch.testing.assert_close(torch.cat(out, 1), full, rtol=1e-4, atol=1e-5)
