"""Attention layer: every available backend against a naive per-query reference (fp32, forward and
gradients), the W-keys-including-self window convention, GQA, packed documents, causality and
generation caches (prefill + steps equal a full forward, also once generation passes W)."""
from __future__ import annotations

import logging

import pytest
import torch

from zoo.layers import attention as attn_mod
from zoo.layers.attention import Attention, AttentionConfig, attention, select_backend

BACKENDS = ["math", "sdpa"] + (["flex"] if attn_mod._flex_available() else [])
if torch.cuda.is_available() and attn_mod._flash_impl(torch.cuda.get_device_capability()[0])[0]:
    BACKENDS.append("flash")


def rel_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).pow(2).mean().sqrt() / b.float().pow(2).mean().sqrt().clamp_min(1e-30)).item()


def naive_attention(q, k, v, window=None, cu=None):
    """Masked softmax over the flattened B*T tokens, fp32, with the mask written out pair by pair:
    key j is visible from query i iff j <= i, i - j < window (window keys including i itself) and
    j lies in i's document (rows are separate documents when cu is None)."""
    B, T, H, D = q.shape
    N = B * T
    doc = [n // T for n in range(N)]
    if cu is not None:
        doc = [next(d for d in range(len(cu) - 1) if cu[d] <= n < cu[d + 1]) for n in range(N)]
    mask = torch.tensor([[j <= i and doc[j] == doc[i] and (window is None or i - j < window)
                          for j in range(N)] for i in range(N)])
    rep = H // k.shape[2]
    qf = q.reshape(N, H, D).float()
    kf = k.reshape(N, -1, D).float().repeat_interleave(rep, dim=1)
    vf = v.reshape(N, -1, D).float().repeat_interleave(rep, dim=1)
    s = torch.einsum("ihd,jhd->hij", qf, kf) / D ** 0.5
    p = s.masked_fill(~mask, float("-inf")).softmax(-1)
    return torch.einsum("hij,jhd->ihd", p, vf).reshape(B, T, H, D)


def _qkv(B, T, H, Hkv, D):
    """Fresh random inputs on every run."""
    mk = lambda h: torch.randn(B, T, h, D, requires_grad=True)  # noqa: E731
    return mk(H), mk(Hkv), mk(Hkv)


CASES = [  # (B, T, H, Hkv, D, window, cu_seqlens)
    (2, 23, 4, 4, 16, None, None),
    (2, 23, 4, 4, 16, 1, None),
    (2, 23, 4, 4, 16, 5, None),
    (1, 23, 4, 4, 16, 23, None),  # W == T: global
    (1, 23, 4, 4, 16, 64, None),  # W > T
    (2, 19, 4, 2, 16, 6, None),  # GQA
    (1, 19, 4, 1, 16, None, None),  # MQA
    (2, 20, 4, 2, 16, 4, [0, 7, 20, 21, 40]),  # packed docs (a 1-token doc), window
    (1, 30, 2, 2, 16, None, [0, 13, 30]),  # packed docs, global
    (2, 1, 2, 1, 16, None, None),  # T = 1
    (1, 1, 2, 2, 16, 1, None),  # T = 1, W = 1
    (1, 130, 2, 1, 16, 64, [0, 100, 130]),  # crosses FlexAttention's 128-token blocks
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"B{c[0]}T{c[1]}H{c[2]}kv{c[3]}W{c[5]}cu{c[6] is not None}")
def test_backend_matches_reference_forward_and_grads(backend, case):
    B, T, H, Hkv, D, W, cu = case
    dev = "cuda" if backend == "flash" else "cpu"
    dtype = torch.bfloat16 if backend == "flash" else torch.float32
    tol = 1e-2 if dtype == torch.bfloat16 else 1e-5
    q, k, v = _qkv(B, T, H, Hkv, D)
    cu_t = None if cu is None else torch.tensor(cu, dtype=torch.int32, device=dev)
    ref = naive_attention(q, k, v, W, cu)
    go = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, (q, k, v), go)
    qd, kd, vd = (t.detach().to(dev, dtype).requires_grad_() for t in (q, k, v))
    if backend == "flex" and dev == "cpu":  # torch's CPU FlexAttention is forward-only
        with pytest.raises(RuntimeError, match="no backward"):
            attention(qd, kd, vd, window=W, cu_seqlens=cu_t, backend=backend)
        with torch.no_grad():
            out = attention(qd, kd, vd, window=W, cu_seqlens=cu_t, backend=backend)
        assert rel_rms(out, ref) <= tol
        return
    out = attention(qd, kd, vd, window=W, cu_seqlens=cu_t, backend=backend)
    assert out.shape == (B, T, H, D) and out.dtype == dtype
    grads = torch.autograd.grad(out, (qd, kd, vd), go.to(dev, dtype))
    assert rel_rms(out.cpu(), ref) <= tol
    for name, g, r in zip("qkv", grads, ref_grads):
        if r.abs().max() == 0:  # W = 1: softmax over one key, dq is exactly 0
            assert g.float().abs().max() <= 1e-5, f"d{name}"
        else:
            assert rel_rms(g.cpu(), r) <= tol, f"d{name}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("window", [1, 3, 12, None])
def test_window_means_W_keys_including_self(backend, window):
    """q = 0 gives uniform attention over the visible keys; v = one-hot(position) then reads the
    visible set back: query i must see exactly keys max(0, i-W+1)..i."""
    T, D = 12, 16
    dev = "cuda" if backend == "flash" else "cpu"
    dtype = torch.bfloat16 if backend == "flash" else torch.float32
    q = torch.zeros(1, T, 1, D, device=dev, dtype=dtype)
    k = torch.randn(1, T, 1, D, device=dev, dtype=dtype)
    v = torch.eye(T, D, device=dev, dtype=dtype)[None, :, None, :]
    out = attention(q, k, v, window=window, backend=backend)[0, :, 0, :T].float().cpu()
    W = window if window is not None else T
    for i in range(T):
        seen = set(torch.nonzero(out[i] > 1e-3).flatten().tolist())
        assert seen == set(range(max(0, i - W + 1), i + 1)), (i, sorted(seen))


def _layer(window, n_kv=None, backend="auto", d=32, heads=4, seed=0):
    torch.manual_seed(seed)
    return Attention(d, AttentionConfig(n_heads=heads, n_kv_heads=n_kv, window=window, backend=backend))


@pytest.mark.parametrize("window", [None, 3])
def test_causality(window):
    layer = _layer(window, n_kv=2)
    x = torch.randn(2, 15, 32)
    y = layer(x)
    t = 9
    x2 = x.clone()
    x2[:, t] += torch.randn(2, 32)
    y2 = layer(x2)
    torch.testing.assert_close(y2[:, :t], y[:, :t], rtol=0, atol=0)
    assert (y2[:, t] - y[:, t]).abs().max() > 1e-4


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("window", [None, 4])
def test_packed_docs_equal_separate_runs(backend, window):
    if backend == "flash":
        pytest.skip("layer test runs on CPU; flash is covered by the functional test")
    layer = _layer(window, n_kv=2, backend=backend)
    lengths = [5, 1, 11, 7]
    x = torch.randn(1, sum(lengths), 32)
    cu = torch.tensor([0, 5, 6, 17, 24], dtype=torch.int32)
    with torch.no_grad():  # (CPU FlexAttention is forward-only)
        y = layer(x, cu_seqlens=cu)
        alone = torch.cat([layer(x[:, a:b]) for a, b in zip(cu[:-1].tolist(), cu[1:].tolist())], dim=1)
    torch.testing.assert_close(y, alone, rtol=1e-5, atol=1e-5)


def test_packed_docs_over_batch_rows():
    """cu_seqlens indexes the flattened B*T tokens: [2, 8] with docs 0-3, 3-8, 8-16 equals each alone."""
    layer = _layer(None)
    x = torch.randn(2, 8, 32)
    y = layer(x, cu_seqlens=torch.tensor([0, 3, 8, 16], dtype=torch.int32))
    flat = x.reshape(1, 16, 32)
    alone = torch.cat([layer(flat[:, a:b]) for a, b in [(0, 3), (3, 8), (8, 16)]], dim=1).reshape(2, 8, 32)
    torch.testing.assert_close(y, alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("window,n_kv", [(None, None), (4, 2), (1, None), (32, 1)])
@pytest.mark.parametrize("prefill", [3, 6])
def test_cached_generation_equals_full_forward(window, n_kv, prefill):
    """Prefill, then single-token steps (past W), then a 3-token chunk: every output equals the
    matching rows of one full forward."""
    layer = _layer(window, n_kv=n_kv)
    B, T = 2, 17
    x = torch.randn(B, T, 32)
    full = layer(x)
    cache = layer.init_cache(B, x.device, x.dtype)
    outs = [layer(x[:, :prefill], cache=cache)]
    t = prefill
    while t < T - 3:
        outs.append(layer(x[:, t:t + 1], cache=cache))
        torch.testing.assert_close(outs[-1], full[:, t:t + 1], rtol=1e-5, atol=1e-5)
        t += 1
    outs.append(layer(x[:, t:], cache=cache))  # multi-token chunk on a non-empty cache
    torch.testing.assert_close(torch.cat(outs, dim=1), full, rtol=1e-5, atol=1e-5)
    assert cache.pos == T
    if window is not None:
        assert cache.k.shape[1] == window and cache.v.shape[1] == window  # ring of exactly W
    else:
        assert cache.k.shape[1] >= T


def test_global_cache_grows_in_chunks():
    layer = _layer(None)
    cache = layer.init_cache(1)
    cache.chunk = 4
    x = torch.randn(1, 11, 32)
    full = layer(x)
    outs = [layer(x[:, :2], cache=cache)]
    assert cache.k.shape[1] == 4
    for t in range(2, 11):
        outs.append(layer(x[:, t:t + 1], cache=cache))
    assert cache.k.shape[1] == 12
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-5, atol=1e-5)


def test_cache_with_cu_seqlens_is_an_error():
    layer = _layer(4)
    cache = layer.init_cache(1)
    with pytest.raises(ValueError, match="exclusive"):
        layer(torch.randn(1, 4, 32), cu_seqlens=torch.tensor([0, 4], dtype=torch.int32), cache=cache)


def test_bad_cu_seqlens_is_a_clear_error():
    layer = _layer(None)
    with pytest.raises(ValueError, match="cu_seqlens"):
        layer(torch.randn(1, 6, 32), cu_seqlens=torch.tensor([0, 4], dtype=torch.int32))


@pytest.mark.parametrize("kw,match", [
    (dict(n_heads=None), "n_heads"),
    (dict(n_heads=4, n_kv_heads=3), "multiple"),
    (dict(n_heads=4, window=0), "window"),
    (dict(n_heads=4, backend="cudnn"), "valid"),
    (dict(n_heads=4, head_dim=7), "even"),
])
def test_config_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        Attention(32, AttentionConfig(**kw))


def test_backend_selection():
    assert select_backend("auto", "cpu", torch.float32) == "sdpa"
    assert select_backend("math", "cpu", torch.float32) == "math"
    with pytest.raises(ValueError, match="valid"):
        select_backend("xformers", "cpu", torch.float32)
    with pytest.raises(RuntimeError, match="CUDA"):
        select_backend("flash", "cpu", torch.bfloat16)


@pytest.mark.skipif(attn_mod._flash_impl(9)[0] is not None, reason="flash-attn is installed here")
def test_missing_flash_explicit_error_and_auto_fallback_notice(caplog):
    with pytest.raises(RuntimeError, match="install flash-attn"):
        select_backend("flash", "cuda", torch.bfloat16, 9)
    attn_mod._NOTICES.clear()
    select_backend.cache_clear()
    with caplog.at_level(logging.WARNING, logger="zoo.attention"):
        assert select_backend("auto", "cuda", torch.bfloat16, 9) == "flex"
        assert select_backend("auto", "cuda", torch.bfloat16, 9) == "flex"
    notices = [r for r in caplog.records if "flash-attn not available" in r.getMessage()]
    assert len(notices) == 1


def test_flops_and_cache_bytes():
    d = 64
    glob = Attention(d, AttentionConfig(n_heads=4, n_kv_heads=2))  # Dh 16
    swa = Attention(d, AttentionConfig(n_heads=4, n_kv_heads=2, window=8))
    proj = 2 * d * 16 * (4 + 2 * 2) + 2 * 4 * 16 * d
    for ctx in [1, 5, 8, 100]:
        mean_keys_swa = sum(min(t + 1, 8) for t in range(ctx)) / ctx
        mean_keys_glob = sum(t + 1 for t in range(ctx)) / ctx
        assert swa.flops_per_token(d, ctx) == pytest.approx(proj + 4 * 4 * 16 * mean_keys_swa)
        assert glob.flops_per_token(d, ctx) == pytest.approx(proj + 4 * 4 * 16 * mean_keys_glob)
    assert glob.cache_bytes(3, 100, 2) == 2 * 3 * 100 * 2 * 16 * 2
    assert swa.cache_bytes(3, 100, 2) == 2 * 3 * 8 * 2 * 16 * 2
    assert swa.cache_bytes(3, 5, 4) == 2 * 3 * 5 * 2 * 16 * 4
    # the cache object really holds that much
    c = swa.init_cache(3, dtype=torch.float16)
    assert (c.k.numel() + c.v.numel()) * 2 == swa.cache_bytes(3, 100, 2)
