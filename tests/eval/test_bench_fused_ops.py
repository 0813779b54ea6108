"""bench/fused_ops.py on the CPU: its correctness gate at tiny shapes (the Triton ops through the
interpreter against their references) and the report it writes after a GPU run."""
import pytest

from conftest import load_bench


def test_smoke_gate_passes_on_every_op(monkeypatch, capsys):
    mod = load_bench(monkeypatch, "fused_ops")
    with pytest.raises(SystemExit) as done:
        mod.main(["--smoke"])
    out = capsys.readouterr().out
    assert done.value.code == 0, out
    assert out.count(": PASS {") == 6 and "fused ops gate: PASS" in out


def test_report_shows_speedup_floor_fraction_and_errors(monkeypatch):
    mod = load_bench(monkeypatch, "fused_ops")
    report = {"card": "GPU", "date": "d", "command": "c", "torch": "t", "triton": "tr", "copy_bandwidth_Bps": 3e12,
              "timing": [{"op": "rmsnorm", "triton_fwdbwd_ms": 0.1, "reference_fwdbwd_ms": 0.4, "floor_fwdbwd_ms": 0.05,
                          "triton_fwd_ms": 0.04, "reference_fwd_ms": 0.1},
                         {"op": "conv", "error": "boom"}],
              "correctness": [{"op": "rmsnorm", "triton_fp32": [1e-8], "triton_bf16": [2e-3], "reference_bf16": [2e-3],
                               "pass": True},
                              {"op": "conv", "error": "RuntimeError: x", "pass": False}]}
    md = mod.markdown(report)
    assert "| rmsnorm | 0.100 | 0.400 | 4.0× | 0.50 | 0.040 | 0.100 |" in md
    assert "| conv | – | – | –× | – | – | – |" in md
    assert "| conv | error: RuntimeError: x | | | NO |" in md
