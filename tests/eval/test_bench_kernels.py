"""bench/kernels.py on the CPU: name scoping, graph-timing bookkeeping and the report."""
import json
import symtable

import pytest
import torch

from conftest import BENCH, load_bench

SCRIPT = BENCH / "kernels.py"


def test_no_function_rebinds_torch_locally():
    """`import torch.x` inside a function makes `torch` local to it (the sdpa/flex UnboundLocalError)."""
    def walk(table):
        if isinstance(table, symtable.Function):
            sym = table.lookup("torch") if "torch" in table.get_identifiers() else None
            assert sym is None or not sym.is_local(), f"{table.get_name()} binds torch locally"
        for child in table.get_children():
            walk(child)

    walk(symtable.symtable(SCRIPT.read_text(), str(SCRIPT), "exec"))


def cpu_inputs(B, T, H, K, V, seed=0, **_):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, T, H, d, generator=gen) for d in (K, K, V))
    k = torch.nn.functional.normalize(k, dim=-1)
    beta = torch.rand(B, T, H, generator=gen)
    g = torch.nn.functional.logsigmoid(torch.randn(B, T, H, generator=gen) + 3)
    return [q, k, v, beta, g]


@pytest.mark.parametrize("fail", [False, True])
def test_time_delta_graph_fields(monkeypatch, fail):
    bench = load_bench(monkeypatch, "kernels")
    zk = bench.import_zoo().kernels
    monkeypatch.setattr(bench, "make_delta_inputs", cpu_inputs)
    monkeypatch.setattr(bench, "ms", lambda fn, **kw: (fn(), 2.0)[1])
    calls = []

    def fake_graph(fns):  # runs what would be captured: fwd, then autograd.grad of every leaf
        if fail:
            raise RuntimeError("capture failed")
        calls.append([f() for f in fns])
        return 1.0

    monkeypatch.setattr(bench, "time_graph", fake_graph)
    ops = {"zoo.chunk_delta_rule": zk.torch_chunk_delta_rule}
    row = {}
    assert bench.time_delta(ops, "zoo.chunk_delta_rule", 1, 16, 2, 8, row, graph=True) == (2.0, 2.0)
    if fail:
        assert "graph_fwd_ms" not in row and row["graph_error"] == "RuntimeError: capture failed"
    else:
        assert row["graph_fwd_ms"] == row["graph_fwdbwd_ms"] == 1.0 and "graph_error" not in row
        grads = calls[1][0]
        assert len(grads) == 4 and all(g.shape[:3] == (1, 16, 2) for g in grads)


def row(shape, op, fwd, fb, gfwd=None, gfb=None):
    r = {"shape": list(shape), "op": op, "fwd_ms": fwd, "fwdbwd_ms": fb}
    if gfwd is not None:
        r.update(graph_fwd_ms=gfwd, graph_fwdbwd_ms=gfb)
    return r


def result(training):
    return {"card": "test", "date": "d", "command": "c", "torch": "t", "triton": "t", "copy_bandwidth_Bps": 3e12,
            "training": training}


def test_markdown_graph_ratios_first_and_old_json(monkeypatch):
    bench = load_bench(monkeypatch, "kernels")
    s = bench.SHAPES[0]
    new = bench.markdown(result([row(s, "zoo.chunk_delta_rule", 0.5, 1.6, 0.4, 1.2),
                                 row(s, "fla.chunk_delta_rule", 1.0, 2.5, 0.8, 1.6)]))
    graph, eager = new.index("CUDA-graph replay: GPU time only"), new.index("eager do_bench")
    assert graph < eager
    assert "| 8×2048×16×128 | 0.75 | 0.50 |" in new[graph:eager]  # 1.2/1.6, 0.4/0.8
    assert "| 8×2048×16×128 | 0.64 | 0.50 |" in new[eager:]  # 1.6/2.5, 0.5/1.0
    old = bench.markdown(result([row(s, "zoo.chunk_delta_rule", 0.5, 1.6), row(s, "fla.chunk_delta_rule", 1.0, 2.5)]))
    assert "Not measured in this run." in old and "| 8×2048×16×128 | 0.64 | 0.50 |" in old


def test_render_writes_markdown_to_out(tmp_path, monkeypatch):
    bench = load_bench(monkeypatch, "kernels")
    src = tmp_path / "kernels.json"
    src.write_text(json.dumps(result([])))
    bench.main(["--render", str(src), "--out", str(tmp_path / "md")])
    assert (tmp_path / "md" / "kernels.md").read_text().startswith("# Delta-rule kernel benchmark")
    bench.main(["--render", str(src)])
    assert (tmp_path / "kernels.md").is_file()
