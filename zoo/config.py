"""Structured configuration: dataclass schemas that recipes (YAML) are validated against.

A recipe is data: ``load_recipe(path, overrides)`` merges the YAML and ``key=value`` dotlist
overrides onto the schema; unknown keys and wrong types raise ``ConfigError`` naming the key
and the valid ones. Each mixer owns its option dataclass (``zoo.layers.*.Config``); the
``model.deltanet`` / ``model.gated_deltanet`` / ``model.attention`` sections hold the defaults
every layer of that type starts from, and ``model.mixers`` defines pattern aliases.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from zoo.errors import ZooError

from zoo.layers.attention import AttentionConfig
from zoo.layers.deltanet import DeltaNetConfig, GatedDeltaNetConfig
from zoo.layers.linear_attention import LinearAttentionConfig


class ConfigError(ZooError):
    """A recipe or override that does not fit the schema; the message names the fix."""


@dataclass
class ModelConfig:
    """The architecture: a block spec plus widths. ``n_layers=None`` takes the pattern's length."""

    pattern: str = "(delta swa)*2"
    n_layers: Optional[int] = None
    d_model: int = 256
    n_heads: int = 4
    vocab_size: int = 4096
    mlp_hidden: Optional[int] = None  # SwiGLU width; None: 8/3 * d_model rounded up to 64
    tie_embeddings: bool = True
    norm_eps: float = 1e-6
    init_std: float = 0.02
    max_seq_len: int = 2048  # context the model is trained for (eval windows, compose defaults)
    mixers: Dict[str, Any] = field(default_factory=dict)  # alias -> {type: ..., **options}
    deltanet: DeltaNetConfig = field(default_factory=DeltaNetConfig)
    gated_deltanet: GatedDeltaNetConfig = field(default_factory=GatedDeltaNetConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    linear: LinearAttentionConfig = field(default_factory=LinearAttentionConfig)

    @property
    def ffn_hidden(self) -> int:
        if self.mlp_hidden is not None:
            return self.mlp_hidden
        return -(-int(8 * self.d_model / 3) // 64) * 64


def to_container(cfg: Any) -> Any:
    """Plain dicts/lists of a (structured) config, for JSON and YAML."""
    if isinstance(cfg, DictConfig) or is_dataclass(cfg):
        return OmegaConf.to_container(OmegaConf.structured(cfg) if is_dataclass(cfg) else cfg, resolve=True)
    return cfg


def merge(schema: type, *sources: Any, overrides: Optional[List[str]] = None) -> Any:
    """Validate ``sources`` (dicts, DictConfigs) and ``key=value`` overrides against ``schema``.

    Returns an instance of ``schema``. Raises ConfigError with the offending key and the valid ones.
    """
    base = OmegaConf.structured(schema)
    try:
        for src in sources:
            base = OmegaConf.merge(base, src)
        if overrides:
            bad = [o for o in overrides if "=" not in o]
            if bad:
                raise ConfigError(f"override {bad[0]!r} is not key=value (e.g. model.d_model=512)")
            base = OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))
        return OmegaConf.to_object(base)
    except OmegaConfBaseException as err:
        raise ConfigError(_explain(err, schema)) from None


def _explain(err: OmegaConfBaseException, schema: type) -> str:
    key = getattr(err, "full_key", None) or getattr(err, "key", None)
    msg = str(err).splitlines()[0]
    if key and ("not in struct" in msg or "Key '" in msg and "not in" in msg):
        parent = _schema_at(schema, str(key).split(".")[:-1])
        valid = ", ".join(f.name for f in fields(parent)) if parent is not None else "?"
        return f"unknown key '{key}'. Valid keys here: {valid}"
    return f"bad value for '{key}': {msg}" if key else msg


def _schema_at(schema: type, path: List[str]) -> Optional[type]:
    node = schema
    for part in path:
        match = {f.name: f for f in fields(node)}.get(part) if is_dataclass(node) else None
        if match is None:
            return None
        default = match.default_factory() if callable(match.default_factory) else match.default
        node = type(default) if is_dataclass(default) else None
    return node if is_dataclass(node) else None


def load_yaml(path: str | Path) -> DictConfig:
    """Read a recipe file; a missing file or bad YAML is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe not found: {path}")
    try:
        return OmegaConf.load(path)
    except Exception as err:  # yaml.YAMLError and friends
        raise ConfigError(f"cannot parse {path}: {err}") from None


# ---- run recipes (zoo train) -------------------------------------------------------------
from zoo.data.config import DataConfig  # noqa: E402  (light modules: dataclasses only)
from zoo.train.config import TrainConfig  # noqa: E402


@dataclass
class RunConfig:
    """A whole recipe: ``model:``, ``data:`` and ``train:`` sections plus where the run lives.

    ``name`` None: ``<recipe stem>-<UTC timestamp>``; ``resume=true`` continues the named run (or the
    latest run of the same recipe) from its newest checkpoint.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: Optional[str] = None
    runs_root: str = "runs"
    resume: bool = False
    sweep: Optional[Dict[str, Any]] = None  # `zoo sweep`'s section (zoo.sweep.SweepConfig); zoo train ignores it


def load_recipe(path: "str | Path | None", overrides: Optional[List[str]] = None, base: Any = None) -> RunConfig:
    """Validate a recipe file (and ``key=value`` overrides) into a ``RunConfig``.

    ``base`` (a dict/DictConfig, e.g. a run's saved config.yaml) is merged first when given; ``path``
    may then be None. Every failure is a ``ConfigError`` naming the key and the fix.
    """
    sources = [base] if base is not None else []
    if path is not None:
        sources.append(load_yaml(path))
    try:
        cfg = merge(RunConfig, *sources, overrides=overrides)
        cfg.data.validate()
    except ConfigError:
        raise
    except ValueError as err:  # value checks inside the sections (train/data validators)
        raise ConfigError(str(err)) from None
    return cfg
