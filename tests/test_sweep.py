"""zoo sweep: grid parsing, resume bookkeeping, the query-only head, a tiny sweep end to end on the CPU,
and the shipped synthetic recipes (every grid point validates; models build)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from zoo.cli import main
from zoo.config import load_recipe
from zoo.model import ZooModel
from zoo.sweep import (SweepConfig, SweepError, _query_logits, finished_records, grid_points, group_runs,
                       latest_per_key, load_records, load_sweep_recipe, max_labelled, parse_axis, parse_best_over,
                       point_key, render_markdown, run_point, run_sweep, split_values)

ROOT = Path(__file__).resolve().parents[1]


def zoo(*args):
    """Run the CLI in-process; a clean exit is SystemExit(0)."""
    try:
        main(list(args))
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code

TINY = """\
model: {pattern: delta*2, d_model: 16, n_heads: 2, vocab_size: 32, max_seq_len: 16}
data: {type: mqar, seq_len: 16, val_batches: 1, mqar: {num_kv_pairs: 2, vocab_size: 32}}
train: {steps: 3, batch_size: 4, lr: 3.0e-3, warmup_steps: 1, val_every: 2}
sweep: {grid: ["model.pattern=delta*2,linear*2"], log_every: 1}
"""


def test_split_values_respects_brackets():
    assert split_values("delta*2, (delta swa)*1,swa[window=64, conv_size=2]") == [
        "delta*2", "(delta swa)*1", "swa[window=64, conv_size=2]"]


def test_parse_axis_single_and_zipped():
    a = parse_axis("model.pattern=delta*2,delta swa")
    assert a.keys == ("model.pattern",) and a.values == [("delta*2",), ("delta swa",)]
    z = parse_axis("model.d_model:model.n_heads=64:1,128:2")
    assert z.keys == ("model.d_model", "model.n_heads") and z.values == [("64", "1"), ("128", "2")]


@pytest.mark.parametrize("text,message", [
    ("model.d_model", "is not KEY=V1,V2"),
    ("a:b=1:2,3", "has 1 part(s) for 2 keys"),
    ("a=1,,2", "empty value"),
    ("a=1,1", "repeated value"),
    (":b=1:2", "empty key"),
])
def test_parse_axis_errors(text, message):
    with pytest.raises(SweepError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_axis(text)


def test_grid_points_order_and_pinning():
    axes = [parse_axis("s:k=256:16,512:64"), parse_axis("p=a,b")]
    assert grid_points(axes) == [["s=256", "k=16", "p=a"], ["s=256", "k=16", "p=b"],
                                 ["s=512", "k=64", "p=a"], ["s=512", "k=64", "p=b"]]
    # pinning a key drops its axis (the whole zipped axis) and is added to every point
    assert grid_points(axes, ["k=8"]) == [["p=a", "k=8"], ["p=b", "k=8"]]
    assert grid_points([]) == [[]]
    with pytest.raises(SweepError, match="two --grid axes"):
        grid_points([parse_axis("a=1,2"), parse_axis("b:a=1:1")])


def test_point_key_ignores_order():
    assert point_key("mqar", ["b=2", "a=1"]) == point_key("mqar", ["a=1", "b=2"]) != point_key("mad", ["a=1", "b=2"])


def test_records_resume_bookkeeping(tmp_path):
    path = tmp_path / "r.jsonl"
    recs = [{"key": "x", "status": "cut", "accuracy": 0.1}, {"key": "y", "status": "done", "accuracy": 0.5},
            {"key": "x", "status": "reached", "accuracy": 0.99}, {"key": "y", "status": "cut", "accuracy": 0.2}]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"key": "z", "sta')  # torn last line
    loaded = load_records(path)
    assert loaded == recs
    assert set(finished_records(loaded)) == {"x", "y"}
    assert [r["accuracy"] for r in latest_per_key(loaded)] == [0.99, 0.5]  # a finished run beats a later cut one
    path.write_text("not json\n" + json.dumps(recs[0]) + "\n")
    with pytest.raises(SweepError, match="r.jsonl:1 is not valid JSON"):
        load_records(path)
    assert load_records(tmp_path / "missing.jsonl") == []


def test_query_logits_match_full_forward():
    from zoo.config import ModelConfig

    torch.manual_seed(0)
    model = ZooModel(ModelConfig(pattern="linear attn", d_model=16, n_heads=2, vocab_size=32))
    ids = torch.randint(0, 32, (3, 12))
    labels = torch.full((3, 12), -100)
    labels[0, 3], labels[2, 7], labels[2, 11] = 5, 6, 7
    kmax = max_labelled(labels)
    assert kmax == 2
    logits, target = _query_logits(model, ids, labels, kmax)
    full = model(ids)
    assert logits.shape == (3, 2, 32)
    assert target.tolist() == [[5, -100], [-100, -100], [6, 7]]  # rows with fewer labels are padded
    scored = target != -100
    assert torch.allclose(logits[scored], full[labels != -100], atol=1e-6)


def test_tiny_sweep_end_to_end_and_resume(tmp_path, capsys):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY)
    stem = tmp_path / "out" / "tiny"
    zoo("sweep", str(recipe), "--out", str(stem), "--device", "cpu")
    records = load_records(stem.with_suffix(".jsonl"))
    assert [r["pattern"] for r in records] == ["delta*2", "linear*2"]
    for r in records:
        assert r["status"] == "done" and r["steps"] == 3 and 0.0 <= r["accuracy"] <= 1.0
        assert [e[0] for e in r["evals"]] == [2, 3] and r["device"] == "cpu" and r["params"] > 0
        assert r["command"].startswith("zoo sweep")
    table = stem.with_suffix(".md").read_text()
    assert "| `delta*2` |" in table and "| `linear*2` |" in table and "## Commands" in table
    assert len(json.loads(stem.with_suffix(".json").read_text())) == 2
    # rerun: both points are finished, nothing trains
    zoo("sweep", str(recipe), "--out", str(stem), "--device", "cpu")
    assert "2 already in" in capsys.readouterr().out
    assert len(load_records(stem.with_suffix(".jsonl"))) == 2
    # a run cut by the budget is run again; a zero budget starts nothing
    lines = stem.with_suffix(".jsonl").read_text().splitlines()
    cut = json.loads(lines[1])
    cut["status"] = "cut"
    stem.with_suffix(".jsonl").write_text(lines[0] + "\n" + json.dumps(cut) + "\n")
    zoo("sweep", str(recipe), "--out", str(stem), "--device", "cpu", "--budget", "0")
    assert "budget of 0s spent" in capsys.readouterr().out
    zoo("sweep", str(recipe), "--out", str(stem), "--device", "cpu", "--grid", "model.pattern=linear*2,delta*2")
    records = load_records(stem.with_suffix(".jsonl"))
    assert [(r["pattern"], r["status"]) for r in records] == [("delta*2", "done"), ("linear*2", "cut"), ("linear*2", "done")]
    assert "(cut)" not in stem.with_suffix(".md").read_text()
    # sweep.* overrides steer the runner and leave the points' identity alone
    zoo("sweep", str(recipe), "--out", str(stem), "--device", "cpu", "sweep.max_seconds=5", "--dry-run")
    assert "2 already in" in capsys.readouterr().out
    # --rerun time: a run stopped by the time cap runs again, and its new record is the one tabulated
    capped = dict(load_records(stem.with_suffix(".jsonl"))[0], status="time", accuracy=0.0)
    with stem.with_suffix(".jsonl").open("a") as f:
        f.write(json.dumps(capped) + "\n")
    zoo("sweep", str(recipe), "--out", str(stem), "--device", "cpu", "--dry-run")
    assert "2 already in" in capsys.readouterr().out
    zoo("sweep", str(recipe), "--out", str(stem), "--device", "cpu", "--rerun", "time")
    assert "1 already in" in capsys.readouterr().out
    last = load_records(stem.with_suffix(".jsonl"))[-1]
    assert (last["pattern"], last["status"]) == ("delta*2", "done") and "--rerun time" in last["command"]
    with pytest.raises(SweepError, match="--rerun timeout: not a run status"):
        run_sweep(str(recipe), out=str(stem), device="cpu", rerun=["timeout"])


def test_sweep_errors_are_clear(tmp_path, capsys):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY)
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(recipe), "--out", str(tmp_path / "o"), "model.d_modle=3"])
    assert exc.value.code == 2 and "d_modle" in capsys.readouterr().err
    cfg = load_recipe(None, ["model.vocab_size=8"], base=load_sweep_recipe(recipe)[0])
    with pytest.raises(SweepError, match="set model.vocab_size=32"):
        run_point(cfg, SweepConfig(), "cpu")
    with pytest.raises(SystemExit):
        main(["sweep", str(recipe), "--out", str(tmp_path / "o"), "sweep.max_second=3", "--dry-run"])
    assert "max_second" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.replace("log_every: 1", "log_evry: 1"))
    with pytest.raises(SweepError, match="log_evry"):
        load_sweep_recipe(bad)


def test_sweep_trains_mad_compression_with_the_decoder_head():
    cfg = load_recipe(None, ["model.pattern=delta*2", "model.d_model=32", "model.n_heads=2", "model.vocab_size=8",
                             "data.type=mad", "data.mad.task=compression", "data.seq_len=8", "data.mad.vocab_size=8",
                             "data.mad.options={num_train_examples: 0}", "data.val_batches=2", "train.steps=80",
                             "train.batch_size=64", "train.lr=1e-2", "train.warmup_steps=10", "train.val_every=80",
                             "train.weight_decay=0"])
    record = run_point(cfg, SweepConfig(), "cpu", echo=lambda *_: None)
    assert record["status"] == "done" and record["task"] == "mad:compression(T=8, V=8)"
    assert record["params"] > ZooModel(cfg.model).num_params()  # the decoder head is trained too
    assert record["accuracy"] > 0.35  # chance ~0.25 (1/7 on the 7 content positions; the marker is free)


def test_markdown_has_the_mad_average():
    def row(task, pattern, acc, status="done"):
        return {"key": task + pattern, "recipe": "mad", "overrides": [f"data.mad.task={task}", f"model.pattern={pattern}"],
                "task": f"mad:{task}(T=32, V=16)", "pattern": pattern, "d_model": 128, "n_heads": 2, "accuracy": acc,
                "best_accuracy": acc, "best_step": 1, "status": status, "steps": 1, "max_steps": 1, "steps_per_s": 1,
                "seconds": 1, "params": 1, "lr": 1e-3}

    tasks = ["in_context_recall", "noisy_recall", "fuzzy_recall", "selective_copying", "compression", "memorization"]
    rows = [row(t, "delta*2", a) for t, a in zip(tasks, [1.0, 1.0, 0.4, 1.0, 0.3, 0.6])]
    rows += [row("compression", "attn*2", 0.5), row("memorization", "attn*2", 0.1, status="cut")]
    md = render_markdown(rows, "t")
    assert "| `delta*2` | 128 | (recipe defaults) | 6/6 | 0.717 |" in md
    assert "| `attn*2` | 128 | (recipe defaults) | 1/6 | 0.500 |" in md  # cut runs are left out


@pytest.mark.parametrize("name,points", [("mqar", 192), ("mad", 12)])
def test_shipped_recipes_build(name, points):
    path = ROOT / "recipes" / f"{name}.yaml"
    recipe, sweep = load_sweep_recipe(path)
    pts = grid_points([parse_axis(g) for g in sweep.grid])
    assert len(pts) == points and sweep.stop_accuracy is not None
    configs = [load_recipe(None, p, base=recipe) for p in pts]  # every point validates
    biggest = max(configs, key=lambda c: c.model.d_model)
    for cfg in (configs[0], biggest):
        with torch.device("meta"):
            model = ZooModel(cfg.model)
        assert len(model.layers) == 2
    # `zoo train` accepts the same file (the sweep section is carried, not applied)
    assert load_recipe(path).sweep["stop_accuracy"] == sweep.stop_accuracy


def test_crashing_point_is_recorded_and_rerun(tmp_path, monkeypatch, capsys):
    import zoo.sweep as sweep_mod

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY.replace("steps: 3", "steps: 1").replace("val_every: 2", "val_every: 1"))
    real = sweep_mod.run_point

    def flaky(cfg, *a, **kw):
        if cfg.model.pattern == "delta*2":
            raise RuntimeError("kernel exploded")
        return real(cfg, *a, **kw)

    monkeypatch.setattr(sweep_mod, "run_point", flaky)
    stem = tmp_path / "res"
    zoo("sweep", str(recipe), "--out", str(stem), "--device", "cpu")
    recs = load_records(stem.with_suffix(".jsonl"))
    assert [(r["pattern"], r["status"]) for r in recs] == [("delta*2", "error"), ("linear*2", "done")]
    assert "RuntimeError: kernel exploded" in recs[0]["error"]
    md = stem.with_suffix(".md").read_text()
    assert "## Errors" in md and "kernel exploded" in md
    monkeypatch.setattr(sweep_mod, "run_point", real)
    zoo("sweep", str(recipe), "--out", str(stem), "--device", "cpu", "--dry-run")
    assert "todo  model.pattern=delta*2" in capsys.readouterr().out


def mqar_row(pattern, acc, lr=None, status="done", d_model=128, recorded_lr=None):
    """A results record; ``lr`` None: a run from before the lr axis (no override, ``recorded_lr`` recorded)."""
    overrides = ["data.seq_len=512", f"model.d_model={d_model}", f"model.pattern={pattern}"]
    overrides += [f"train.lr={lr}"] if lr is not None else []
    return {"key": point_key("mqar", overrides), "recipe": "mqar", "overrides": overrides, "pattern": pattern,
            "d_model": d_model, "n_heads": 1, "accuracy": acc, "best_accuracy": acc, "best_step": 1, "status": status,
            "steps": 1, "max_steps": 1, "steps_per_s": 1, "seconds": 1, "params": 1,
            "lr": float(lr) if lr is not None else recorded_lr}


def test_best_over_groups_points_and_names_the_winner():
    rows = [mqar_row("delta*2", 0.2, "1e-3"), mqar_row("delta*2", 0.001, recorded_lr=0.003),  # from before the axis
            mqar_row("delta*2", 0.998, "1e-2"), mqar_row("linear*2", 0.99, "1e-3"),
            mqar_row("linear*2", 0.995, "3e-3", status="cut"), mqar_row("delta*2", float("nan"), "1e-3", "error", 256)]
    delta, linear, wide = group_runs(rows, ["train.lr"])
    assert (delta.best["accuracy"], delta.tried, delta.to_run, len(delta.members)) == (0.998, 3, 0, 3)
    assert (linear.best["accuracy"], linear.tried, linear.to_run) == (0.99, 1, 2)  # the cut run does not win
    assert (wide.best["status"], wide.tried, wide.to_run) == ("error", 0, 2)
    md = render_markdown(rows, "t", ["train.lr"])
    assert "## data.seq_len=512\n" in md  # one table: train.lr is left out of the setting
    assert "| `delta*2` | 0.998 (lr 0.01, best of 3) | error (lr 0.001, 2 to run) |" in md
    assert "| `linear*2` | 0.990 (lr 0.001, 2 to run) | — |" in md
    assert md.split("## All runs")[1].count("| `") == 6  # every run is kept
    # without best-over keys each lr is its own setting, as before
    plain = render_markdown(rows, "t")
    assert "## data.seq_len=512 train.lr=1e-2" in plain and "| `delta*2` | 0.998 |" in plain
    assert "best accuracy over" not in plain


def test_best_over_group_with_only_unfinished_runs():
    rows = [mqar_row("delta*2", 0.5, "3e-3", status="cut"), mqar_row("delta*2", 0.7, "1e-2", status="cut"),
            mqar_row("linear*2", 0.9, "3e-3")]
    md = render_markdown(rows, "t", ["train.lr"])
    assert "| `delta*2` | 0.700 (cut, lr 0.01, 1 to run) |" in md  # best of what exists, marked as unfinished
    assert "| `linear*2` | 0.900 (lr 0.003, 1 to run) |" in md  # lr 1e-2 ran for delta*2 only


def test_time_capped_winner_is_marked():
    rows = [mqar_row("delta*2", 0.03, "1e-3", status="time"), mqar_row("delta*2", 0.01, "1e-2", status="time")]
    rows[0]["steps"] = 2390
    md = render_markdown(rows, "t", ["train.lr"])
    assert "| `delta*2` | 0.030 (time cap at 2,390 steps, lr 0.001, best of 2) |" in md


def test_mad_average_takes_the_best_per_task():
    def row(task, lr, acc, pattern="delta*2"):
        overrides = [f"data.mad.task={task}", f"model.pattern={pattern}", f"train.lr={lr}"]
        return {"key": point_key("mad", overrides), "recipe": "mad", "overrides": overrides, "pattern": pattern,
                "task": f"mad:{task}(T=32, V=16)", "d_model": 128, "n_heads": 2, "accuracy": acc, "best_accuracy": acc,
                "best_step": 1, "status": "done", "steps": 1, "max_steps": 1, "steps_per_s": 1, "seconds": 1,
                "params": 1, "lr": float(lr)}

    rows = [row("in_context_recall", "1e-3", 0.9), row("in_context_recall", "1e-4", 1.0),
            row("compression", "1e-3", 0.5), row("compression", "1e-4", 0.2, "attn*2")]  # lr 1e-4 ran for compression, but not for delta*2
    md = render_markdown(rows, "t", ["train.lr"])
    assert "| `delta*2` | 128 | (recipe defaults) | 2/6 | 0.750 | lr 0.0001 (1), lr 0.001 (1); 1 to run |" in md
    assert "| `attn*2` | 128 | (recipe defaults) | 1/6 | 0.200 | lr 0.0001 (1); 1 to run |" in md


def test_committed_mqar_results_render_as_one_lr_groups():
    """The committed H100 records (runs from before the lr axis and runs with train.lr=...) render
    as one row per pattern, each cell the best over lr with the lr that won."""
    records = load_records(ROOT / "bench" / "results" / "mqar.jsonl")
    md = render_markdown(records, "t", load_sweep_recipe(ROOT / "recipes" / "mqar.yaml")[1].best_over)
    first = md.split("## All runs")[0]
    for pattern in {r["pattern"] for r in records}:
        rows = [line for line in first.splitlines() if line.startswith(f"| `{pattern}` |")]
        assert rows, pattern
        cells = [c.strip() for row in rows for c in row.split("|")[2:-1]]
        assert all(c == "—" or "lr " in c for c in cells), rows
    assert "train.lr" not in first.split("| pattern |")[1].splitlines()[0]  # lr is not a column


def test_parse_best_over():
    assert parse_best_over(["train.lr,train.weight_decay", "train.lr"]) == ["train.lr", "train.weight_decay"]
    assert parse_best_over(["model.mixers.swa.window"]) == ["model.mixers.swa.window"]  # under a free mapping
    for bad, message in [("train.lrr", "not a recipe key"), ("train.lr=1e-3", "the key alone"),
                         ("model.d_model", "row or column"), ("sweep.max_seconds", "not a recipe key")]:
        with pytest.raises(SweepError, match=message):
            parse_best_over([bad])


LR_TINY = TINY.replace('sweep: {grid: ["model.pattern=delta*2,linear*2"], log_every: 1}',
                       'sweep: {grid: ["model.pattern=delta*2,linear*2", "train.lr=1e-3,3e-3"], best_over: [train.lr], '
                       'log_every: 1}')


def test_grid_keeps_best_over_axes_and_old_runs_count(tmp_path, capsys):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(LR_TINY)
    stem = tmp_path / "res"
    old = mqar_row("delta*2", 0.5, recorded_lr=0.003)  # a run from before the lr axis, at the recipe's lr 3e-3
    old.update(recipe="tiny", overrides=["model.pattern=delta*2"], key=point_key("tiny", ["model.pattern=delta*2"]))
    stem.with_suffix(".jsonl").write_text(json.dumps(old) + "\n")
    zoo("sweep", str(recipe), "--out", str(stem), "--grid", "model.pattern=delta*2", "--dry-run")
    out = capsys.readouterr().out
    assert "2 points, 1 already in" in out  # --grid replaced the pattern axis, kept the lr axis
    assert "todo  model.pattern=delta*2 train.lr=1e-3" in out and "done  model.pattern=delta*2 train.lr=3e-3" in out
    zoo("sweep", str(recipe), "--out", str(stem), "--grid", "model.pattern=delta*2", "train.lr=1e-3", "--dry-run")
    assert "1 points, 0 already in" in capsys.readouterr().out  # pinning the key drops its axis
    old["status"] = "cut"  # an unfinished old run does not count
    stem.with_suffix(".jsonl").write_text(json.dumps(old) + "\n")
    zoo("sweep", str(recipe), "--out", str(stem), "--grid", "model.pattern=delta*2", "--dry-run")
    assert "2 points, 0 already in" in capsys.readouterr().out


def test_best_over_from_the_command_line(tmp_path, capsys):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY.replace("steps: 3", "steps: 1").replace("val_every: 2", "val_every: 1"))
    stem = tmp_path / "res"
    # the recipe has no best-over keys: sweep.best_over=... (a runner option) sets them for this run's tables
    zoo("sweep", str(recipe), "--out", str(stem), "--device", "cpu", "--grid", "model.pattern=delta*2",
        "--grid", "train.lr=1e-3,1e-2", "sweep.best_over=[train.lr]")
    md = stem.with_suffix(".md").read_text()
    assert "best of 2" in md and md.split("## All runs")[1].count("| `delta*2`") == 2
    zoo("sweep", str(recipe), "--out", str(stem), "--render")  # the recipe's (empty) best_over: a table per lr
    assert "## train.lr=1e-3" in stem.with_suffix(".md").read_text()
    zoo("sweep", str(recipe), "--out", str(stem), "--render", "--best-over", "train.lr", "--best-over", "train.seed")
    md = stem.with_suffix(".md").read_text()
    assert "(lr 0.0" in md and "seed 1234" in md and "best of 2" in md
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(recipe), "--out", str(stem), "--best-over", "train.lrr", "--dry-run"])
    assert exc.value.code == 2 and "train.lrr" in capsys.readouterr().err


def test_workers_share_out_the_points(tmp_path, capfd):
    """Two worker processes train the four points between them: each exactly once, in one results file."""
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY)
    stem = tmp_path / "out" / "tiny"
    zoo("sweep", str(recipe), "--out", str(stem), "--device", "cpu", "--workers", "2",
        "--grid", "model.pattern=delta*2,linear*2", "--grid", "train.lr=1e-3,3e-3")
    out = capfd.readouterr().out
    records = load_records(stem.with_suffix(".jsonl"))
    assert sorted(r["key"] for r in records) == sorted({r["key"] for r in records}) and len(records) == 4
    assert all(r["status"] == "done" for r in records)
    assert "2 workers on cpu" in out and "[w0]" in out and "[w1]" in out
    assert "| `delta*2` |" in stem.with_suffix(".md").read_text()  # rendered once, at the end
    assert not list(stem.parent.glob("*.claims.*"))  # the claims folder is cleaned up
    zoo("sweep", str(recipe), "--out", str(stem), "--device", "cpu", "--workers", "2",
        "--grid", "model.pattern=delta*2,linear*2", "--grid", "train.lr=1e-3,3e-3")
    assert "4 already in" in capfd.readouterr().out and len(load_records(stem.with_suffix(".jsonl"))) == 4


def test_other_values_are_skipped_once_one_reaches(tmp_path, capsys):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY.replace('grid: ["model.pattern=delta*2,linear*2"]',
                                   'grid: ["model.pattern=delta*2", "train.lr=1e-3,3e-3"], best_over: [train.lr], '
                                   'stop_accuracy: 0.0'))
    stem = tmp_path / "res"
    zoo("sweep", str(recipe), "--out", str(stem), "--device", "cpu")
    recs = load_records(stem.with_suffix(".jsonl"))
    assert [(r["lr"], r["status"]) for r in recs] == [(1e-3, "reached")]  # accuracy >= 0 at the first evaluation
    assert "skipped, another value reached the stop accuracy: model.pattern=delta*2 train.lr=3e-3" in capsys.readouterr().out
    assert "(lr 0.001)" in stem.with_suffix(".md").read_text()
    zoo("sweep", str(recipe), "--out", str(stem), "--device", "cpu", "--dry-run")
    out = capsys.readouterr().out
    assert "1 skipped (another train.lr reached the stop accuracy), 0 to run" in out
    assert "skip  model.pattern=delta*2 train.lr=3e-3" in out


def test_reached_point_counts_unrun_values_as_skipped():
    rows = [mqar_row("delta*2", 0.997, "1e-3", status="reached"), mqar_row("linear*2", 0.5, "1e-3"),
            mqar_row("linear*2", 0.6, "3e-3"), mqar_row("linear*2", 0.4, "1e-2")]
    delta, linear = group_runs(rows, ["train.lr"])
    assert (delta.tried, delta.to_run, delta.skipped) == (1, 0, 2)
    assert (linear.tried, linear.to_run, linear.skipped) == (3, 0, 0)
    md = render_markdown(rows, "t", ["train.lr"])
    assert "| `delta*2` | 0.997 (lr 0.001, 2 skipped) |" in md and "\"N skipped\"" in md
