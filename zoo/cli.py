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


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of the `zoo` script: user errors become one line on stderr and exit code 2."""
    try:
        app(args=argv, standalone_mode=True)
    except ZooError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
