"""`zoo compose`: the per-layer table agrees with the model actually built; errors are one line."""
import json
import subprocess
import sys
from pathlib import Path

import torch

from zoo.config import ModelConfig
from zoo.model import ZooModel

ROOT = Path(__file__).resolve().parents[1]


def zoo(*args):
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True, cwd=ROOT)


def test_paper_hybrid_table_matches_the_built_model():
    run = zoo("compose", "(delta swa)*12", "--d-model", "1024", "--heads", "8", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    names = [row["name"] for row in report["layers"]]
    assert len(names) == 24 and names.count("delta") == 12 and names.count("swa") == 12
    with torch.device("meta"):
        model = ZooModel(ModelConfig(pattern="(delta swa)*12", d_model=1024, n_heads=8))
    assert report["totals"]["params"] == sum(p.numel() for p in model.parameters())
    t = report["totals"]
    assert sum(r["params"] for r in report["layers"]) + t["embedding_params"] + t["lm_head_params"] + t["final_norm_params"] == t["params"]


def test_table_output_lists_every_layer():
    run = zoo("compose", "(delta swa)*12", "--d-model", "1024", "--heads", "8")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert sum(1 for l in lines if " delta " in f" {l} ") == 12
    assert sum(1 for l in lines if " swa " in f" {l} ") == 12


def test_cache_bytes_grow_only_for_global_attention():
    small = json.loads(zoo("compose", "delta swa[window=128] attn", "--context", "1024", "--json").stdout)
    large = json.loads(zoo("compose", "delta swa[window=128] attn", "--context", "8192", "--json").stdout)
    before, after = ([r["cache_bytes"] for r in rep["layers"]] for rep in (small, large))
    assert after[0] == before[0] and after[1] == before[1] and after[2] == 8 * before[2]


def test_recipe_argument(tmp_path):
    run = zoo("compose", "recipes/hybrid_swa.yaml", "--json")
    assert run.returncode == 0, run.stderr
    assert len(json.loads(run.stdout)["layers"]) == 4


def test_layer_count_mismatch_is_a_clear_error():
    run = zoo("compose", "(delta swa)*12", "--layers", "23")
    assert run.returncode != 0
    assert "24" in run.stderr and "23" in run.stderr and "Traceback" not in run.stderr


def test_unknown_mixer_points_at_the_token():
    run = zoo("compose", "delta foo")
    assert run.returncode != 0 and "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    caret = next(l for l in lines if "^" in l)
    source = lines[lines.index(caret) - 1]
    assert source[caret.index("^") :].startswith("foo")
    assert "delta" in run.stderr and "swa" in run.stderr  # valid names listed
