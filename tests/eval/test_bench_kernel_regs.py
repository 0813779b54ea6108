"""bench/kernel_regs.py on the CPU: every chunk-kernel launch of a small shape compiles for sm_90a."""
import json
import os
import subprocess
import sys

import pytest
from conftest import BENCH


# solve, (W/U,) forward recurrence; the backward's (W/U and) states again, its reverse recurrence, gradients
LAUNCHES = {
    False: ["_solve_kernel", "_wu_kernel", "_fwd_kernel", "_wu_kernel", "_fwd_kernel", "_bwd_dh_kernel", "_bwd_kernel"],
    True: ["_solve_kernel", "_fwd_kernel", "_fwd_kernel", "_bwd_dh_kernel", "_bwd_kernel"],
}


def _regs(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # compile the real kernels
    out = tmp_path / "regs.json"
    subprocess.run([sys.executable, str(BENCH / "kernel_regs.py"), *args, "--out", str(out)], env=env, check=True,
                   timeout=600, capture_output=True)
    return json.loads(out.read_text())


@pytest.mark.parametrize("fused", [False, True])
def test_every_launch_compiles_and_reports(tmp_path, fused):
    report = _regs(tmp_path, "--shape", "1x64x1x32x32", "--dtype", "fp32", "--fp32-dot", "tf32", "--gated",
                   "--tune", json.dumps({"fuse_wu": fused}))
    assert [r["kernel"] for r in report["rows"]] == LAUNCHES[fused]
    assert [r["constexprs"]["FUSED"] for r in report["rows"] if "FUSED" in r["constexprs"]] == [str(fused)] * 3
    assert all(0 < r["registers"] <= 255 and r["shared"] >= 0 for r in report["rows"])
    assert report["rows"][0]["constexprs"]["UP"] == "0" and report["tuning"]["fp32_dot"] == "tf32"


@pytest.mark.parametrize("fused", [False, True])
def test_widest_fp32_launches_fit_sm90_shared_memory(tmp_path, fused):
    """Keys of 256 in fp32 with one-pass tf32 dots (MQAR at d_model 256 and 512): each launch of either
    path fits the 227 KB of shared memory of an H100; with 32-wide V blocks the recurrences needed
    232-240 KB and raised OutOfResources on the GPU, and so did the fused reverse recurrence before LATE."""
    rows = _regs(tmp_path, "--shape", "1x64x1x256x256", "--dtype", "fp32", "--fp32-dot", "tf32",
                 "--tune", json.dumps({"fuse_wu": fused}))["rows"]
    assert [r["kernel"] for r in rows] == LAUNCHES[fused]
    assert [r["kernel"] for r in rows if not r["fits"]] == [], [(r["kernel"], r["shared"]) for r in rows]


def test_refuses_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    run = subprocess.run([sys.executable, str(BENCH / "kernel_regs.py")], env=env, capture_output=True, text=True)
    assert run.returncode == 2 and "unset TRITON_INTERPRET" in run.stderr
