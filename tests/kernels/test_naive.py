"""torch_chunk_* (vectorised chunkwise form) against the per-token naive recurrence."""
import pytest
import torch

from zoo.kernels.naive import (
    naive_recurrent_delta_rule,
    naive_recurrent_gated_delta_rule,
    torch_chunk_delta_rule,
    torch_chunk_gated_delta_rule,
)

from kernel_inputs import make_inputs, rel_rms

TOL = 1e-5


def _run(fn_chunk, gated, x, h0, chunk_size=None, cu=None, final=True):
    args = [x["q"], x["k"], x["v"]] + ([x["g"]] if gated else []) + [x["beta"]]
    kw = dict(initial_state=h0, output_final_state=final, cu_seqlens=cu)
    if chunk_size is not None:
        kw["chunk_size"] = chunk_size
    return fn_chunk(*args, **kw)


def _leaves(x, h0):
    leaves = {n: t.clone().requires_grad_() for n, t in x.items() if t is not None and n != "h0"}
    h = h0.clone().requires_grad_()
    return leaves, h


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("T,C", [(1, 16), (63, 32), (100, 64), (130, 16), (130, 64)])
def test_chunk_matches_recurrent_fwd_bwd(gated, T, C):
    naive = naive_recurrent_gated_delta_rule if gated else naive_recurrent_delta_rule
    chunk = torch_chunk_gated_delta_rule if gated else torch_chunk_delta_rule
    x = make_inputs(2, T, 2, 16, 24, dtype=torch.float64, gated=gated)
    outs = []
    for fn, cs in ((naive, None), (chunk, C)):
        leaves, h = _leaves(x, x["h0"])
        o, s = _run(fn, gated, leaves, h, chunk_size=cs)
        # a random cotangent on both outputs exercises every gradient path
        gen = torch.Generator().manual_seed(1)
        loss = (o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() + (
            s * torch.randn(s.shape, generator=gen, dtype=s.dtype)
        ).sum()
        loss.backward()
        outs.append((o, s, {n: t.grad for n, t in leaves.items()}, h.grad))
    (o1, s1, g1, h1), (o2, s2, g2, h2) = outs
    assert o2.dtype == torch.float64 and o2.shape == o1.shape
    assert rel_rms(o2, o1) <= TOL
    assert rel_rms(s2, s1) <= TOL
    assert set(g1) == set(g2) == ({"q", "k", "v", "beta"} | ({"g"} if gated else set()))
    for n in g1:
        assert torch.isfinite(g2[n]).all(), n
        assert rel_rms(g2[n], g1[n]) <= TOL, (n, rel_rms(g2[n], g1[n]))
    assert rel_rms(h2, h1) <= TOL


@pytest.mark.parametrize("gated", [False, True])
def test_fp32_close_to_fp64(gated):
    chunk = torch_chunk_gated_delta_rule if gated else torch_chunk_delta_rule
    x64 = make_inputs(1, 100, 2, 32, 16, dtype=torch.float64, gated=gated)
    x32 = {n: (t.float() if t is not None else None) for n, t in x64.items()}
    o64, s64 = _run(chunk, gated, x64, x64["h0"])
    o32, s32 = _run(chunk, gated, x32, x32["h0"])
    assert o32.dtype == torch.float32 and s32.dtype == torch.float32
    assert rel_rms(o32, o64) <= 1e-5 and rel_rms(s32, s64) <= 1e-5


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("impl", ["naive", "chunk"])
def test_varlen_equals_separate_documents(gated, impl):
    if impl == "naive":
        fn = naive_recurrent_gated_delta_rule if gated else naive_recurrent_delta_rule
        cs = None
    else:
        fn = torch_chunk_gated_delta_rule if gated else torch_chunk_delta_rule
        cs = 16
    lens = [37, 0, 64, 1, 50]
    offs = torch.tensor([0] + lens).cumsum(0).to(torch.int32)
    x = make_inputs(1, int(offs[-1]), 2, 8, 12, dtype=torch.float64, gated=gated, n_states=len(lens))
    o, s = _run(fn, gated, x, x["h0"], chunk_size=cs, cu=offs)
    assert s.shape == (len(lens), 2, 8, 12)
    for n, (a, b) in enumerate(zip(offs[:-1].tolist(), offs[1:].tolist())):
        xn = {k: (t[:, a:b] if (t is not None and k != "h0") else t) for k, t in x.items()}
        on, sn = _run(fn, gated, xn, x["h0"][n : n + 1], chunk_size=cs)
        if b > a:
            assert rel_rms(o[:, a:b], on) <= 1e-12
        assert rel_rms(s[n : n + 1], sn) <= 1e-12


@pytest.mark.parametrize("fn", [torch_chunk_delta_rule, naive_recurrent_delta_rule])
def test_defaults_no_state(fn):
    x = make_inputs(2, 20, 3, 8, 8)
    o, s = fn(x["q"], x["k"], x["v"], x["beta"])
    assert s is None and o.shape == (2, 20, 3, 8) and o.dtype == torch.float32
    # zero initial state == no initial state; default scale is K ** -0.5
    o2, _ = fn(x["q"] * 8**-0.5, x["k"], x["v"], x["beta"], scale=1.0, initial_state=torch.zeros(2, 3, 8, 8))
    assert rel_rms(o2, o) <= 1e-6


def test_bf16_output_dtype():
    x = make_inputs(1, 40, 2, 16, 16, dtype=torch.bfloat16, gated=True)
    o, s = torch_chunk_gated_delta_rule(x["q"], x["k"], x["v"], x["g"], x["beta"], output_final_state=True)
    assert o.dtype == torch.bfloat16 and s.dtype == torch.float32


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda a: a.update(k=a["k"][..., :4]), "k must have q's shape"),
        (lambda a: a.update(v=a["v"][:, :5]), "v must be"),
        (lambda a: a.update(beta=a["beta"][..., None]), "beta must be"),
        (lambda a: a.update(g=a["g"][:, :3]), "g must be"),
        (lambda a: a.update(q=a["q"][0]), "q must be"),
        (lambda a: a.update(initial_state=torch.zeros(3, 2, 8, 4)), "initial_state must be"),
        (lambda a: a.update(cu_seqlens=torch.tensor([0, 5, 10], dtype=torch.int32)), "B = 1"),
        (lambda a: a.update(q=a["q"].long()), "floating"),
    ],
)
@pytest.mark.parametrize("fn", [torch_chunk_gated_delta_rule, naive_recurrent_gated_delta_rule])
def test_validation_errors(fn, mutate, match):
    x = make_inputs(2, 10, 2, 8, 4, gated=True)
    a = dict(q=x["q"], k=x["k"], v=x["v"], g=x["g"], beta=x["beta"])
    mutate(a)
    with pytest.raises(ValueError, match=match):
        fn(a["q"], a["k"], a["v"], a["g"], a["beta"], initial_state=a.get("initial_state"), cu_seqlens=a.get("cu_seqlens"))


def test_bad_cu_seqlens():
    x = make_inputs(1, 10, 2, 8, 4)
    with pytest.raises(ValueError, match="end at T"):
        torch_chunk_delta_rule(x["q"], x["k"], x["v"], x["beta"], cu_seqlens=torch.tensor([0, 4, 9], dtype=torch.int32))
