"""Every recipe in recipes/ loads as a full run config (model, data, train) that can train.

(The model sections are built by tests/test_recipes.py; here the whole RunConfig is checked.)
"""
from pathlib import Path

import pytest

from zoo.config import RunConfig, load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").rglob("*.yaml"))


def test_recipes_exist():
    assert any(p.name == "hybrid_swa.yaml" for p in RECIPES)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_recipe_is_a_valid_run_config(path):
    cfg = load_recipe(path)
    assert isinstance(cfg, RunConfig)
    per_device, micro, accumulate = cfg.train.layout(1)
    assert per_device * 1 == cfg.train.batch_size and micro * accumulate == per_device
    assert cfg.data.resolved_seq_len() <= cfg.model.max_seq_len, "rows longer than the model's context"
    if cfg.data.type == "mqar":
        assert cfg.data.mqar.vocab_size <= cfg.model.vocab_size
    elif not cfg.data.synthetic and cfg.data.tokenizer.type == "bpe":
        assert cfg.data.tokenizer.vocab_size <= cfg.model.vocab_size
    # the same recipe accepts command-line overrides
    assert load_recipe(path, ["train.steps=7"]).train.steps == 7


def test_readme_recipe_trains_on_the_embedded_corpus_on_cpu():
    cfg = load_recipe(RECIPES[0].parent / "hybrid_swa.yaml")
    assert cfg.data.type == "embedded" and cfg.train.precision == "auto" and cfg.train.strategy == "auto"
