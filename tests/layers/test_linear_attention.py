"""Additive linear attention: the chunkwise form against a per-token recurrent reference (outputs,
final states, gradients), packed documents = separate documents, causality, generation cache
(prefill + steps = full forward), and the `linear` built-in through the spec and model."""
from __future__ import annotations

import pytest
import torch

from zoo.config import ModelConfig
from zoo.layers import MIXERS
from zoo.layers.linear_attention import LinearAttention, LinearAttentionConfig, chunk_linear_attention
from zoo.model import ZooModel
from zoo.spec import resolve_layers


def rel_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).pow(2).mean().sqrt() / b.double().pow(2).mean().sqrt().clamp_min(1e-30)).item()


def naive_linear_attention(q, k, v, scale=None, initial_state=None, cu_seqlens=None):
    """Per-token loop in fp64: S ← S + k vᵀ (reset at each document start), o = Sᵀ q · scale."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    scale = K ** -0.5 if scale is None else scale
    if cu_seqlens is None:
        docs = [(b, 0, T) for b in range(B)]
    else:
        cu = cu_seqlens.tolist()
        docs = [(0, a, e) for a, e in zip(cu[:-1], cu[1:])]
    o = torch.zeros(B, T, H, V, dtype=torch.float64)
    finals = []
    for n, (b, start, end) in enumerate(docs):
        S = torch.zeros(H, K, V, dtype=torch.float64) if initial_state is None else initial_state[n].double().clone()
        for t in range(start, end):
            S = S + k[b, t].double()[:, :, None] * v[b, t].double()[:, None, :]
            o[b, t] = torch.einsum("hk,hkv->hv", q[b, t].double() * scale, S)
        finals.append(S)
    return o, torch.stack(finals)


@pytest.mark.parametrize("B,T,H,K,V,C", [(2, 1, 2, 8, 8, 4), (2, 63, 2, 8, 16, 16), (1, 100, 3, 16, 8, 32),
                                         (2, 130, 2, 8, 8, 64)])
def test_chunk_matches_recurrent(B, T, H, K, V, C):
    q, k = torch.randn(B, T, H, K), torch.randn(B, T, H, K)
    v, h0 = torch.randn(B, T, H, V), torch.randn(B, H, K, V)
    o, final = chunk_linear_attention(q, k, v, initial_state=h0, output_final_state=True, chunk_size=C)
    o_ref, final_ref = naive_linear_attention(q, k, v, initial_state=h0)
    assert o.shape == (B, T, H, V) and final.shape == (B, H, K, V) and final.dtype == torch.float32
    assert rel_rms(o, o_ref) < 1e-5
    assert rel_rms(final, final_ref) < 1e-5


def test_chunk_gradients_match_recurrent():
    B, T, H, K, V = 2, 37, 2, 8, 12
    leaves = [torch.randn(B, T, H, K, requires_grad=True), torch.randn(B, T, H, K, requires_grad=True),
              torch.randn(B, T, H, V, requires_grad=True), torch.randn(B, H, K, V, requires_grad=True)]
    w, wf = torch.randn(B, T, H, V), torch.randn(B, H, K, V)
    o, final = chunk_linear_attention(*leaves[:3], initial_state=leaves[3], output_final_state=True, chunk_size=16)
    grads = torch.autograd.grad((o * w).sum() + (final * wf).sum(), leaves)
    ref = [x.detach().double().requires_grad_() for x in leaves]
    o_r, f_r = naive_linear_attention(*ref[:3], initial_state=ref[3])
    grads_ref = torch.autograd.grad((o_r * w.double()).sum() + (f_r * wf.double()).sum(), ref)
    for name, g, gr in zip(("q", "k", "v", "h0"), grads, grads_ref):
        assert rel_rms(g, gr) < 1e-5, name


def test_packed_documents_are_separate():
    cu = torch.tensor([0, 5, 6, 6, 70, 90], dtype=torch.int32)  # a 1-token and an empty document
    T, H, K, V = 90, 2, 8, 8
    q, k, v = torch.randn(1, T, H, K), torch.randn(1, T, H, K), torch.randn(1, T, H, V)
    h0 = torch.randn(5, H, K, V)
    o, final = chunk_linear_attention(q, k, v, initial_state=h0, output_final_state=True, cu_seqlens=cu, chunk_size=16)
    o_ref, final_ref = naive_linear_attention(q, k, v, initial_state=h0, cu_seqlens=cu)
    assert rel_rms(o, o_ref) < 1e-5
    assert rel_rms(final, final_ref) < 1e-5
    assert torch.equal(final[2], h0[2])  # the empty document keeps its initial state


def _layer(**kw) -> LinearAttention:
    torch.manual_seed(0)
    cfg = LinearAttentionConfig(n_heads=2, **kw)
    return LinearAttention(32, cfg).double()


@pytest.mark.parametrize("feature_map", ["l2", "elu1", "identity"])
def test_layer_is_causal(feature_map):
    layer = _layer(feature_map=feature_map, chunk_size=8)
    x = torch.randn(2, 30, 32, dtype=torch.float64)
    y = layer(x)
    x2 = x.clone()
    x2[:, 17] += torch.randn(32, dtype=torch.float64)
    y2 = layer(x2)
    assert torch.allclose(y[:, :17], y2[:, :17], atol=1e-12)
    assert not torch.allclose(y[:, 17:], y2[:, 17:])


@pytest.mark.parametrize("conv_size", [4, 0])
def test_layer_packed_equals_separate(conv_size):
    layer = _layer(conv_size=conv_size, chunk_size=8)
    lengths = [7, 1, 20, 12]
    docs = [torch.randn(1, n, 32, dtype=torch.float64) for n in lengths]
    cu = torch.tensor([0] + torch.tensor(lengths).cumsum(0).tolist(), dtype=torch.int32)
    packed = layer(torch.cat(docs, 1), cu_seqlens=cu)
    separate = torch.cat([layer(d) for d in docs], 1)
    assert torch.allclose(packed, separate, atol=1e-10)


def test_cache_prefill_then_steps_equals_full_forward():
    layer = _layer(chunk_size=8)
    x = torch.randn(3, 25, 32, dtype=torch.float64)
    full = layer(x)
    cache = layer.init_cache(3)
    outs = [layer(x[:, :11], cache=cache)]
    for t in range(11, 25):
        outs.append(layer(x[:, t:t + 1], cache=cache))
    assert torch.allclose(torch.cat(outs, 1), full, atol=1e-10)
    assert cache.state.shape == (3, 2, 16, 16) and cache.state.dtype == torch.float64  # at least fp32
    with pytest.raises(ValueError, match="cannot be combined"):
        layer(x[:1], cu_seqlens=torch.tensor([0, 25], dtype=torch.int32), cache=layer.init_cache(1))


def test_bad_options_are_clear():
    with pytest.raises(ValueError, match="feature_map='softmax' is not one of l2, elu1, identity"):
        LinearAttentionConfig(feature_map="softmax")
    with pytest.raises(ValueError, match="needs n_heads"):
        LinearAttention(32, LinearAttentionConfig())


def test_linear_builtin_through_spec_and_model():
    assert MIXERS["linear"] is LinearAttention
    cfg = ModelConfig(pattern="linear linear[feature_map=elu1] delta", d_model=32, n_heads=2, vocab_size=64)
    specs = resolve_layers(cfg)
    assert [s.mixer for s in specs] == ["linear", "linear", "deltanet"]
    assert specs[0].config.head_dim == 16 and specs[1].config.feature_map == "elu1"
    model = ZooModel(cfg)
    ids = torch.randint(0, 64, (2, 12))
    logits = model(ids)
    assert logits.shape == (2, 12, 64) and torch.isfinite(logits).all()
    out = model.generate(ids[:, :5], max_new_tokens=4)
    assert out.shape == (2, 9)
    mixer = model.layers[0].mixer
    assert mixer.cache_bytes(1, 100, 2) == mixer.cache_bytes(1, 10_000, 2) > 0
    assert mixer.flops_per_token(32, 100) > 0
