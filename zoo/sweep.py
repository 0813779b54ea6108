"""``zoo sweep``: train a synthetic-task recipe (MQAR, MAD) over a grid of overrides and tabulate accuracy.

    zoo sweep recipes/mqar.yaml \\
        --grid model.d_model:model.n_heads=64:1,128:1,256:1,512:2 \\
        --grid "model.pattern=delta*2,gdelta*2,linear*2,swa*2,attn*2,delta swa" \\
        --out bench/results/mqar  [KEY=VALUE ...]  [--budget 420]

Points run in-process, one after another, first ``--grid`` outermost (list easy settings first).
An axis ``a:b=1:2,3:4`` moves keys together (here a=1,b=2 then a=3,b=4); values are split at
commas outside brackets, so ``swa[window=64]`` is one value. ``KEY=VALUE`` pins a key for every
point (and drops a grid axis on that key); ``sweep.KEY=VALUE`` (e.g. ``sweep.max_seconds=30``) sets the
runner's options instead and is not part of a point's identity. With no ``--grid``, the recipe's
``sweep.grid`` is used.

Each run: a fresh ``ZooModel`` trained with AdamW + warmup + cosine (``train:`` section), bf16
autocast on CUDA, batches generated on the device fresh every step. The loss and the logits are
computed only at labelled positions (MQAR: the queries), which skips ~90% of the LM-head work.
Accuracy = fraction of query positions predicted exactly on the fixed validation batches
(``zoo.data.accuracy``), evaluated every ``train.val_every`` steps and at the end; a run stops early
once it reaches ``sweep.stop_accuracy`` or runs ``sweep.max_seconds``. MAD compression trains the
model with MAD's decoder head instead of the LM head (``zoo.train.heads``) and scores every position.

Results: ``OUT.jsonl`` gets one JSON line per finished run, appended at once, so a grid can span
several sessions; a rerun skips points already there (keyed by recipe name + overrides). After each
run ``OUT.json`` (all records) and ``OUT.md`` (tables) are rewritten, and ``OUT.png`` (accuracy
against d_model) when matplotlib is importable. ``--budget S`` bounds the whole invocation: a run
cut by it is recorded with status ``cut`` and is run again next time.

The recipe may hold a ``sweep:`` section (``SweepConfig``); the rest is a normal run recipe.
"""
from __future__ import annotations

import datetime as _dt
import itertools
import json
import math
import os
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import contextlib

import torch

from zoo.errors import ZooError
from zoo.train.heads import residual_stream, task_logits

class SweepError(ZooError):
    """A bad grid, recipe or results file; the message names the fix."""


@dataclass
class SweepConfig:
    """The optional ``sweep:`` section of a recipe."""

    grid: List[str] = field(default_factory=list)  # default axes, same syntax as --grid
    stop_accuracy: Optional[float] = None  # stop a run once validation accuracy reaches this
    max_seconds: Optional[float] = None  # wall-clock cap per run (training + evaluation)
    log_every: int = 100  # steps between progress lines


@dataclass
class Axis:
    keys: Tuple[str, ...]
    values: List[Tuple[str, ...]]


# ---- grid --------------------------------------------------------------------------------------

def split_values(text: str) -> List[str]:
    """Split at commas outside () and []; strips spaces. ``"a,b[x=1, y=2],(c d)*2"`` -> 3 values."""
    out, depth, cur = [], 0, []
    for c in text:
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        if c == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
    out.append("".join(cur).strip())
    return out


def parse_axis(text: str) -> Axis:
    """``key=v1,v2`` or ``k1:k2=a1:b1,a2:b2`` -> Axis. Raises SweepError on malformed input."""
    if "=" not in text:
        raise SweepError(f"--grid {text!r} is not KEY=V1,V2,... (e.g. model.d_model=64,128)")
    lhs, rhs = text.split("=", 1)
    keys = tuple(k.strip() for k in lhs.split(":"))
    if not all(keys):
        raise SweepError(f"--grid {text!r}: empty key name before '='")
    raw = split_values(rhs)
    if not all(raw):
        raise SweepError(f"--grid {text!r}: empty value (stray comma?)")
    values = []
    for v in raw:
        parts = tuple(p.strip() for p in v.split(":")) if len(keys) > 1 else (v,)
        if len(parts) != len(keys):
            raise SweepError(f"--grid {text!r}: value {v!r} has {len(parts)} part(s) for {len(keys)} keys "
                             f"{':'.join(keys)}; write each value as " + ":".join(f"<{k}>" for k in keys))
        values.append(parts)
    if len(set(values)) != len(values):
        raise SweepError(f"--grid {text!r}: repeated value")
    return Axis(keys, values)


def grid_points(axes: Sequence[Axis], pinned: Sequence[str] = ()) -> List[List[str]]:
    """The cartesian product of ``axes`` (first axis outermost) as lists of ``key=value`` overrides.

    ``pinned`` overrides (``key=value``) are appended to every point; an axis touching a pinned
    key is dropped. Two axes sharing a key are an error.
    """
    pinned_keys = {p.split("=", 1)[0].strip() for p in pinned}
    seen: Dict[str, int] = {}
    kept = []
    for i, axis in enumerate(axes):
        for k in axis.keys:
            if k in seen:
                raise SweepError(f"key {k!r} appears in two --grid axes; give it once")
            seen[k] = i
        if not pinned_keys.intersection(axis.keys):
            kept.append(axis)
    points = []
    for combo in itertools.product(*(a.values for a in kept)):
        point = [f"{k}={v}" for axis, vals in zip(kept, combo) for k, v in zip(axis.keys, vals)]
        points.append(point + list(pinned))
    return points


def point_key(recipe_name: str, overrides: Sequence[str]) -> str:
    """Identity of a point in a results file: recipe stem + its overrides, order-independent."""
    return recipe_name + " | " + " ".join(sorted(o.strip() for o in overrides))


# ---- results file ------------------------------------------------------------------------------

def load_records(path: Path) -> List[Dict[str, Any]]:
    """Records of a ``.jsonl`` results file (missing file: none). A torn last line is ignored."""
    if not path.is_file():
        return []
    records = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # a run killed while appending
                continue
            raise SweepError(f"{path}:{i + 1} is not valid JSON; fix or delete that line") from None
    return records


RERUN = ("cut", "error")  # statuses of points that run again on the next invocation


def finished_keys(records: Sequence[Dict[str, Any]]) -> set:
    """Keys of points that need no rerun (every status except ``cut`` and ``error``)."""
    return {r["key"] for r in records if r.get("status") not in RERUN}


def latest_per_key(records: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One record per key: the last finished one, else the last cut/error one; first-seen order."""
    best: Dict[str, Dict[str, Any]] = {}
    for r in records:
        old = best.get(r["key"])
        if old is None or r.get("status") not in RERUN or old.get("status") in RERUN:
            best[r["key"]] = r
    return list(best.values())


def append_record(path: Path, record: Dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


# ---- one run -----------------------------------------------------------------------------------

def max_labelled(labels) -> int:
    """Most labelled positions (labels != -100) in one row of ``labels`` [B, T] (a host sync)."""
    return int((labels != -100).sum(1).max())


def _query_logits(model, input_ids, labels, kmax: int):
    """(logits [B, kmax, V] float32, targets [B, kmax]) at each row's first ``kmax`` labelled positions.

    ZooModel.forward with the LM head applied only where it is scored: MQAR labels 64 of 512
    positions, so this skips ~90% of the head's FLOPs and memory. A row with fewer labelled
    positions is padded with unlabelled ones, whose target is -100 (ignored). No host sync.
    """
    pos = torch.sort((labels != -100).int(), dim=1, descending=True, stable=True).indices[:, :kmax]
    x = residual_stream(model, input_ids)
    h = x.gather(1, pos[..., None].expand(-1, -1, x.shape[-1]))  # [B, kmax, D]
    return model.lm_head(model.norm(h)).float(), labels.gather(1, pos)


def _scored_logits(model, head, input_ids, labels, kmax: int):
    """(logits, targets) where a batch is scored: query positions under the LM head, all under a task head."""
    if head is not None:
        return task_logits(model, head, input_ids), labels
    return _query_logits(model, input_ids, labels, kmax)


def _autocast(device, precision: str):
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def evaluate(model, val, device, precision: str, head=None) -> float:
    """Accuracy over every validation batch (query positions predicted exactly); one host sync."""
    was = model.training
    model.eval()
    if head is not None:
        head.eval()
    correct = torch.zeros((), device=device, dtype=torch.long)
    total = torch.zeros((), device=device, dtype=torch.long)
    with torch.no_grad(), _autocast(device, precision):
        for batch in val:
            logits, target = _scored_logits(model, head, batch["input_ids"], batch["labels"],
                                            max_labelled(batch["labels"]))
            scored = target != -100
            correct += ((logits.argmax(-1) == target) & scored).sum()
            total += scored.sum()
    model.train(was)
    if head is not None:
        head.train(was)
    return correct.item() / total.item() if total.item() else float("nan")


def run_point(cfg, sweep: SweepConfig, device: str, deadline: Optional[float] = None,
              echo: Callable[[str], None] = print) -> Dict[str, Any]:
    """Train ``cfg`` (a RunConfig with synthetic data) and return its result record (no key fields)."""
    import torch.nn.functional as F

    from zoo.data import build_datasets
    from zoo.model import ZooModel
    from zoo.train.heads import build_head
    from zoo.train.module import lr_lambda, param_groups

    tc, dev = cfg.train, torch.device(device)
    if not cfg.data.synthetic:
        raise SweepError(f"zoo sweep trains synthetic tasks (data.type mqar or mad), got data.type={cfg.data.type}")
    precision = tc.precision if tc.precision != "auto" else ("bf16-mixed" if dev.type == "cuda" else "32-true")
    if precision not in ("bf16-mixed", "32-true"):
        raise SweepError(f"train.precision={precision}: zoo sweep supports bf16-mixed and 32-true")
    torch.manual_seed(tc.seed)
    train, val = build_datasets(cfg.data, None, tc.batch_size, device=dev)
    if cfg.model.vocab_size < train.vocab_size:
        raise SweepError(f"model.vocab_size={cfg.model.vocab_size} is smaller than the task's vocabulary "
                         f"({train.vocab_size}, {train.name}); set model.vocab_size={train.vocab_size}")
    val_batches = [val[i] for i in range(len(val))]
    kmax = max_labelled(train.batch(0)["labels"])  # labelled positions per row; rechecked at log steps
    model = ZooModel(cfg.model).to(dev)
    m = cfg.model
    head = build_head(train.objective, m.d_model, m.vocab_size, m.norm_eps, m.init_std)
    groups = param_groups(model, tc.weight_decay)
    params = list(model.parameters())
    if head is not None:
        head.to(dev)
        groups += param_groups(head, tc.weight_decay)
        params += list(head.parameters())
    n_params = sum(p.numel() for p in params)
    fused = {"fused": True} if dev.type == "cuda" else {}
    opt = torch.optim.AdamW(groups, lr=tc.lr, betas=tuple(tc.betas), eps=tc.eps, **fused)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_lambda(s, tc.warmup_steps, tc.steps, tc.min_lr_ratio))
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    t_start = time.perf_counter()
    train_time, evals, status, loss_val = 0.0, [], "done", float("nan")
    best, best_step, step = -1.0, 0, 0

    def do_eval(at: int) -> float:
        nonlocal best, best_step
        acc = evaluate(model, val_batches, dev, precision, head)
        evals.append([at, round(acc, 5)])
        if acc > best:
            best, best_step = acc, at
        return acc

    model.train()
    if head is not None:
        head.train()
    t0 = time.perf_counter()
    for step in range(1, tc.steps + 1):
        batch = train.batch(step - 1)
        with _autocast(dev, precision):
            logits, target = _scored_logits(model, head, batch["input_ids"], batch["labels"], kmax)
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, tc.grad_clip or float("inf"))
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        now = time.perf_counter()
        stop = None
        if deadline is not None and now >= deadline:
            stop = "cut"
        elif sweep.max_seconds is not None and now - t_start >= sweep.max_seconds:
            stop = "time"
        if step % sweep.log_every == 0 or step % tc.val_every == 0 or stop or step == tc.steps:
            loss_val = loss.item()
            if max_labelled(batch["labels"]) > kmax:  # a task whose count varies: score every position
                kmax = train.seq_len
            if not math.isfinite(loss_val):
                status = "diverged"
                break
        if step % tc.val_every == 0 or stop or step == tc.steps:
            sync()
            train_time += time.perf_counter() - t0
            acc = do_eval(step)
            echo(f"  step {step:>6}  loss {loss_val:.4f}  acc {acc:.4f}  ({step / train_time:.1f} steps/s)")
            t0 = time.perf_counter()
            if sweep.stop_accuracy is not None and acc >= sweep.stop_accuracy:
                status = "reached"
                break
        elif step % sweep.log_every == 0:
            echo(f"  step {step:>6}  loss {loss_val:.4f}")
        if stop:
            status = stop
            break
    if status == "diverged":
        sync()
        train_time += time.perf_counter() - t0
        acc = do_eval(step)
    final = evals[-1][1] if evals else float("nan")
    return {
        "status": status, "accuracy": final, "best_accuracy": round(best, 5), "best_step": best_step,
        "steps": step, "max_steps": tc.steps, "loss": loss_val, "params": n_params,
        "steps_per_s": round(step / train_time, 2) if train_time > 0 else None,
        "seconds": round(time.perf_counter() - t_start, 1), "evals": evals,
        "pattern": cfg.model.pattern, "d_model": cfg.model.d_model, "n_heads": cfg.model.n_heads,
        "seq_len": train.seq_len, "task": train.name, "lr": tc.lr, "batch_size": tc.batch_size,
        "precision": precision,
    }


# ---- the sweep -----------------------------------------------------------------------------------

def load_sweep_recipe(path: str | Path):
    """(recipe DictConfig without its ``sweep:`` section, SweepConfig)."""
    from omegaconf import OmegaConf

    from zoo.config import ConfigError, load_yaml, merge

    recipe = load_yaml(path)
    section = recipe.pop("sweep", None) if "sweep" in recipe else None
    section = OmegaConf.to_container(section) if section is not None else {}
    try:
        sweep = merge(SweepConfig, section)
    except ConfigError as err:
        raise SweepError(f"{path}: sweep section: {err}") from None
    return recipe, sweep


def _device_name(device: str) -> str:
    d = torch.device(device)
    if d.type == "cuda":
        return torch.cuda.get_device_name(d)
    return "cpu"


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def run_sweep(recipe_path: str, grid: Sequence[str] = (), overrides: Sequence[str] = (), out: Optional[str] = None,
              budget: Optional[float] = None, device: Optional[str] = None, dry_run: bool = False,
              command: Optional[str] = None, extra: Optional[Dict[str, Any]] = None, report: bool = True,
              echo: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """Run every unfinished point of the grid; returns the records of this invocation's runs.

    ``extra``: fields added to every record (e.g. which kernel path ran); ``report=False`` only
    appends to STEM.jsonl (no .json/.md/.png), e.g. when only the results file is brought back.
    """
    from zoo.config import ConfigError, load_recipe

    t_begin = time.perf_counter()
    deadline = t_begin + budget if budget is not None else None
    recipe, sweep = load_sweep_recipe(recipe_path)
    name = Path(recipe_path).stem
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise SweepError(f"override {bad[0]!r} is not key=value (e.g. train.steps=2000)")
    runner = [o.split(".", 1)[1] for o in overrides if o.startswith("sweep.")]
    overrides = [o for o in overrides if not o.startswith("sweep.")]
    if runner:  # sweep.* settings steer the runner (time caps, early stop); they are not part of a point
        from zoo.config import merge

        try:
            sweep = merge(SweepConfig, asdict(sweep), overrides=runner)
        except ConfigError as err:
            raise SweepError(f"sweep override: {err}") from None
    axes = [parse_axis(g) for g in (grid or sweep.grid)]
    points = grid_points(axes, overrides)
    stem = Path(out) if out else Path("runs") / "sweeps" / name
    jsonl = stem.with_suffix(".jsonl")
    records = load_records(jsonl)
    done = finished_keys(records)
    configs = []
    for p in points:  # validate every point before training any
        try:
            configs.append(load_recipe(None, p, base=recipe))
        except ConfigError as err:
            raise SweepError(f"point {' '.join(p)}: {err}") from None
    todo = [(p, c) for p, c in zip(points, configs) if point_key(name, p) not in done]
    echo(f"sweep {name}: {len(points)} points, {len(points) - len(todo)} already in {jsonl}, {len(todo)} to run")
    if dry_run:
        for p in points:
            echo(("done  " if point_key(name, p) in done else "todo  ") + " ".join(p))
        return []
    device = device or default_device()
    card = _device_name(device)
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    new = []
    for i, (p, cfg) in enumerate(todo):
        if deadline is not None and time.perf_counter() >= deadline:
            echo(f"budget of {budget:.0f}s spent: {len(todo) - i} point(s) left for the next invocation")
            break
        echo(f"[{i + 1}/{len(todo)}] {' '.join(p)}")
        try:
            result = run_point(cfg, sweep, device, deadline, echo)
        except SweepError:
            raise
        except Exception as err:  # a point that crashes (a kernel, OOM) is recorded and the grid goes on
            import traceback

            echo(traceback.format_exc())
            result = {"status": "error", "error": f"{type(err).__name__}: {str(err)[:500]}", "accuracy": float("nan"),
                      "best_accuracy": float("nan"), "best_step": 0, "steps": 0, "max_steps": cfg.train.steps,
                      "loss": float("nan"), "params": 0, "steps_per_s": None, "seconds": 0.0, "evals": [],
                      "pattern": cfg.model.pattern, "d_model": cfg.model.d_model, "n_heads": cfg.model.n_heads,
                      "seq_len": cfg.data.resolved_seq_len(), "task": cfg.data.type, "lr": cfg.train.lr,
                      "batch_size": cfg.train.batch_size, "precision": cfg.train.precision}
        record = {"key": point_key(name, p), "recipe": name, "overrides": list(p), **result, "device": card,
                  "torch": torch.__version__, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "command": command or "", **(extra or {})}
        append_record(jsonl, record)
        new.append(record)
        echo(f"  -> {result['status']}: accuracy {result['accuracy']:.4f} after {result['steps']} steps "
             f"({result['seconds']}s, {result['steps_per_s']} steps/s)")
        if report:
            render(stem, echo=lambda _: None)
    if report and new:
        render(stem, echo=echo)
    return new


# ---- reports ------------------------------------------------------------------------------------

_AXES_IN_TABLE = ("model.d_model", "model.n_heads", "model.pattern")


def _setting(record: Dict[str, Any]) -> str:
    """The record's overrides other than width/heads/pattern: one table (and subplot) per setting."""
    rest = [o for o in record["overrides"] if o.split("=", 1)[0] not in _AXES_IN_TABLE]
    return " ".join(rest) or "(recipe defaults)"


def _fmt_acc(r: Optional[Dict[str, Any]]) -> str:
    if r is None:
        return "—"
    if r.get("status") == "error":
        return "error"
    mark = {"cut": " (cut)", "diverged": " (diverged)"}.get(r.get("status"), "")
    return f"{r['accuracy']:.3f}{mark}"


def _mad_average(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """Lines of a "MAD average" table: mean accuracy over the MAD tasks of each pattern/width/setting."""
    from zoo.data.config import MAD_TASKS

    groups: Dict[Tuple[str, int, str], Dict[str, float]] = {}
    for r in rows:
        task = str(r.get("task", "")).partition("mad:")[2].split("(")[0]
        if task not in MAD_TASKS or r.get("status") in RERUN:
            continue
        rest = " ".join(o for o in _setting(r).split() if not o.startswith("data.mad.task=")) or "(recipe defaults)"
        groups.setdefault((r["pattern"], r["d_model"], rest), {})[task] = r["accuracy"]
    if not groups:
        return []
    lines = ["## MAD average", "", f"Mean accuracy over the MAD tasks finished; a row with {len(MAD_TASKS)}/"
             f"{len(MAD_TASKS)} tasks is the six-task average (at the recipe's settings, not MAD's full protocol).",
             "", "| pattern | d_model | setting | tasks | mean accuracy |", "|---|---|---|---|---|"]
    for (pattern, width, rest), accs in groups.items():
        lines.append(f"| `{pattern}` | {width} | {rest} | {len(accs)}/{len(MAD_TASKS)} | "
                     f"{sum(accs.values()) / len(accs):.3f} |")
    return lines + [""]


def render_markdown(records: Sequence[Dict[str, Any]], title: str) -> str:
    rows = latest_per_key(records)
    lines = [f"# {title}", ""]
    devices = sorted({r.get("device", "?") for r in rows})
    dates = sorted(r.get("date", "") for r in rows)
    if rows:
        lines += [f"Card: {', '.join(devices)}. Dates: {dates[0]} to {dates[-1]} (UTC). "
                  f"torch {', '.join(sorted({r.get('torch', '?') for r in rows}))}.",
                  "Accuracy = fraction of query positions predicted exactly on the fixed validation batches "
                  "(last evaluation of the run). Status: done = all steps, reached = stopped at the target "
                  "accuracy, time = per-run time cap, cut = stopped by the session budget, error = crashed "
                  "(cut and error points run again next time).", ""]
    for setting in dict.fromkeys(_setting(r) for r in rows):
        group = [r for r in rows if _setting(r) == setting]
        widths = sorted({r["d_model"] for r in group})
        patterns = list(dict.fromkeys(r["pattern"] for r in group))
        lines += [f"## {setting}", "", "| pattern | " + " | ".join(f"d={w}" for w in widths) + " |",
                  "|---|" + "---|" * len(widths)]
        for pat in patterns:
            cells = [_fmt_acc(next((r for r in group if r["pattern"] == pat and r["d_model"] == w), None)) for w in widths]
            lines.append(f"| `{pat}` | " + " | ".join(cells) + " |")
        lines.append("")
    lines += _mad_average(rows)
    lines += ["## All runs", "",
              "| pattern | d_model | heads | setting | accuracy | best (step) | status | steps | steps/s | s | params | lr | card |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['pattern']}` | {r['d_model']} | {r['n_heads']} | {_setting(r)} | {r['accuracy']:.4f} | "
                     f"{r['best_accuracy']:.4f} ({r['best_step']}) | {r['status']} | {r['steps']}/{r['max_steps']} | "
                     f"{r['steps_per_s']} | {r['seconds']} | {r['params']:,} | {r['lr']:g} | {r.get('device', '?')} |")
    errors = [r for r in rows if r.get("status") == "error"]
    if errors:
        lines += ["", "## Errors", ""] + [f"- `{r['pattern']}` d={r['d_model']} ({_setting(r)}): {r.get('error')}"
                                          for r in errors]
    commands = list(dict.fromkeys(r.get("command") for r in rows if r.get("command")))
    if commands:
        lines += ["", "## Commands", ""] + [f"    {c}" for c in commands]
    return "\n".join(lines) + "\n"


def plot_results(records: Sequence[Dict[str, Any]], path: Path, title: str) -> bool:
    """Accuracy against d_model, one line per pattern, one panel per setting. False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [r for r in latest_per_key(records) if r.get("status") not in RERUN]
    settings = list(dict.fromkeys(_setting(r) for r in rows))
    if not settings:
        return False
    import textwrap

    common = set.intersection(*(set(st.split()) for st in settings))  # shown once, under the title

    def label(setting: str) -> str:
        own = [t for t in setting.split() if t not in common]
        return textwrap.fill(" ".join(own) or "(common setting)", 48)

    fig, axes = plt.subplots(1, len(settings), figsize=(5 * len(settings), 4.4), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        group = [r for r in rows if _setting(r) == setting]
        for pat in dict.fromkeys(r["pattern"] for r in group):
            pts = sorted((r["d_model"], r["accuracy"]) for r in group if r["pattern"] == pat)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=pat)
        ax.set_xscale("log", base=2)
        widths = sorted({r["d_model"] for r in group})
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.minorticks_off()
        ax.set_xlabel("d_model")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(label(setting), fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    shared = " ".join(t for t in settings[0].split() if t in common)
    fig.suptitle(title + ("\n" + textwrap.fill(shared, 160) if shared else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def render(stem: str | Path, title: Optional[str] = None, echo: Callable[[str], None] = print) -> None:
    """Rewrite STEM.json, STEM.md (and STEM.png) from STEM.jsonl; STEM.notes.md, if present, heads STEM.md."""
    stem = Path(stem)
    jsonl = stem.with_suffix(".jsonl")
    records = load_records(jsonl)
    if not records:
        raise SweepError(f"no results in {jsonl}: run the sweep first")
    title = title or f"zoo sweep: {records[0]['recipe']}"
    stem.with_suffix(".json").write_text(json.dumps(latest_per_key(records), indent=1) + "\n")
    md = render_markdown(records, title)
    notes = stem.parent / (stem.name + ".notes.md")
    if notes.is_file():
        head, _, rest = md.partition("\n\n")
        md = head + "\n\n" + notes.read_text().strip() + "\n\n" + rest
    stem.with_suffix(".md").write_text(md)
    made = plot_results(records, stem.with_suffix(".png"), title)
    echo(f"wrote {stem.with_suffix('.json')}, {stem.with_suffix('.md')}"
         + (f", {stem.with_suffix('.png')}" if made else " (no plot: matplotlib is not installed)"))


def command_line(recipe: str, overrides: Sequence[str] = (), grid: Sequence[str] = (), out: Optional[str] = None,
                 budget: Optional[float] = None) -> str:
    """The ``zoo sweep`` invocation that reproduces a run (for the results' Commands section)."""
    parts = ["zoo", "sweep", recipe, *overrides]
    for g in grid:
        parts += ["--grid", g]
    if out:
        parts += ["--out", str(out)]
    if budget is not None:
        parts += ["--budget", f"{budget:g}"]
    return " ".join(shlex.quote(p) for p in parts)
