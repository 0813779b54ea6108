"""bench/generate.py on the CPU: cache replication (batch-1 prefill -> batch B), decode timing validity and the report."""
import json

import torch

from conftest import load_bench, tiny_model


@torch.no_grad()
def test_replicated_cache_decodes_like_the_batch_one_cache(monkeypatch):
    bench = load_bench(monkeypatch, "generate")
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
    bench = load_bench(monkeypatch, "generate")
    result = bench.main(["--smoke", "--models", "deltanet,transformer", "--contexts", "24", "--batches", "1,2",
                         "--steps", "2", "--out", str(tmp_path)])
    ok = [r for r in result["rows"] if r["status"] == "ok"]
    assert {(r["model"], r["batch"]) for r in ok} == {("deltanet", 1), ("deltanet", 2), ("transformer", 1), ("transformer", 2)}
    assert all(r["tokens_per_s"] > 0 and r["cache_mib"] > 0 for r in ok)
    md = (tmp_path / "generate.md").read_text()
    assert "| deltanet | zoo eager | 2 |" in md and (tmp_path / "generate.json").is_file()


def test_cache_table_is_flat_for_deltanet_and_bounded_for_swa(monkeypatch):
    bench = load_bench(monkeypatch, "generate")
    table = bench.main(["--smoke", "--cache-table", "--contexts", "8,16,64", "--batches", "1"])["cache_table"]
    assert table.startswith("| model (KiB) |")
    rows = {line.split("|")[1].strip(): [float(x.replace(",", "")) for x in line.split("|")[3:-1]]
            for line in table.splitlines()[2:]}
    assert len(set(rows["deltanet"])) == 1  # recurrent state: constant in context
    assert rows["hybrid_swa"][1] == rows["hybrid_swa"][2] > rows["hybrid_swa"][0]  # window 16 fills, then stays
    assert rows["transformer"][2] == 4 * rows["transformer"][1]  # KV cache grows with context


class FakeGenerate:
    """``generate`` as Hugging Face runs it for a streamer: the prompt is put first, then each new
    token; time is a fake clock that the prefill and each step advance."""

    def __init__(self, clock, prefill_s, step_s, stall=None, stream=True):
        self.clock, self.prefill_s, self.step_s, self.stall, self.stream = clock, prefill_s, step_s, stall, stream

    def generate(self, ids, max_new_tokens, streamer=None, **kw):
        streamer.put(ids.cpu())
        self.clock.t += self.prefill_s
        for i in range(max_new_tokens):
            self.clock.t += (self.step_s if i else 0) + (self.stall[1] if self.stall and self.stall[0] == i else 0)
            if self.stream:
                streamer.put(torch.zeros(ids.shape[0], dtype=torch.long))
        streamer.end()
        return torch.cat([ids, torch.zeros(ids.shape[0], max_new_tokens, dtype=torch.long)], dim=1)


class Clock:
    t = 100.0

    def __call__(self):
        return self.t


def test_fla_point_times_only_decode_steps_and_refuses_impossible_ones(monkeypatch):
    bench = load_bench(monkeypatch, "generate")
    clock = Clock()
    monkeypatch.setattr(bench.time, "perf_counter", clock)
    ids, cpu = torch.zeros(2, 5, dtype=torch.long), torch.device("cpu")

    def point(**kw):
        return bench.fla_point(FakeGenerate(clock, **kw), ids, steps=8, warmup=2, device=cpu)

    # a long prefill (fla autotuning for a new prompt length) is outside the timed steps
    row = point(prefill_s=20.0, step_s=0.05)
    assert row["status"] == "ok" and abs(row["ms_per_step"] - 50) < 1e-6 and abs(row["tokens_per_s"] - 40) < 1e-6
    assert point(prefill_s=0.1, step_s=0.05, stall=(1, 5.0))["status"] == "ok"  # a warm-up step may compile
    bad = point(prefill_s=0.1, step_s=0.05, stall=(5, 5.0))  # a timed step may not
    assert bad["status"].startswith("invalid: slowest step") and "tokens_per_s" not in bad
    bad = point(prefill_s=0.1, step_s=0.05, stream=False)
    assert bad["status"] == "invalid: 0 token time stamps from generate, expected 11"
    assert point(prefill_s=0.1, step_s=0.0)["status"].startswith("invalid: a decode step took 0")


def test_rate_refuses_non_positive_times(monkeypatch):
    bench = load_bench(monkeypatch, "generate")
    assert bench.rate(4, 8, 0.5) == {"status": "ok", "tokens_per_s": 64.0, "ms_per_step": 62.5}
    for secs in (0.0, -3.98, float("nan"), float("inf")):
        row = bench.rate(4, 8, secs)
        assert row["status"].startswith("invalid: ") and "tokens_per_s" not in row


def fla_result(rows):
    zoo = [dict(model="deltanet", impl="zoo graph", batch=1, context=c, status="ok", tokens_per_s=230.0) for c in (1024, 2048, 4096)]
    return {"device": "test", "contexts": [1024, 2048, 4096], "batches": [1], "notes": [], "rows": zoo + rows}


def test_render_marks_invalid_fla_points_and_skips_them_in_ratios(tmp_path, monkeypatch):
    bench = load_bench(monkeypatch, "generate")
    fla = dict(model="deltanet", impl="fla HF generate", batch=1)
    result = fla_result([
        dict(fla, context=1024, status="ok", tokens_per_s=15.0, peak_gib=1.27, prefill_plus_1_s=0.08),
        dict(fla, context=2048, status="ok", tokens_per_s=-4.0, peak_gib=1.30, prefill_plus_1_s=5.5),  # old runs
        dict(fla, context=4096, status="invalid: slowest step 5 s is over 10× the median", peak_gib=1.36),
    ])
    md = bench.render(result)
    line = next(x for x in md.splitlines() if x.startswith("| deltanet | fla HF generate | 1 |") and "15" in x)
    assert line == ("| deltanet | fla HF generate | 1 | 15 | invalid (autotune inside the timed prefill) | "
                    "invalid (slowest step 5 s is over 10× the median) |")
    assert "| deltanet | fla HF generate | 1 | 1.27 | 1.30 | 1.36 |" in md  # memory still shown
    assert "deltanet zoo graph / fla HF generate at batch 1: 15.3× over context 1K\n" in md
    assert "-" not in md.split("zoo graph / fla")[1].split("\n")[0]
    src = tmp_path / "run" / "generate.json"
    src.parent.mkdir()
    src.write_text(json.dumps(result))
    bench.main(["--render", str(src), "--out", str(tmp_path / "md")])
    assert (tmp_path / "md" / "generate.md").read_text() == md
