"""``zoo eval``: score a run on lm-eval tasks, online or on the offline mirrors.

    run_eval(None, "swde,squad")         # latest run (runs/LATEST), real tasks from the Hub
    run_eval("runs/x", "recall", offline=True)   # mirrors: a downloaded copy, else SAMPLE files
    download("~/data/recall")            # while online: save the three validation splits

Online, the Hub is probed first (a HEAD request, a few seconds at most) so an air-gapped
machine gets one clear error naming ``--offline`` instead of lm-eval's long retries; with
``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` set the probe is skipped and lm-eval reads the
Hugging Face cache. squad_completion runs with the paper's recall settings (stop at "\\n",
48 tokens), like swde and fda. Results: a printed table and a JSON file under
``<run>/eval/``. When the shipped samples are scored, every printed line starts with
``SAMPLE`` and the JSON file is named ``sample-*.json``.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from zoo.errors import ZooError
from zoo.eval.tasks import HF_DATASETS, MIRRORED, RECALL_GEN_KWARGS, SCHEMAS, TASKS_DIR, mirror_names, resolve_tasks

SAMPLE_BANNER = ("SAMPLE scores: synthetic sample documents shipped with zoo (eval/data), "
                 "NOT SWDE, SQuAD or FDA results")


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def probe_hub(timeout: float = 3.0, url: Optional[str] = None) -> None:
    """Raise ZooError within about ``timeout`` seconds when the Hugging Face Hub cannot be reached.

    Any HTTP answer (even 401/404) counts as reachable; DNS failures, refused connections and
    timeouts do not. The request runs in a thread so a hanging DNS lookup is bounded too.
    """
    url = url or f"{hub_endpoint()}/api/datasets/{HF_DATASETS['swde']}"
    outcome: Dict[str, Any] = {}

    def attempt() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            outcome["ok"] = True
        except urllib.error.HTTPError:
            outcome["ok"] = True
        except (urllib.error.URLError, OSError, socket.timeout) as err:
            outcome["error"] = getattr(err, "reason", err)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if not outcome.get("ok"):
        reason = outcome.get("error", f"no answer within {timeout:.0f} s")
        raise ZooError(
            f"the Hugging Face Hub ({url.split('/api/')[0]}) is unreachable ({reason}). To proceed: "
            "`zoo eval --offline` scores the offline mirrors of swde, squad, fda (from the directory "
            "`zoo eval download DIR` filled on a connected machine, else the shipped SAMPLE files); "
            "or set HF_DATASETS_OFFLINE=1 if the datasets are already in your Hugging Face cache"
        )


def resolve_run_dir(run_dir: Optional[str | Path], runs_root: str | Path = "runs",
                    say: Callable[[str], None] = print) -> Path:
    """An explicit run directory, or the latest ``zoo train`` run under ``runs_root`` (announced)."""
    if run_dir is not None:
        return Path(run_dir)
    from zoo.runs import latest_run

    run = latest_run(runs_root)
    say(f"zoo eval: no run directory given; evaluating the latest run {run} (from {Path(runs_root) / 'LATEST'})")
    return run


def run_eval(run_dir: Optional[str | Path] = None, tasks: str | List[str] = "recall", *, limit: Optional[float] = None,
             batch_size: int = 16, device: Optional[str] = None, offline: bool = False,
             data_dir: Optional[str | Path] = None, output: Optional[str | Path] = None, runs_root: str | Path = "runs",
             model_args: Optional[Dict[str, Any]] = None, hub_timeout: float = 3.0,
             echo: Callable[[str], None] = print) -> Dict[str, Any]:
    """Evaluate a run; returns the report written to the JSON file (``report["json_path"]``)."""
    from zoo.eval.mirrors import data_dir as default_data_dir, has_offline_copy

    sample = False
    say = echo
    if offline:
        names = resolve_tasks(tasks, is_lm_eval_task=lambda name: False)
        directory = default_data_dir(data_dir)
        sample = not has_offline_copy(directory, names)
        task_args: List[Any] = mirror_names(names, use_samples=sample)
        if sample:
            def say(line: str) -> None:  # every line of a sample run carries the label
                echo(line if line.startswith("SAMPLE") else f"SAMPLE  {line}")
            say(SAMPLE_BANNER)
            say(f"(no offline copy in {directory}; run `zoo eval download {directory}` while online for real scores)")
            source = "shipped synthetic samples"
        else:
            source = f"offline copy in {directory}"
    else:
        names = resolve_tasks(tasks)  # a misspelt name is reported even without a network
        if not (_truthy("HF_HUB_OFFLINE") or _truthy("HF_DATASETS_OFFLINE")):
            probe_hub(hub_timeout)
        task_args, directory, source = list(names), None, "Hugging Face Hub"
    run = resolve_run_dir(run_dir, runs_root, say)

    import lm_eval
    from lm_eval.tasks import TaskManager

    from zoo.eval.lm import ZooLM

    if offline:
        manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False,
                              metadata={"zoo_eval_data": str(directory)})
    else:
        manager = TaskManager(include_path=str(TASKS_DIR))
        task_args = [_paper_squad(manager) if n == "squad_completion" else n for n in task_args]
    lm = ZooLM(pretrained=str(run), device=device, batch_size=batch_size, **(model_args or {}))
    say(f"zoo eval: {run} ({lm.model.config.pattern}, {lm.model.num_params() / 1e6:.2f}M params) on "
        f"{', '.join(n if isinstance(n, str) else n.task_name for n in task_args)} [{source}]")
    started = time.time()
    results = lm_eval.simple_evaluate(model=lm, tasks=task_args, limit=limit, task_manager=manager,
                                      log_samples=False, bootstrap_iters=0 if sample else 1000)
    report = {
        "run_dir": str(run), "model_dir": str(lm.model_dir), "sample": sample, "data_source": source,
        "tasks": names, "limit": limit, "seconds": round(time.time() - started, 1),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results["results"], "n-samples": results.get("n-samples", {}),
        "versions": results.get("versions", {}), "config": results.get("config", {}),
    }
    if sample:
        report["note"] = SAMPLE_BANNER
    for line in format_table(report["results"], report["n-samples"]):
        say(line)
    path = Path(output) if output else run / "eval" / f"{'sample-' if sample else ''}results-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    from lm_eval.utils import handle_non_serializable

    path.write_text(json.dumps(report, indent=2, default=handle_non_serializable) + "\n")
    report["json_path"] = str(path)
    say(f"zoo eval: results written to {path}")
    return report


def _paper_squad(manager) -> Any:
    """lm-eval's squad_completion task with the paper's recall generation settings."""
    task = manager.load(["squad_completion"])["tasks"]["squad_completion"]
    task.config.generation_kwargs = dict(RECALL_GEN_KWARGS, until=list(RECALL_GEN_KWARGS["until"]))
    return task


def format_table(results: Dict[str, Dict[str, Any]], n_samples: Optional[Dict[str, Any]] = None) -> List[str]:
    """Rows ``task  metric  value  ± stderr  n`` from lm-eval's ``results`` dict."""
    rows = [("task", "metric", "value", "stderr", "n")]
    for task, metrics in results.items():
        n = (n_samples or {}).get(task, {})
        n = n.get("effective", "") if isinstance(n, dict) else n
        for key, value in metrics.items():
            if key in ("alias", "sample_len") or "_stderr" in key or not isinstance(value, (int, float)):
                continue
            metric = key.split(",")[0]
            err = metrics.get(key.replace(metric, f"{metric}_stderr", 1))
            rows.append((task, metric, f"{value:.4f}", f"{err:.4f}" if isinstance(err, (int, float)) else "-", str(n)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def download(directory: str | Path, tasks=MIRRORED, hub_timeout: float = 3.0, load: Optional[Callable] = None,
             echo: Callable[[str], None] = print) -> List[Path]:
    """Save the validation split of each mirrored task as ``<directory>/<task>.json`` (run while online).

    ``load(repo) -> iterable of row dicts`` defaults to ``datasets.load_dataset(repo, "default",
    split="validation")``. Rows keep exactly the task's columns (a missing column is an error).
    """
    directory = Path(directory).expanduser()
    if load is None:
        probe_hub(hub_timeout)
        import datasets

        def load(repo: str):
            return datasets.load_dataset(repo, "default", split="validation")

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for task in tasks:
        columns = SCHEMAS[task]
        rows = []
        for row in load(HF_DATASETS[task]):
            missing = [c for c in columns if c not in row]
            if missing:
                raise ZooError(f"{HF_DATASETS[task]} rows lack columns {missing}; the mirror expects {list(columns)}")
            rows.append({c: row[c] for c in columns})
        path = directory / f"{task}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(rows, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        echo(f"zoo eval download: {len(rows)} {task} documents -> {path}")
        written.append(path)
    echo(f"zoo eval download: done; `zoo eval --offline --data-dir {directory}` (or ZOO_EVAL_DATA={directory}) uses them")
    return written
