"""`zoo eval`: task names, the Hub probe, offline mirrors end to end through lm-eval, labelling, CLI."""
import json
import re
import socket
import time

import pytest

import zoo.eval  # noqa: F401  (registers "zoo")
from zoo.errors import ZooError
from zoo.eval.runner import SAMPLE_BANNER, download, format_table, probe_hub, run_eval
from zoo.eval.tasks import GROUPS, TASKS_DIR, mirror_names, resolve_tasks

from conftest import N_TRAIN_DOCS, SAMPLE_TASKS, sample_rows


def test_friendly_names_and_groups():
    never = lambda name: False  # noqa: E731
    assert resolve_tasks("squad", never) == ["squad_completion"]
    assert resolve_tasks("recall", never) == ["swde", "squad_completion", "fda"]
    assert resolve_tasks("swde, squad,recall,lambada", never) == ["swde", "squad_completion", "fda", "lambada_openai"]
    assert resolve_tasks("zeroshot", never) == GROUPS["zeroshot"]
    assert resolve_tasks("mmlu_anatomy", lambda name: name == "mmlu_anatomy") == ["mmlu_anatomy"]
    assert mirror_names(["swde", "fda"], use_samples=True) == ["swde_sample", "fda_sample"]
    assert mirror_names(["squad_completion"], use_samples=False) == ["squad_completion_offline"]


def test_unknown_task_is_a_clear_error():
    with pytest.raises(ZooError) as err:
        resolve_tasks("swde,sqaud,bogus", lambda name: False)
    msg = str(err.value)
    assert "unknown task name(s): sqaud, bogus" in msg
    for name in ("squad", "fda", "recall", "zeroshot", "hellaswag"):
        assert name in msg
    with pytest.raises(ZooError, match="no offline mirror for piqa"):
        mirror_names(["swde", "piqa"], use_samples=True)


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unreachable_hub_fails_fast_with_the_way_forward(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    start = time.time()
    with pytest.raises(ZooError, match=r"Hub .* is unreachable.*zoo eval --offline.*zoo eval download DIR"):
        run_eval(tmp_path / "no-such-run", "swde")
    assert time.time() - start < 5


def test_probe_gives_up_on_a_silent_server():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # accepts the connection, never answers
    try:
        start = time.time()
        with pytest.raises(ZooError, match="unreachable"):
            probe_hub(timeout=0.5, url=f"http://127.0.0.1:{server.getsockname()[1]}/api/datasets/x")
        assert time.time() - start < 3
    finally:
        server.close()


def _contains(response, target):
    return int(bool(re.search(re.escape(target), response, re.IGNORECASE)))


def test_simple_evaluate_on_offline_mirrors_yields_contains(trained_run):
    """lm-eval end to end (model "zoo" by name) on the sample mirrors with a tiny trained model."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    run, loss = trained_run
    assert loss < 0.5
    manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    out = lm_eval.simple_evaluate(model="zoo", model_args=f"pretrained={run},device=cpu,batch_size=4",
                                  tasks=["recall_sample"], task_manager=manager, limit=N_TRAIN_DOCS,
                                  log_samples=True, bootstrap_iters=0)
    scores = {task: out["results"][f"{task}_sample"]["contains,none"] for task in SAMPLE_TASKS}
    for task in SAMPLE_TASKS:
        samples = out["samples"][f"{task}_sample"]
        assert len(samples) == N_TRAIN_DOCS
        recomputed = [_contains(s["resps"][0][0], s["target"]) for s in samples]
        assert [s["contains"] for s in samples] == recomputed
        assert scores[task] == pytest.approx(sum(recomputed) / len(recomputed))
        assert samples[0]["arguments"][0][1] == {"until": ["\n"], "max_gen_toks": 48}
    assert sum(scores.values()) > 0  # the model learnt some answers: contains is computed, not trivially 0


def test_offline_sample_run_labels_every_line(trained_run, tmp_path):
    run, _ = trained_run
    lines = []
    report = run_eval(run, "recall", offline=True, data_dir=tmp_path / "empty", limit=1, batch_size=2,
                      device="cpu", echo=lines.append)
    assert report["sample"] is True and lines[0] == SAMPLE_BANNER
    assert all(line.startswith("SAMPLE") for line in lines)
    assert any("swde_sample" in line and "contains" in line for line in lines)
    path = report["json_path"]
    assert path.startswith(str(run / "eval" / "sample-results-"))
    saved = json.loads(open(path).read())
    assert saved["note"] == SAMPLE_BANNER and set(saved["results"]) == {f"{t}_sample" for t in SAMPLE_TASKS}


def test_download_then_offline_run_is_not_a_sample(trained_run, tmp_path):
    """A data dir filled by `download` (fake loader here) is scored as the real task's mirror."""
    run, _ = trained_run

    def fake_load(repo):
        task = {"hazyresearch/based-swde-v2": "swde", "hazyresearch/based-fda": "fda",
                "hazyresearch/based-squad": "squad_completion"}[repo]
        return [dict(row, extra_column="dropped") for row in sample_rows(task)[:2]]

    data = tmp_path / "data"
    paths = download(data, load=fake_load, echo=lambda line: None)
    assert sorted(p.name for p in paths) == ["fda.json", "squad_completion.json", "swde.json"]
    assert "extra_column" not in json.loads(paths[0].read_text())[0]
    lines = []
    report = run_eval(run, "fda", offline=True, data_dir=data, device="cpu", output=tmp_path / "r.json",
                      echo=lines.append)
    assert report["sample"] is False and "fda_offline" in report["results"]
    assert not any("SAMPLE" in line for line in lines)
    assert report["n-samples"]["fda_offline"]["effective"] == 2


def test_format_table():
    rows = format_table({"swde": {"alias": "swde", "sample_len": 8, "contains,none": 0.5, "contains_stderr,none": "N/A"},
                         "piqa": {"acc,none": 0.625, "acc_stderr,none": 0.01}}, {"swde": {"effective": 8}})
    assert rows[0].split() == ["task", "metric", "value", "stderr", "n"]
    assert rows[1].split() == ["swde", "contains", "0.5000", "-", "8"]  # sample_len is not a score
    assert rows[2].split() == ["piqa", "acc", "0.6250", "0.0100"]


def test_cli_eval_latest_run_and_errors(trained_run, tmp_path, monkeypatch, capsys):
    from zoo.cli import main

    run, _ = trained_run
    monkeypatch.chdir(run.parent.parent)  # runs/LATEST names this run
    monkeypatch.setenv("ZOO_EVAL_DATA", str(tmp_path / "none"))
    with pytest.raises(SystemExit) as done:
        main(["eval", "--offline", "--tasks", "squad", "--limit", "1", "--device", "cpu"])
    assert done.value.code == 0
    out = capsys.readouterr().out.splitlines()
    assert any(f"evaluating the latest run runs/{run.name}" in line for line in out)
    assert all(line.startswith("SAMPLE") for line in out if line.strip())
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--offline", "--tasks", "swde,bogus"])
    assert exit_.value.code == 2
    assert "unknown task name(s): bogus" in capsys.readouterr().err


def test_cli_generate(trained_run, monkeypatch, capsys):
    from zoo.cli import main

    run, _ = trained_run
    row = sample_rows("fda")[0]
    with pytest.raises(SystemExit, match="0"):
        main(["generate", str(run), row["text"].strip(), "--max-new-tokens", "12", "--device", "cpu"])
    printed = capsys.readouterr().out
    assert printed.startswith(row["text"].strip()) and row["value"] in printed
    monkeypatch.chdir(run.parent.parent)
    with pytest.raises(SystemExit, match="0"):
        main(["generate", "Year:", "-n", "3", "--device", "cpu"])
    assert "latest run" in capsys.readouterr().out


def test_online_squad_completion_gets_the_paper_settings():
    """lm-eval 0.4.13 gives squad_completion 256 tokens and "\\n\\n"; zoo eval pins "\\n" and 48."""
    from zoo.eval.mirrors import SQuADCompletionMirror
    from zoo.eval.runner import _paper_squad

    task = SQuADCompletionMirror({"metadata": {"zoo_source": "sample"}})
    task.config.generation_kwargs = {"until": ["\n\n"], "max_gen_toks": 256}  # lm-eval's default for it

    class Manager:
        def load(self, names):
            assert names == ["squad_completion"]
            return {"tasks": {"squad_completion": task}}

    patched = _paper_squad(Manager())
    doc = patched.eval_docs[0]
    (request,) = patched.construct_requests(doc, patched.doc_to_text(doc), metadata=("squad_completion", 0, 1))
    assert request.arguments[1] == {"until": ["\n"], "max_gen_toks": 48}
