"""lm-eval's own CLI sees the model ``zoo`` once zoo is installed (eval/lm_eval_bridge.py, setup.py).

The install is the user's: ``pip install -e .`` into a throwaway virtual environment whose only
other content is this interpreter's site-packages (lm-eval, torch, ...), added by a .pth of plain
paths; no network (``--no-index``, no build isolation).
"""
import configparser
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from zoo.eval.lm_eval_bridge import MODELS
from zoo.eval.tasks import TASKS_DIR

ROOT = Path(__file__).resolve().parents[2]
OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}


def _run(args, **kw):
    res = subprocess.run(args, capture_output=True, text=True, **kw)
    assert res.returncode == 0, f"{' '.join(map(str, args))} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory):
    """The python of a fresh venv where ``pip install -e .`` of this checkout has been run."""
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    outer = dict.fromkeys(sysconfig.get_path(kind) for kind in ("purelib", "platlib"))
    (purelib / "outer-site.pth").write_text("".join(f"{path}\n" for path in outer))
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-e", str(ROOT)])
    return python


def test_install_adds_a_light_startup_hook(venv_python):
    """Every interpreter start imports the bridge, and nothing else of zoo, lm-eval or torch."""
    code = ("import sys; print(sorted(m for m in sys.modules if m.partition('.')[0] in "
            "('_zoo_lm_eval', 'zoo', 'lm_eval', 'torch')))")
    assert _run([venv_python, "-c", code]).stdout.split() == ["['_zoo_lm_eval']"]


def test_lm_eval_cli_runs_model_zoo(venv_python, trained_run, tmp_path):
    """``python -m lm_eval --model zoo --model_args pretrained=RUN`` on an offline sample mirror."""
    run, _ = trained_run
    out = tmp_path / "out"
    _run([venv_python, "-m", "lm_eval", "--model", "zoo", "--model_args", f"pretrained={run}",
          "--device", "cpu", "--batch_size", "2", "--include_path", str(TASKS_DIR), "--tasks", "fda_sample",
          "--limit", "2", "--output_path", str(out)],
         cwd=tmp_path, env={**os.environ, **OFFLINE})
    (path,) = out.rglob("results_*.json")
    saved = json.loads(path.read_text())
    assert saved["config"]["model"] == "zoo"
    assert saved["config"]["model_args"] == {"pretrained": str(run)}
    assert saved["n-samples"]["fda_sample"]["effective"] == 2
    assert 0 <= saved["results"]["fda_sample"]["contains,none"] <= 1


def test_wheel_ships_bridge_pth_and_entry_point(tmp_path):
    """``pip install .`` (a wheel) gets the same: the bridge at the top level, its .pth, the entry point."""
    src = tmp_path / "src"  # a copy, so that the build leaves no build/ or egg-info in the checkout
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("zoo", "eval", "kernels"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", str(tmp_path / "dist"), str(src)])
    (wheel,) = (tmp_path / "dist").glob("zoo-*.whl")
    with zipfile.ZipFile(wheel) as whl:
        assert whl.read("_zoo_lm_eval.py") == (ROOT / "eval" / "lm_eval_bridge.py").read_bytes()
        assert whl.read("zoo-lm-eval.pth").decode() == "import _zoo_lm_eval; _zoo_lm_eval.install()\n"
        entry_points = next(n for n in whl.namelist() if n.endswith(".dist-info/entry_points.txt"))
        parser = configparser.ConfigParser()
        parser.read_string(whl.read(entry_points).decode())
    assert dict(parser["lm_eval.models"]) == MODELS
