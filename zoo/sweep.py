"""``zoo sweep``: train a synthetic-task recipe (MQAR, MAD) over a grid of overrides and tabulate accuracy.

    zoo sweep recipes/mqar.yaml \\
        --grid model.d_model:model.n_heads=64:1,128:1,256:1,512:2 \\
        --grid "model.pattern=delta*2,gdelta*2,linear*2,swa*2,attn*2,delta swa" \\
        --out bench/results/mqar  [KEY=VALUE ...]  [--budget 420]

Points run in-process, one after another, first ``--grid`` outermost (list easy settings first);
``--workers N`` runs N at a time in worker processes that share out the points (on CUDA spread over
the visible GPUs: a tiny model's step is bound by the host's kernel launches, so one GPU trains
several side by side at little cost to each).
An axis ``a:b=1:2,3:4`` moves keys together (here a=1,b=2 then a=3,b=4); values are split at
commas outside brackets, so ``swa[window=64]`` is one value. ``KEY=VALUE`` pins a key for every
point (and drops a grid axis on that key); ``sweep.KEY=VALUE`` (e.g. ``sweep.max_seconds=30``) sets the
runner's options instead and is not part of a point's identity. With no ``--grid``, the recipe's
``sweep.grid`` is used.

Best over (the papers' protocol): Zoology and the DeltaNet paper report, per model and width, the best
accuracy over a learning-rate sweep. ``sweep.best_over: [train.lr]`` in the recipe (or ``--best-over
train.lr``) groups points that differ only in those keys: the summary tables show the group's best
accuracy and the value that won (``0.998 (lr 0.001, best of 3)``), and "All runs" keeps every run. A
``--grid`` replaces the recipe's axes except those on best-over keys, which every point keeps (pin the
key, e.g. ``train.lr=3e-3``, or give it its own ``--grid`` to change that). A run recorded before its
best-over axis existed (no ``train.lr`` among its overrides) stands for the point at the value it
recorded (``lr``), so adding an lr axis reruns nothing already finished. Once one value of a point
reaches ``sweep.stop_accuracy`` (status ``reached``), its other values are not run (the tables say
``2 skipped``): the question is whether the model solves the task at that width, and the answer is in.

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

import contextlib
import datetime as _dt
import functools
import hashlib
import itertools
import json
import math
import os
import shlex
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

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
    best_over: List[str] = field(default_factory=list)  # keys to take the best accuracy over, e.g. [train.lr]


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


def _key(override: str) -> str:
    return override.split("=", 1)[0].strip()


# ---- best over ---------------------------------------------------------------------------------

_AXES_IN_TABLE = ("model.d_model", "model.n_heads", "model.pattern")  # a table's rows and columns
_RECORD_FIELD = {"train.lr": "lr", "train.weight_decay": "weight_decay", "train.seed": "seed"}  # key -> record field


def parse_best_over(items: Sequence[str]) -> List[str]:
    """``["train.lr,train.weight_decay"]`` or ``["train.lr", "train.weight_decay"]`` -> the checked keys."""
    from omegaconf import OmegaConf

    from zoo.config import RunConfig

    keys = list(dict.fromkeys(k.strip() for item in items for k in str(item).split(",") if k.strip()))
    schema = OmegaConf.structured(RunConfig)
    for k in keys:
        if "=" in k:
            raise SweepError(f"best over {k!r}: give the key alone (e.g. train.lr); its values come from the grid")
        if k in _AXES_IN_TABLE:
            raise SweepError(f"best over {k!r}: {k} is a row or column of the tables; take the best over "
                             "training settings such as train.lr")
        if k.split(".")[0] not in ("model", "data", "train") or not _in_schema(schema, k.split(".")):
            raise SweepError(f"best over {k!r}: not a recipe key (e.g. train.lr, train.weight_decay, train.seed)")
    return keys


def _in_schema(node, path: Sequence[str]) -> bool:
    """Whether the dotted ``path`` names a field of the structured config ``node`` (anything under a free mapping)."""
    from omegaconf import DictConfig, OmegaConf

    for i, seg in enumerate(path):
        if not isinstance(node, DictConfig) or seg not in node:
            return False
        node = node[seg]
        if isinstance(node, DictConfig) and OmegaConf.get_type(node) is dict and i < len(path) - 1:
            return True  # e.g. model.mixers.swa.window: a mapping of free keys
    return True


def best_over_value(record: Dict[str, Any], key: str) -> str:
    """The record's value of ``key``: its override, else the field it recorded (a run from before the axis)."""
    raw = next((o.split("=", 1)[1].strip() for o in record.get("overrides", ()) if _key(o) == key),
               record.get(_RECORD_FIELD.get(key, ""), "?"))
    try:
        return f"{float(raw):g}"
    except (TypeError, ValueError):
        return str(raw)


def _label(record: Dict[str, Any], best_over: Sequence[str]) -> str:
    """``lr 0.001`` (``lr 0.001 weight_decay 0`` for two keys): the best-over values of a run."""
    return " ".join(f"{k.rsplit('.', 1)[-1]} {best_over_value(record, k)}" for k in best_over)


@dataclass
class Group:
    """The runs of one point that differ only in the best-over keys (one run each when there are none)."""

    setting: str  # its table: the overrides other than the table's rows/columns and the best-over keys
    members: List[Dict[str, Any]]
    best: Dict[str, Any] = field(default_factory=dict)  # highest accuracy of the finished members (else of all)
    tried: int = 0  # best-over values with a finished run
    to_run: int = 0  # values seen elsewhere in its table with no finished run here (cut, error or not run yet)
    skipped: int = 0  # such values left unrun because a member reached sweep.stop_accuracy (then to_run is 0)


def _acc(record: Dict[str, Any]) -> float:
    acc = record.get("accuracy", float("nan"))
    return acc if isinstance(acc, (int, float)) and math.isfinite(acc) else -1.0


def _group_ident(recipe: Optional[str], overrides: Sequence[str], best_over: Sequence[str]) -> Tuple:
    """A point's identity with its best-over keys left out: the points of one Group share it."""
    return recipe, tuple(sorted(o.strip() for o in overrides if _key(o) not in best_over))


def reached_groups(records: Sequence[Dict[str, Any]], best_over: Sequence[str]) -> set:
    """Identities (``_group_ident``) of the points with a run that reached sweep.stop_accuracy."""
    return {_group_ident(r.get("recipe"), r["overrides"], best_over) for r in records if r.get("status") == "reached"}


def group_runs(records: Sequence[Dict[str, Any]], best_over: Sequence[str] = ()) -> List[Group]:
    """One Group per point of ``records`` (latest record per key), best-over keys left out of the identity."""
    groups: Dict[Tuple, Group] = {}
    for r in latest_per_key(records):
        ident = _group_ident(r.get("recipe"), r["overrides"], best_over)
        groups.setdefault(ident, Group(_setting(r, best_over), [])).members.append(r)
    seen: Dict[str, set] = {}
    for g in groups.values():
        seen.setdefault(g.setting, set()).update(_label(r, best_over) for r in g.members)
    for g in groups.values():
        done = [r for r in g.members if r.get("status") not in RERUN]
        g.best = max(done or g.members, key=_acc)  # the first of equals
        g.tried = len({_label(r, best_over) for r in done})
        g.to_run = len(seen[g.setting] - {_label(r, best_over) for r in (done or [g.best])})
        if best_over and g.best.get("status") == "reached":
            g.skipped, g.to_run = g.to_run, 0
    return list(groups.values())


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
STATUSES = ("done", "reached", "time", "diverged", "cut", "error")  # a run's status, as recorded


def finished_records(records: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Key -> last record of the points that need no rerun (every status except ``cut`` and ``error``)."""
    return {r["key"]: r for r in records if r.get("status") not in RERUN}


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
        "seq_len": train.seq_len, "task": train.name, "lr": tc.lr, "weight_decay": tc.weight_decay,
        "seed": tc.seed, "batch_size": tc.batch_size, "precision": precision,
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
        sweep.best_over = parse_best_over(sweep.best_over)
    except (ConfigError, SweepError) as err:
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
              best_over: Optional[Sequence[str]] = None, workers: int = 1, claims: Optional[str] = None,
              rerun: Sequence[str] = (), echo: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """Run every unfinished point of the grid; returns the records of this invocation's runs.

    ``extra``: fields added to every record (e.g. which kernel path ran); ``report=False`` only
    appends to STEM.jsonl (no .json/.md/.png), e.g. when only the results file is brought back.
    ``best_over``: keys the reports take the best over (None: the recipe's ``sweep.best_over``).
    ``workers``: processes training points side by side (``_run_workers``); ``claims``: the folder
    through which such workers share out the points (one claim file per point). ``rerun``: statuses
    (e.g. ``time``) whose points run again, as ``cut`` and ``error`` always do; the new record wins.
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
    best_over = parse_best_over(sweep.best_over if best_over is None else best_over)
    axes = [parse_axis(g) for g in grid]
    named = {k for a in axes for k in a.keys}
    axes += [a for a in map(parse_axis, sweep.grid)  # every point keeps the recipe's best-over axes
             if not grid or (set(a.keys) & set(best_over) and not set(a.keys) & named)]
    points = grid_points(axes, overrides)
    stem = Path(out) if out else Path("runs") / "sweeps" / name
    jsonl = stem.with_suffix(".jsonl")
    records = load_records(jsonl)
    configs = []
    for p in points:  # validate every point before training any
        try:
            configs.append(load_recipe(None, p, base=recipe))
        except ConfigError as err:
            raise SweepError(f"point {' '.join(p)}: {err}") from None
    bad = sorted(set(rerun) - set(STATUSES))
    if bad:
        raise SweepError(f"--rerun {bad[0]}: not a run status (use {', '.join(STATUSES)})")
    finished = {k: r for k, r in finished_records(records).items() if r.get("status") not in rerun}
    done = [_is_done(finished, name, p, c, best_over) for p, c in zip(points, configs)]

    def reached(point: Sequence[str], groups: set) -> bool:  # another value of the point solved it
        return bool(best_over) and "reached" not in rerun and _group_ident(name, point, best_over) in groups

    solved = reached_groups(records, best_over)
    skip = [not d and reached(p, solved) for p, d in zip(points, done)]
    todo = [(p, c) for p, c, d, k in zip(points, configs, done, skip) if not (d or k)]
    echo(f"sweep {name}: {len(points)} points, {sum(done)} already in {jsonl}"
         + (f", {sum(skip)} skipped (another {'/'.join(best_over)} reached the stop accuracy)" if any(skip) else "")
         + f", {len(todo)} to run")
    if dry_run:
        for p, d, k in zip(points, done, skip):
            echo(("done  " if d else "skip  " if k else "todo  ") + " ".join(p))
        return []
    device = device or default_device()
    if workers > 1 and todo:
        return _run_workers(workers, device, stem, echo, report, best_over, dict(
            recipe_path=recipe_path, grid=list(grid), overrides=list(overrides) + [f"sweep.{o}" for o in runner],
            out=str(stem), budget=None if deadline is None else deadline - time.perf_counter(),
            command=command, extra=extra, best_over=best_over, rerun=list(rerun)))
    card = _device_name(device)
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    new = []
    for i, (p, cfg) in enumerate(todo):
        if deadline is not None and time.perf_counter() >= deadline:
            echo(f"budget of {budget:.0f}s spent: {len(todo) - i} point(s) left for the next invocation")
            break
        if claims is not None and not _claim(Path(claims), point_key(name, p)):
            continue  # another worker runs it
        if reached(p, reached_groups(load_records(jsonl), best_over)):  # reached since this invocation began
            echo(f"[{i + 1}/{len(todo)}] skipped, another value reached the stop accuracy: {' '.join(p)}")
            continue
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
                      "weight_decay": cfg.train.weight_decay, "seed": cfg.train.seed,
                      "batch_size": cfg.train.batch_size, "precision": cfg.train.precision}
        record = {"key": point_key(name, p), "recipe": name, "overrides": list(p), **result, "device": card,
                  "torch": torch.__version__, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "command": command or "", **(extra or {})}
        append_record(jsonl, record)
        new.append(record)
        echo(f"  -> {result['status']}: accuracy {result['accuracy']:.4f} after {result['steps']} steps "
             f"({result['seconds']}s, {result['steps_per_s']} steps/s)")
        if report:
            render(stem, echo=lambda _: None, best_over=best_over)
    if report and new:
        render(stem, echo=echo, best_over=best_over)
    return new


def _claim(folder: Path, key: str) -> bool:
    """True for the first caller to claim ``key`` in ``folder`` (an exclusively created file), else False."""
    try:
        os.close(os.open(folder / hashlib.sha1(key.encode()).hexdigest(), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def _run_workers(workers: int, device: str, stem: Path, echo: Callable[[str], None], report: bool,
                 best_over: Sequence[str], kwargs: Dict[str, Any]) -> List[Dict[str, Any]]:
    """``workers`` processes, each a ``run_sweep`` over the same grid that claims its next unclaimed point.

    Tiny synthetic models leave a GPU mostly idle (each step is a few hundred short kernels, bound by
    the host's launches), so several runs share one GPU at little cost to each; with ``device="cuda"``
    the workers go round-robin over the visible GPUs. Every worker appends its records to the shared
    STEM.jsonl (one line per write); the tables are rendered once, at the end.
    """
    import multiprocessing
    import tempfile

    jsonl = stem.with_suffix(".jsonl")
    before = len(load_records(jsonl))
    if device == "cuda" and torch.cuda.is_available():
        devices = [f"cuda:{i % torch.cuda.device_count()}" for i in range(workers)]
    else:
        devices = [device] * workers
    threads = max(1, (os.cpu_count() or 1) // workers)
    echo(f"{workers} workers on {', '.join(sorted(set(devices)))}, {threads} CPU thread(s) each")
    stem.parent.mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    with tempfile.TemporaryDirectory(prefix=stem.name + ".claims.", dir=stem.parent) as claims:
        procs = [ctx.Process(target=_worker, args=(i, devices[i], threads, dict(kwargs, claims=claims)))
                 for i in range(workers)]
        try:
            for p in procs:
                p.start()
            for p in procs:
                p.join()
        except KeyboardInterrupt as why:  # Ctrl-C or SIGTERM: the finished runs are in STEM.jsonl
            echo(f"stopped ({why or 'interrupt'}): the runs in flight are not recorded")
        finally:  # no worker outlives the sweep
            signal.signal(signal.SIGTERM, previous)
            for p in procs:
                if p.is_alive():
                    p.terminate()
                    p.join()
    failed = [i for i, p in enumerate(procs) if p.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        echo(f"worker(s) {', '.join(map(str, failed))} exited with an error (see their lines above)")
    new = load_records(jsonl)[before:]
    if report and new:
        render(stem, echo=echo, best_over=best_over)
    return new


def _worker(index: int, device: str, threads: int, kwargs: Dict[str, Any]) -> None:
    torch.set_num_threads(threads)
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))  # Triton launches on the current device
    run_sweep(device=device, report=False, echo=lambda line: print(f"[w{index}] {line}", flush=True), **kwargs)


def _is_done(finished: Dict[str, Dict[str, Any]], name: str, point: Sequence[str], cfg,
             best_over: Sequence[str]) -> bool:
    """Whether ``point`` has a finished record (``finished_records``), counting one from before its best-over axes.

    Such a record lacks the point's best-over overrides and stands for the point when the values it
    recorded (``lr``, ``weight_decay``, ``seed``) equal the point's.
    """
    if point_key(name, point) in finished:
        return True
    own = [o for o in point if _key(o) in best_over and _key(o) in _RECORD_FIELD]
    old = finished.get(point_key(name, [o for o in point if o not in own])) if own else None
    return old is not None and all(
        old.get(_RECORD_FIELD[_key(o)]) == functools.reduce(getattr, _key(o).split("."), cfg) for o in own)


# ---- reports ------------------------------------------------------------------------------------

def _setting(record: Dict[str, Any], best_over: Sequence[str] = ()) -> str:
    """The record's overrides other than width/heads/pattern (and the best-over keys): one table per setting."""
    rest = [o for o in record["overrides"] if _key(o) not in _AXES_IN_TABLE and _key(o) not in best_over]
    return " ".join(rest) or "(recipe defaults)"


def _fmt_group(g: Optional[Group], best_over: Sequence[str]) -> str:
    """A summary cell: ``0.993 (cut)``, ``0.028 (time cap at 2,390 steps)``; with best-over keys
    ``0.998 (lr 0.001, best of 2, 1 to run)``."""
    if g is None:
        return "—"
    r = g.best
    notes = [r["status"]] if r.get("status") in ("cut", "diverged") else []
    if r.get("status") == "time":  # stopped by sweep.max_seconds short of its schedule: not a converged result
        notes.append(f"time cap at {r['steps']:,} steps")
    if best_over:
        notes.append(_label(r, best_over))
        if g.tried > 1:
            notes.append(f"best of {g.tried}")
        if g.to_run:
            notes.append(f"{g.to_run} to run")
        if g.skipped:
            notes.append(f"{g.skipped} skipped")
    text = "error" if r.get("status") == "error" else f"{r['accuracy']:.3f}"
    return text + (f" ({', '.join(notes)})" if notes else "")


def _mad_average(groups: Sequence[Group], best_over: Sequence[str]) -> List[str]:
    """Lines of a "MAD average" table: mean accuracy over the MAD tasks of each pattern/width/setting."""
    from collections import Counter

    from zoo.data.config import MAD_TASKS

    rows: Dict[Tuple[str, int, str], Dict[str, Group]] = {}
    for g in groups:
        r = g.best
        task = str(r.get("task", "")).partition("mad:")[2].split("(")[0]
        if task not in MAD_TASKS or r.get("status") in RERUN:
            continue
        rest = " ".join(o for o in g.setting.split() if not o.startswith("data.mad.task=")) or "(recipe defaults)"
        rows.setdefault((r["pattern"], r["d_model"], rest), {})[task] = g
    if not rows:
        return []
    extra = " won by (tasks) |" if best_over else ""
    lines = ["## MAD average", "", f"Mean accuracy over the MAD tasks finished; a row with {len(MAD_TASKS)}/"
             f"{len(MAD_TASKS)} tasks is the six-task average (at the recipe's settings, not MAD's full protocol).",
             "", "| pattern | d_model | setting | tasks | mean accuracy |" + extra,
             "|---|---|---|---|---|" + ("---|" if best_over else "")]
    for (pattern, width, rest), by_task in rows.items():
        line = (f"| `{pattern}` | {width} | {rest} | {len(by_task)}/{len(MAD_TASKS)} | "
                f"{sum(g.best['accuracy'] for g in by_task.values()) / len(by_task):.3f} |")
        if best_over:
            wins = Counter(_label(g.best, best_over) for g in by_task.values())
            to_run = sum(g.to_run for g in by_task.values())
            won = ", ".join(f"{lab} ({n})" for lab, n in wins.items())
            line += f" {won}{f'; {to_run} to run' if to_run else ''} |"
        lines.append(line)
    return lines + [""]


def render_markdown(records: Sequence[Dict[str, Any]], title: str, best_over: Sequence[str] = ()) -> str:
    """The results page: a table per setting (best over ``best_over``), the MAD average, every run."""
    rows = latest_per_key(records)
    groups = group_runs(records, best_over)
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
    if rows and best_over:
        keys = ", ".join(f"`{k}`" for k in best_over)
        lines += [f"Tables before \"All runs\" show each point's best accuracy over {keys} and the value that won; "
                  "\"best of N\": N values finished for that point; \"N to run\": values run elsewhere in the table "
                  "with no finished run for this point (cut, error or not run yet); \"N skipped\": such values not run "
                  "because another value had reached the stop accuracy. \"All runs\" lists every run.", ""]
    for setting in dict.fromkeys(g.setting for g in groups):
        table = [g for g in groups if g.setting == setting]
        widths = sorted({g.best["d_model"] for g in table})
        patterns = list(dict.fromkeys(g.best["pattern"] for g in table))
        lines += [f"## {setting}", "", "| pattern | " + " | ".join(f"d={w}" for w in widths) + " |",
                  "|---|" + "---|" * len(widths)]
        for pat in patterns:
            cells = [_fmt_group(next((g for g in table if g.best["pattern"] == pat and g.best["d_model"] == w), None),
                                best_over) for w in widths]
            lines.append(f"| `{pat}` | " + " | ".join(cells) + " |")
        lines.append("")
    lines += _mad_average(groups, best_over)
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


def plot_results(records: Sequence[Dict[str, Any]], path: Path, title: str, best_over: Sequence[str] = ()) -> bool:
    """Accuracy (best over ``best_over``) against d_model, a line per pattern (one colour in every
    panel), a panel per setting; a hollow marker is a run stopped by the time cap short of its schedule.

    False without matplotlib.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [(g.setting, g.best) for g in group_runs(records, best_over) if g.best.get("status") not in RERUN]
    settings = list(dict.fromkeys(st for st, _ in rows))
    if not settings:
        return False
    import textwrap

    common = set.intersection(*(set(st.split()) for st in settings))  # shown once, under the title

    def label(setting: str) -> str:
        own = [t for t in setting.split() if t not in common]
        return textwrap.fill(" ".join(own) or "(common setting)", 48)

    colour = {pat: f"C{i % 10}" for i, pat in enumerate(dict.fromkeys(r["pattern"] for _, r in rows))}
    capped = False
    fig, axes = plt.subplots(1, len(settings), figsize=(5 * len(settings), 4.4), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        group = [r for st, r in rows if st == setting]
        for pat in dict.fromkeys(r["pattern"] for r in group):
            pts = sorted((r["d_model"], r["accuracy"], r.get("status") == "time") for r in group if r["pattern"] == pat)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=colour[pat], label=pat)
            for d, acc, _ in (p for p in pts if p[2]):
                ax.plot([d], [acc], "o", mfc="white", mec=colour[pat])
                capped = True
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
    best = f" (best over {', '.join(best_over)})" if best_over else ""
    fig.suptitle(title + best + ("\n" + textwrap.fill(shared, 160) if shared else ""), fontsize=10)
    if capped:
        fig.text(0.01, 0.01, "hollow: stopped by the time cap (sweep.max_seconds) before its schedule ended",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def render(stem: str | Path, title: Optional[str] = None, echo: Callable[[str], None] = print,
           best_over: Sequence[str] = ()) -> None:
    """Rewrite STEM.json, STEM.md (and STEM.png) from STEM.jsonl; STEM.notes.md, if present, heads STEM.md.

    ``best_over``: keys the summary tables and the plot take the best accuracy over (e.g. ``["train.lr"]``).
    """
    stem = Path(stem)
    jsonl = stem.with_suffix(".jsonl")
    records = load_records(jsonl)
    if not records:
        raise SweepError(f"no results in {jsonl}: run the sweep first")
    title = title or f"zoo sweep: {records[0]['recipe']}"
    stem.with_suffix(".json").write_text(json.dumps(latest_per_key(records), indent=1) + "\n")
    md = render_markdown(records, title, best_over)
    notes = stem.parent / (stem.name + ".notes.md")
    if notes.is_file():
        head, _, rest = md.partition("\n\n")
        md = head + "\n\n" + notes.read_text().strip() + "\n\n" + rest
    stem.with_suffix(".md").write_text(md)
    made = plot_results(records, stem.with_suffix(".png"), title, best_over)
    echo(f"wrote {stem.with_suffix('.json')}, {stem.with_suffix('.md')}"
         + (f", {stem.with_suffix('.png')}" if made else " (no plot: matplotlib is not installed)"))


def command_line(recipe: str, overrides: Sequence[str] = (), grid: Sequence[str] = (), out: Optional[str] = None,
                 budget: Optional[float] = None, best_over: Sequence[str] = (), rerun: Sequence[str] = ()) -> str:
    """The ``zoo sweep`` invocation that reproduces a run (for the results' Commands section)."""
    parts = ["zoo", "sweep", recipe, *overrides]
    for g in grid:
        parts += ["--grid", g]
    if best_over:
        parts += ["--best-over", ",".join(best_over)]
    if out:
        parts += ["--out", str(out)]
    if budget is not None:
        parts += ["--budget", f"{budget:g}"]
    for status in rerun:
        parts += ["--rerun", status]
    return " ".join(shlex.quote(p) for p in parts)
