"""bench/kernel_regs.py on the CPU: every chunk-kernel launch of a small shape compiles for sm_90a."""
import json
import os
import subprocess
import sys

from conftest import BENCH


def test_every_launch_compiles_and_reports(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # compile the real kernels
    out = tmp_path / "regs.json"
    subprocess.run([sys.executable, str(BENCH / "kernel_regs.py"), "--shape", "1x64x1x32x32", "--dtype", "fp32",
                    "--fp32-dot", "tf32", "--gated", "--out", str(out)], env=env, check=True, timeout=600,
                   capture_output=True)
    report = json.loads(out.read_text())
    names = [r["kernel"] for r in report["rows"]]
    # solve, forward recurrence; the backward's states again, its reverse recurrence, gradients
    assert names == ["_solve_kernel", "_fwd_kernel", "_fwd_kernel", "_bwd_dh_kernel", "_bwd_kernel"]
    assert all(0 < r["registers"] <= 255 and r["shared"] >= 0 for r in report["rows"])
    assert report["rows"][0]["constexprs"]["UP"] == "0" and report["tuning"]["fp32_dot"] == "tf32"


def test_widest_fp32_launches_fit_sm90_shared_memory(tmp_path):
    """Keys of 256 in fp32 with one-pass tf32 dots (MQAR at d_model 256 and 512): each launch fits
    the 227 KB of shared memory of an H100; with 32-wide V blocks the recurrences needed 232-240 KB
    and raised OutOfResources on the GPU."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = tmp_path / "regs.json"
    subprocess.run([sys.executable, str(BENCH / "kernel_regs.py"), "--shape", "1x64x1x256x256", "--dtype", "fp32",
                    "--fp32-dot", "tf32", "--out", str(out)], env=env, check=True, timeout=600, capture_output=True)
    rows = json.loads(out.read_text())["rows"]
    assert [r["kernel"] for r in rows if not r["fits"]] == [], [(r["kernel"], r["shared"]) for r in rows]


def test_refuses_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    run = subprocess.run([sys.executable, str(BENCH / "kernel_regs.py")], env=env, capture_output=True, text=True)
    assert run.returncode == 2 and "unset TRITON_INTERPRET" in run.stderr
