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
