"""The `zoo` command line: one Typer app; each command is a thin shell over a module."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from zoo.errors import ZooError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="A layer zoo for hybrid linear-attention language models.")


@app.callback()
def _root() -> None:
    """A layer zoo for hybrid linear-attention language models."""


@app.command()
def compose(
    pattern: str = typer.Argument(..., help='Block spec such as "(delta swa)*12", or a recipe .yaml'),
    d_model: Optional[int] = typer.Option(None, "--d-model", help="Model width"),
    heads: Optional[int] = typer.Option(None, "--heads", help="Attention / DeltaNet heads"),
    layers: Optional[int] = typer.Option(None, "--layers", help="Layer count the pattern must expand to"),
    vocab: Optional[int] = typer.Option(None, "--vocab", help="Vocabulary size"),
    context: Optional[int] = typer.Option(None, "--context", help="Context for FLOPs and cache bytes (default: max_seq_len)"),
    batch_size: int = typer.Option(1, "--batch-size", help="Batch size for cache bytes"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table"),
) -> None:
    """Print the resolved per-layer table of a block spec or recipe: type, params, FLOPs/token, cache bytes."""
    from zoo.compose import compose as build_report, format_table
    from zoo.config import ModelConfig, load_yaml, merge

    flags = {"d_model": d_model, "n_heads": heads, "n_layers": layers, "vocab_size": vocab}
    flags = {k: v for k, v in flags.items() if v is not None}
    if pattern.endswith((".yaml", ".yml")) or Path(pattern).is_file():
        recipe = load_yaml(pattern)
        config = merge(ModelConfig, recipe.get("model", {}), flags)
    else:
        config = merge(ModelConfig, {"pattern": pattern, **flags})
    report = build_report(config, context or config.max_seq_len, batch_size)
    typer.echo(json.dumps(report, indent=2) if as_json else format_table(report))


@app.command()
def train(
    args: Optional[List[str]] = typer.Argument(None, metavar="RECIPE [KEY=VALUE ...]",
                                               help="Recipe YAML, then overrides such as train.steps=500"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory exactly"),
) -> None:
    """Train a recipe with Lightning; writes runs/<name>/ (config, model/, checkpoints/, logs/, loss.png)."""
    from zoo.train.run import TrainingInterrupted, train_from_cli

    args = list(args or [])
    recipe = args.pop(0) if args and "=" not in args[0] else None
    try:
        train_from_cli(recipe, args, str(resume) if resume else None, echo=typer.echo)
    except TrainingInterrupted as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(130)


@app.command("eval")
def eval_(
    run_dir: Optional[str] = typer.Argument(None, help="Run directory (default: the latest run, from runs/LATEST). "
                                            "`zoo eval download DIR` saves swde/fda/squad for --offline instead"),
    download_dir: Optional[str] = typer.Argument(None, metavar="[DIR]", help="With `download`: where to save"),
    tasks: str = typer.Option("recall", "--tasks", "-t", help="Comma-separated: swde, squad, fda, wikitext, lambada, "
                              "piqa, hellaswag, winogrande, arc_easy, arc_challenge, groups recall / zeroshot, or any lm-eval task"),
    limit: Optional[float] = typer.Option(None, "--limit", help="Documents per task (a fraction if < 1)"),
    batch_size: int = typer.Option(16, "--batch-size", help="Sequences per forward / decode batch"),
    device: Optional[str] = typer.Option(None, "--device", help="cuda, cuda:1, cpu (default: cuda when available)"),
    offline: bool = typer.Option(False, "--offline", help="Score the offline mirrors: a downloaded copy, else SAMPLE files"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Offline copy (default $ZOO_EVAL_DATA or ~/.cache/zoo/eval-data)"),
    output: Optional[str] = typer.Option(None, "--output", help="JSON results path (default <run>/eval/results-<time>.json)"),
    runs_root: str = typer.Option("runs", "--runs-root", help="Where `zoo train` writes runs"),
) -> None:
    """Evaluate a run with lm-evaluation-harness (recall suite by default) and write a JSON report."""
    from zoo.eval.runner import download, run_eval

    if run_dir == "download":
        download(download_dir or data_dir or "~/.cache/zoo/eval-data", echo=typer.echo)
        return
    if download_dir is not None:
        raise ZooError(f"unexpected argument {download_dir!r}: zoo eval takes one run directory (or `download DIR`)")
    if limit is not None and limit >= 1:
        limit = int(limit)
    run_eval(run_dir, tasks, limit=limit, batch_size=batch_size, device=device, offline=offline,
             data_dir=data_dir, output=output, runs_root=runs_root, echo=typer.echo)


@app.command()
def generate(
    args: List[str] = typer.Argument(..., metavar="[RUN_DIR] PROMPT", help="Run directory (default: latest run) and prompt"),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", "-n", help="Tokens to generate"),
    temperature: float = typer.Option(0.0, "--temperature", help="0 = greedy"),
    device: Optional[str] = typer.Option(None, "--device", help="cuda or cpu (default: cuda when available)"),
    seed: int = typer.Option(0, "--seed", help="Sampling seed"),
    runs_root: str = typer.Option("runs", "--runs-root", help="Where `zoo train` writes runs"),
) -> None:
    """Continue PROMPT with a trained run (prefill once, then cached single-token steps)."""
    from zoo.eval.generate import run_generate

    if len(args) > 2:
        raise ZooError(f"zoo generate takes [RUN_DIR] PROMPT, got {len(args)} arguments (quote the prompt)")
    run_dir, prompt = (None, args[0]) if len(args) == 1 else (args[0], args[1])
    run_generate(run_dir, prompt, max_new_tokens, temperature, device, seed, runs_root, echo=typer.echo)


@app.command()
def sweep(
    recipe: str = typer.Argument(..., help="Synthetic-task recipe (recipes/mqar.yaml, recipes/mad.yaml)"),
    overrides: Optional[List[str]] = typer.Argument(None, metavar="[KEY=VALUE ...]", help="Pinned for every point"),
    grid: Optional[List[str]] = typer.Option(None, "--grid", "-g", help="Axis KEY=V1,V2 or K1:K2=A1:B1,A2:B2 "
                                             "(repeatable; default: the recipe's sweep.grid)"),
    out: Optional[str] = typer.Option(None, "--out", help="Results path stem: STEM.jsonl/.json/.md/.png "
                                      "(default runs/sweeps/<recipe>)"),
    budget: Optional[float] = typer.Option(None, "--budget", help="Wall seconds for this invocation; "
                                           "unfinished points run next time"),
    device: Optional[str] = typer.Option(None, "--device", help="cuda, cuda:1, cpu (default: cuda when available)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the points (done/todo) and exit"),
    render_only: bool = typer.Option(False, "--render", help="Only rewrite STEM.json/.md/.png from STEM.jsonl"),
    best_over: Optional[List[str]] = typer.Option(None, "--best-over", help="Tables show the best accuracy over "
                                                  "these keys, e.g. train.lr (repeatable or comma-separated; "
                                                  "default: the recipe's sweep.best_over)"),
    workers: int = typer.Option(1, "--workers", min=1, help="Runs side by side (processes; on CUDA spread over the "
                                "visible GPUs): tiny models leave a GPU mostly idle, so 4-8 per GPU multiply "
                                "throughput"),
    rerun: Optional[List[str]] = typer.Option(None, "--rerun", help="Also run again the points whose record has "
                                              "this status, e.g. time (stopped by sweep.max_seconds); cut and "
                                              "error always run again"),
) -> None:
    """Train a synthetic recipe (MQAR, MAD) over a grid; one accuracy table, resumable point by point."""
    from zoo.sweep import command_line, load_sweep_recipe, parse_best_over, render, run_sweep

    keys = parse_best_over(best_over) if best_over else None
    if render_only:
        keys = keys if keys is not None else parse_best_over(load_sweep_recipe(recipe)[1].best_over)
        render(out or Path("runs") / "sweeps" / Path(recipe).stem, echo=typer.echo, best_over=keys)
        return
    run_sweep(recipe, grid or (), overrides or (), out=out, budget=budget, device=device, dry_run=dry_run,
              command=command_line(recipe, overrides or (), grid or (), out, budget, keys or (), rerun or ()),
              best_over=keys, workers=workers, rerun=rerun or (), echo=typer.echo)


@app.command("import")
def import_(
    source: str = typer.Argument(..., metavar="PATH_OR_HUB_ID", help="fla checkpoint directory or Hugging Face hub id"),
    out_dir: Path = typer.Argument(..., help="zoo run directory to write (config.yaml, model/, import.json)"),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty OUT_DIR"),
) -> None:
    """Import an fla (flash-linear-attention 0.6.0) DeltaNet / Gated DeltaNet / hybrid checkpoint."""
    from zoo.interop.fla import import_fla

    result = import_fla(source, out_dir, overwrite=force)
    for notice in result.notices:
        typer.echo(f"notice: {notice}", err=True)
    typer.echo(f"imported fla {result.model_type} ({result.n_params:,} parameters) as '{result.pattern}' "
               f"into {result.out_dir}")


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="zoo run directory (or its model/ directory)"),
    out_dir: Path = typer.Argument(..., help="Checkpoint directory to write"),
    format: str = typer.Option("fla", "--format", help="Target format: fla (flash-linear-attention 0.6.0)"),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty OUT_DIR"),
) -> None:
    """Export a zoo model to another library's checkpoint format (fla), where it can express the model."""
    from zoo.interop.fla import export_fla

    if format != "fla":
        raise ZooError(f"unknown export format {format!r}; valid: fla")
    result = export_fla(run_dir, out_dir, overwrite=force)
    for notice in result.notices:
        typer.echo(f"notice: {notice}", err=True)
    typer.echo(f"exported '{result.pattern}' as fla {result.model_type} ({result.n_params:,} parameters) "
               f"into {result.out_dir}")


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of the `zoo` script: user errors become one line on stderr and exit code 2."""
    try:
        app(args=argv, standalone_mode=True)
    except ZooError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
