"""Triton chunk kernels (run by the interpreter on CPU) against the per-token reference.

Every buffer the kernels write is poisoned with NaN first, so an element a kernel forgets
to write shows up as a non-finite output or gradient.
"""
import pytest
import torch

from zoo.kernels import chunk as chunk_mod
from zoo.kernels.chunk import chunk_delta_rule, chunk_gated_delta_rule
from zoo.kernels.naive import naive_recurrent_delta_rule, naive_recurrent_gated_delta_rule

from kernel_inputs import make_inputs, rel_rms

TOL = {torch.float32: 1e-4, torch.bfloat16: 1e-2, torch.float16: 1e-2}


@pytest.fixture(autouse=True)
def poison(monkeypatch):
    monkeypatch.setattr(
        chunk_mod, "_alloc", lambda shape, device, dtype: torch.full(tuple(shape), float("nan"), device=device, dtype=dtype)
    )


@pytest.fixture(params=[False, True], ids=["unfused", "fused"])
def fused(request, monkeypatch):
    """Both paths of the recurrences, forced by TUNING["fuse_wu"] (by default these small shapes run
    unfused: chunk._fused)."""
    monkeypatch.setitem(chunk_mod.TUNING, "fuse_wu", request.param)
    return request.param


def _fwd_bwd(fn, x, gated, dtype, with_h0=True, final=True, cu=None, seed=0):
    """Run fn on leaf copies of x (cast to dtype); return o, final state and every gradient."""
    leaves = {
        n: t.detach().to(dtype if n != "h0" else t.dtype).clone().requires_grad_()
        for n, t in x.items()
        if t is not None and (n != "h0" or with_h0)
    }
    args = [leaves["q"], leaves["k"], leaves["v"]] + ([leaves["g"]] if gated else []) + [leaves["beta"]]
    o, s = fn(*args, initial_state=leaves.get("h0"), output_final_state=final, cu_seqlens=cu)
    gen = torch.Generator().manual_seed(seed)
    loss = (o.double() * torch.randn(o.shape, generator=gen, dtype=torch.float64)).sum()
    if final:
        loss = loss + (s.double() * torch.randn(s.shape, generator=gen, dtype=torch.float64)).sum()
    loss.backward()
    return o, s, {n: t.grad for n, t in leaves.items()}


def _compare(got, ref, tol):
    (o1, s1, g1), (o2, s2, g2) = got, ref
    assert torch.isfinite(o1).all(), "output has unwritten / non-finite elements"
    assert rel_rms(o1, o2) <= tol, ("o", rel_rms(o1, o2))
    if s2 is not None:
        assert torch.isfinite(s1).all() and rel_rms(s1, s2) <= tol, ("final_state", rel_rms(s1, s2))
    assert set(g1) == set(g2)
    for n in g2:
        assert g1[n] is not None, n
        assert torch.isfinite(g1[n]).all(), f"d{n} has unwritten / non-finite elements"
        assert rel_rms(g1[n], g2[n]) <= tol, (f"d{n}", rel_rms(g1[n], g2[n]))


def _fns(gated):
    if gated:
        return chunk_gated_delta_rule, naive_recurrent_gated_delta_rule
    return chunk_delta_rule, naive_recurrent_delta_rule


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("T", [1, 63, 100, 130])
def test_fp32_fwd_bwd_states(gated, T, fused):
    fn, ref = _fns(gated)
    x = make_inputs(2 if T < 128 else 1, T, 2, 32, 16, dtype=torch.float64, gated=gated)
    _compare(_fwd_bwd(fn, x, gated, torch.float32), _fwd_bwd(ref, x, gated, torch.float64), TOL[torch.float32])


@pytest.mark.parametrize("gated", [False, True])
def test_varlen_documents_with_states(gated, fused):
    fn, ref = _fns(gated)
    lens = [37, 0, 64, 1, 70]  # an empty document, a one-token one, chunk-aligned and ragged ones
    cu = torch.tensor([0] + lens).cumsum(0).to(torch.int32)
    x = make_inputs(1, int(cu[-1]), 2, 16, 32, dtype=torch.float64, gated=gated, n_states=len(lens))
    got = _fwd_bwd(fn, x, gated, torch.float32, cu=cu)
    _compare(got, _fwd_bwd(ref, x, gated, torch.float64, cu=cu), TOL[torch.float32])
    assert got[1].shape == (len(lens), 2, 16, 32)


@pytest.mark.parametrize("dtype,gated", [(torch.bfloat16, True), (torch.float16, False)])
def test_half_precision_against_fp64_reference(dtype, gated, fused):
    fn, ref = _fns(gated)
    x = make_inputs(1, 100, 2, 32, 64, dtype=torch.float64, gated=gated)
    # the reference sees the same rounded inputs, so only the kernels' own precision is measured
    x = {n: (t.to(dtype).double() if (t is not None and n != "h0") else t) for n, t in x.items()}
    got = _fwd_bwd(fn, x, gated, dtype)
    assert got[0].dtype == dtype and got[1].dtype == torch.float32
    _compare(got, _fwd_bwd(ref, x, gated, torch.float64), TOL[dtype])


def test_no_initial_state_no_final_state(fused):
    fn, ref = _fns(True)
    x = make_inputs(2, 70, 2, 64, 16, dtype=torch.float64, gated=True)
    got = _fwd_bwd(fn, x, True, torch.float32, with_h0=False, final=False)
    assert got[1] is None and "h0" not in got[2]
    _compare(got, _fwd_bwd(ref, x, True, torch.float64, with_h0=False, final=False), TOL[torch.float32])


@pytest.mark.parametrize("cu", [None, [0, 37, 100]])
def test_strong_decay_in_ragged_chunks(cu, fused):
    """g = -3 per token: a chunk's decay passes e^-88, so exp(G_i - G_j) must stay finite on the rows
    past a sequence's end (0 * inf there poisoned dk, dbeta, dg before)."""
    fn, ref = _fns(True)
    x = make_inputs(1, 100, 2, 32, 16, dtype=torch.float64, gated=True, n_states=2 if cu else None)
    x["g"] = torch.full_like(x["g"], -3.0)
    cu = torch.tensor(cu, dtype=torch.int32) if cu else None
    _compare(_fwd_bwd(fn, x, True, torch.float32, cu=cu), _fwd_bwd(ref, x, True, torch.float64, cu=cu),
             TOL[torch.float32])


def test_custom_scale_and_large_head_dims():
    fn, ref = _fns(False)
    x = make_inputs(1, 40, 1, 128, 64, dtype=torch.float64)
    run = lambda f, dt: _fwd_bwd(lambda *a, **kw: f(*a, scale=0.3, **kw), x, False, dt)  # noqa: E731
    _compare(run(fn, torch.float32), run(ref, torch.float64), TOL[torch.float32])


def test_solve_sums_k_kt_over_key_slices():
    """fp32 keys of 200 dims: the solve's K K^T runs in four 64-wide slices, the last one masked."""
    assert chunk_mod._solve_slice(200, chunk_mod.tl.float32) == 64
    assert chunk_mod._solve_slice(200, chunk_mod.tl.bfloat16) == 256
    fn, ref = _fns(True)
    x = make_inputs(1, 70, 1, 200, 16, dtype=torch.float64, gated=True)
    _compare(_fwd_bwd(fn, x, True, torch.float32), _fwd_bwd(ref, x, True, torch.float64), TOL[torch.float32])


@pytest.mark.parametrize("gated", [False, True])
def test_one_pass_tf32_keys_over_128_load_late(gated, fused, monkeypatch):
    """fp32 keys of 200 with native dots (one-pass tf32 on the GPU; fp32 products here): the fused
    reverse recurrence loads Tinv^T and its own K^T tile after dVn (LATE), to fit sm_90's shared
    memory; the unfused one loads W^T instead."""
    monkeypatch.setattr(chunk_mod, "_up", lambda dtype: 0)
    launched = []
    real = chunk_mod._launch
    monkeypatch.setattr(chunk_mod, "_launch", lambda kernel, grid, args, kw: launched.append(kw) or real(kernel, grid, args, kw))
    fn, ref = _fns(gated)
    x = make_inputs(1, 70, 1, 200, 24, dtype=torch.float64, gated=gated)
    _compare(_fwd_bwd(fn, x, gated, torch.float32), _fwd_bwd(ref, x, gated, torch.float64), TOL[torch.float32])
    assert [kw["LATE"] for kw in launched if "LATE" in kw] == [fused]
    assert [kw["FUSED"] for kw in launched] == [fused] * 3  # both forward recurrences and the reverse one


def test_fp32_dot_mode_follows_torch_matmul_precision(monkeypatch):
    monkeypatch.setattr(chunk_mod, "_interpreting", lambda: False)
    old = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        assert chunk_mod._up(torch.float32) == chunk_mod.FP32_DOT["tf32x3"]
        torch.set_float32_matmul_precision("high")
        assert chunk_mod._up(torch.float32) == chunk_mod.FP32_DOT["tf32"]
        assert chunk_mod._up(torch.bfloat16) == 0
        monkeypatch.setitem(chunk_mod.TUNING, "fp32_dot", "ieee")
        assert chunk_mod._up(torch.float32) == chunk_mod.FP32_DOT["ieee"]
        monkeypatch.setitem(chunk_mod.TUNING, "fp32_dot", "fp64")
        with pytest.raises(ValueError, match="tf32x3, tf32, ieee"):
            chunk_mod._up(torch.float32)
    finally:
        torch.set_float32_matmul_precision(old)


def test_rejects_unsupported_inputs():
    x = make_inputs(1, 8, 1, 16, 16)
    with pytest.raises(ValueError, match="float64"):
        chunk_delta_rule(x["q"].double(), x["k"].double(), x["v"].double(), x["beta"])
    big = torch.randn(1, 8, 1, 512)
    with pytest.raises(ValueError, match="up to 256"):
        chunk_delta_rule(big, big, x["v"], x["beta"])
    with pytest.raises(ValueError, match="beta must be"):
        chunk_gated_delta_rule(x["q"], x["k"], x["v"], x["beta"], x["beta"][..., None])


def test_head_dims_not_powers_of_two():
    fn, ref = _fns(True)
    x = make_inputs(1, 70, 2, 48, 40, dtype=torch.float64, gated=True)
    _compare(_fwd_bwd(fn, x, True, torch.float32), _fwd_bwd(ref, x, True, torch.float64), TOL[torch.float32])


@pytest.mark.parametrize("preset", ["balanced", "accurate"])
def test_precision_presets(preset, fused, monkeypatch):
    """fp32 dots / fp32 intermediate buffers for 16-bit inputs (chunk.PRESETS)."""
    monkeypatch.setitem(chunk_mod.TUNING, "precision", preset)
    fn, ref = _fns(True)
    x = make_inputs(1, 70, 2, 32, 32, dtype=torch.float64, gated=True)
    x = {n: (t.to(torch.bfloat16).double() if (t is not None and n != "h0") else t) for n, t in x.items()}
    _compare(_fwd_bwd(fn, x, True, torch.bfloat16), _fwd_bwd(ref, x, True, torch.float64), TOL[torch.bfloat16])


def test_backward_refuses_key_blocks_that_crashed_on_gpu(monkeypatch):
    monkeypatch.setitem(chunk_mod.TUNING, "bwd_bk", 32)
    x = make_inputs(1, 20, 1, 64, 16)
    leaves = [t.detach().clone().requires_grad_() for t in (x["q"], x["k"], x["v"], x["beta"])]
    o, _ = chunk_delta_rule(*leaves)
    with pytest.raises(ValueError, match="bwd_bk"):
        o.sum().backward()


@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("gated", [False, True])
def test_backward_with_states_kept_from_the_forward(gated, keep, fused, monkeypatch):
    """TUNING keep_states: the backward takes the forward's chunk states and Vn = U - W S instead of
    re-running the forward recurrence (unfused, it re-runs _wu either way, for W, U and the gated P);
    varlen documents and initial states exercise every buffer. The path is chosen once per call."""
    monkeypatch.setitem(chunk_mod.TUNING, "keep_states", keep)
    calls = {"_fused": 0, "_wu": 0, "_recurrence": 0}

    def counted(name, real):
        def call(*a, **kw):
            calls[name] += 1
            return real(*a, **kw)
        return call

    for name in calls:
        monkeypatch.setattr(chunk_mod, name, counted(name, getattr(chunk_mod, name)))
    fn, ref = _fns(gated)
    x = make_inputs(1, 150, 2, 32, 48, dtype=torch.float64, gated=gated, n_states=3)
    cu = torch.tensor([0, 40, 101, 150], dtype=torch.int32)
    _compare(_fwd_bwd(fn, x, gated, torch.float32, cu=cu), _fwd_bwd(ref, x, gated, torch.float64, cu=cu),
             TOL[torch.float32])
    runs = 1 if keep else 2  # the backward re-ran only what was not kept
    assert calls == {"_fused": 1, "_wu": 0 if fused else 2, "_recurrence": runs}


def test_backward_recurrences_overlap_only_with_few_programs(monkeypatch):
    """The states' recompute runs beside the reverse recurrence (a second CUDA stream) where the
    recurrences have < 256 programs (H100 sweep, kernels/README.md); TUNING["overlap"] overrides;
    never on CPU tensors."""
    assert chunk_mod._overlaps(64) and chunk_mod._overlaps(128)
    assert not chunk_mod._overlaps(256) and not chunk_mod._overlaps(512)
    assert chunk_mod._side_stream(torch.device("cpu"), 64) is None
    monkeypatch.setitem(chunk_mod.TUNING, "overlap", True)
    assert chunk_mod._overlaps(512)
    monkeypatch.setitem(chunk_mod.TUNING, "overlap", False)
    assert not chunk_mod._overlaps(64)


def test_fused_path_chosen_by_rule_and_programs(monkeypatch):
    """Fused always for the plain rule; for the gated rule where the forward recurrence has >= 256
    programs (V blocks x N*H) (H100 sweep, kernels/README.md); TUNING["fuse_wu"] overrides."""
    monkeypatch.setattr(chunk_mod, "_interpreting", lambda: False)  # the GPU's V blocks
    bf16 = torch.bfloat16
    for gated in (False, True):
        assert chunk_mod._fused(128, 128, 8 * 16, gated, bf16)  # 8x2048x16x128: 2 x 128 programs
        assert chunk_mod._fused(64, 64, 8 * 32, gated, bf16)  # 8x2048x32x64: 2 x 256
        assert chunk_mod._fused(128, 128, 4 * 16, gated, bf16)  # 4x4096x16x128: 4 x 64
    assert chunk_mod._fused(128, 128, 16, False, bf16)  # 1x16384x16x128: 4 x 16
    assert not chunk_mod._fused(128, 128, 16, True, bf16)
    assert not chunk_mod._fused(128, 128, 2 * 16, True, bf16)  # 2x8192x16x128: 4 x 32
    monkeypatch.setitem(chunk_mod.TUNING, "fuse_wu", True)
    assert chunk_mod._fused(64, 64, 1, True, bf16)
    monkeypatch.setitem(chunk_mod.TUNING, "fuse_wu", False)
    assert not chunk_mod._fused(128, 128, 8 * 16, False, bf16)
