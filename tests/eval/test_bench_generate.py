"""bench/generate.py on the CPU: cache replication (batch-1 prefill -> batch B) and the report."""
import importlib.util
from pathlib import Path

import torch

from conftest import tiny_model

ROOT = Path(__file__).resolve().parents[2]


def load_bench(monkeypatch):
    """The script as a module; bench/ goes on sys.path, as it does when the script runs."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_generate", ROOT / "bench" / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@torch.no_grad()
def test_replicated_cache_decodes_like_the_batch_one_cache(monkeypatch):
    bench = load_bench(monkeypatch)
    model = tiny_model("delta swa[window=4] attn", 64)
    base = model.init_cache(1)
    bench.prefill_to(model, base, 11, 64, chunk=5, gen=torch.Generator().manual_seed(0))
    assert base.seen == 11
    big = bench.replicate(base, 3)
    tok = torch.tensor([[7]])
    want = model(tok, cache=bench.clone_cache(base))[:, -1]
    got = model(tok.expand(3, 1), cache=big)[:, -1]
    torch.testing.assert_close(got, want.expand(3, -1), rtol=1e-5, atol=1e-5)
    assert bench.cache_bytes(big) > bench.cache_bytes(base)
    assert bench.graphable(base) is not None  # attention caches keep Python-int positions
    assert bench.graphable(tiny_model("delta", 64).init_cache(1)) is None


def test_smoke_sweep_and_report(tmp_path, monkeypatch):
    bench = load_bench(monkeypatch)
    result = bench.main(["--smoke", "--models", "deltanet,transformer", "--contexts", "24", "--batches", "1,2",
                         "--steps", "2", "--out", str(tmp_path)])
    ok = [r for r in result["rows"] if r["status"] == "ok"]
    assert {(r["model"], r["batch"]) for r in ok} == {("deltanet", 1), ("deltanet", 2), ("transformer", 1), ("transformer", 2)}
    assert all(r["tokens_per_s"] > 0 and r["cache_mib"] > 0 for r in ok)
    md = (tmp_path / "generate.md").read_text()
    assert "| deltanet | zoo eager | 2 |" in md and (tmp_path / "generate.json").is_file()


def test_cache_table_is_flat_for_deltanet_and_bounded_for_swa(monkeypatch):
    bench = load_bench(monkeypatch)
    table = bench.main(["--smoke", "--cache-table", "--contexts", "8,16,64", "--batches", "1"])["cache_table"]
    assert table.startswith("| model (KiB) |")
    rows = {line.split("|")[1].strip(): [float(x.replace(",", "")) for x in line.split("|")[3:-1]]
            for line in table.splitlines()[2:]}
    assert len(set(rows["deltanet"])) == 1  # recurrent state: constant in context
    assert rows["hybrid_swa"][1] == rows["hybrid_swa"][2] > rows["hybrid_swa"][0]  # window 16 fills, then stays
    assert rows["transformer"][2] == 4 * rows["transformer"][1]  # KV cache grows with context
