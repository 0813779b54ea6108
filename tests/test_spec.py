"""Block spec language: parsing, expansion, alias resolution, Config validation, caret errors."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.config import ModelConfig, merge
from zoo.errors import ZooError
from zoo.layers import MIXERS
from zoo.layers.attention import AttentionConfig
from zoo.layers.deltanet import DeltaNetConfig, GatedDeltaNetConfig
from zoo.spec import MAX_LAYERS, LayerSpec, SpecError, describe, parse_pattern, resolve_layers


def layers(pattern, **kw):
    return resolve_layers(ModelConfig(pattern=pattern, **kw))


def error(pattern, **kw) -> SpecError:
    with pytest.raises(SpecError) as info:
        layers(pattern, **kw)
    return info.value


def caret(err: SpecError) -> tuple[str, str]:
    """(the pattern line shown, the caret line) of an error message, indentation removed."""
    lines = str(err).splitlines()
    at = next(i for i, line in enumerate(lines) if set(line.strip()) == {"^"})
    return lines[at - 1][2:], lines[at][2:]


def assert_caret(err: SpecError, pattern: str, token: str, occurrence: int = 0):
    """The caret sits exactly under the ``occurrence``-th ``token`` of ``pattern``."""
    start = -1
    for _ in range(occurrence + 1):
        start = pattern.index(token, start + 1)
    assert err.span == (start, start + len(token)), (err.span, str(err))
    shown, marks = caret(err)
    assert shown == pattern
    assert marks == " " * start + "^" * len(token)


# --- the paper's hybrids --------------------------------------------------------------------

def test_swa_every_other_layer_24():
    out = layers("(delta swa)*12", n_layers=24)
    assert len(out) == 24
    assert [l.index for l in out] == list(range(24))
    assert [l.mixer for l in out] == ["deltanet", "attention"] * 12
    assert all(l.config.window == 2048 for l in out[1::2])
    assert isinstance(out[0].config, DeltaNetConfig) and isinstance(out[1].config, AttentionConfig)
    assert describe(out) == "(delta swa)*12"


def test_global_attention_at_layers_2_and_13():
    out = layers("delta attn delta*10 attn delta*11", n_layers=24)
    assert len(out) == 24
    one_based = [l.index + 1 for l in out if l.mixer == "attention"]
    assert one_based == [2, 13]
    assert all(out[i - 1].config.window is None for i in one_based)
    assert describe(out) == "delta attn delta*10 attn delta*11"


def test_n_layers_none_takes_the_pattern_length():
    assert len(layers("(delta swa)*3 attn")) == 7


def test_builtins_map_to_registry_types():
    out = layers("delta gdelta attn swa")
    assert [(l.name, l.mixer) for l in out] == [
        ("delta", "deltanet"), ("gdelta", "gated_deltanet"), ("attn", "attention"), ("swa", "attention")]
    assert type(out[1].config) is GatedDeltaNetConfig
    assert all(l.mixer in MIXERS for l in out)
    assert isinstance(out[0], LayerSpec)


# --- syntax ---------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, expected", [
    ("delta swa", "delta swa"),
    ("delta,swa", "delta swa"),
    ("delta , swa,attn", "delta swa attn"),
    ("  delta\n\tswa  ", "delta swa"),
    ("delta*3", "delta delta delta"),
    ("delta * 2", "delta delta"),
    ("(delta)", "delta"),
    ("(delta swa)*2", "delta swa delta swa"),
    ("((delta swa)*2 attn)*2", "delta swa delta swa attn delta swa delta swa attn"),
    ("(delta, (swa attn)*2)*2", "delta swa attn swa attn delta swa attn swa attn"),
    ("delta*2*3", " ".join(["delta"] * 6)),
    ("((delta))*2", "delta delta"),
])
def test_expansion(pattern, expected):
    assert [t.name for t in parse_pattern(pattern)] == expected.split()


def test_nested_group_resolves_in_order():
    out = layers("((delta swa)*2 attn)*3", n_layers=15)
    assert [l.name for l in out[:5]] == ["delta", "swa", "delta", "swa", "attn"]
    assert [l.index for l in out if l.name == "attn"] == [4, 9, 14]


def test_spans_point_at_the_written_name():
    terms = parse_pattern("(delta swa)*2")
    assert [t.span for t in terms] == [(1, 6), (7, 10)] * 2


# --- inline overrides -----------------------------------------------------------------------

def test_overrides_apply_to_their_layer_only():
    out = layers("delta[conv_size=2, use_gate=false] delta swa[window=1024]*2 swa")
    assert out[0].config.conv_size == 2 and out[0].config.use_gate is False
    assert out[1].config.conv_size == DeltaNetConfig().conv_size
    assert [l.config.window for l in out[2:]] == [1024, 1024, 2048]
    assert out[0].name == "delta[conv_size=2, use_gate=false]"
    assert out[2].name == "swa[window=1024]"
    assert out[2].config is not out[3].config  # every layer owns its Config


@pytest.mark.parametrize("text, value", [
    ("window=7", 7), ("window=+7", 7), ("window=none", None), ("window=NULL", None),
    ("rope_theta=5e5", 500000.0), ("rope_theta=1.5", 1.5), ("rope_theta=100", 100.0),
    ("backend=sdpa", "sdpa"), ("backend='flex'", "flex"), ('backend="math"', "math"),
])
def test_override_values(text, value):
    key = text.split("=")[0]
    got = getattr(layers(f"attn[{text}]")[0].config, key)
    assert got == value and type(got) is type(value)


def test_override_bool_values():
    assert layers("delta[use_gate=true]")[0].config.use_gate is True
    assert layers("gdelta[use_gate=False]")[0].config.use_gate is False


def test_attn_is_global_even_when_the_section_sets_a_window():
    cfg = ModelConfig(pattern="attn swa delta", attention=AttentionConfig(window=256, rope_theta=5e5))
    out = resolve_layers(cfg)
    assert out[0].config.window is None and out[1].config.window == 2048
    assert out[0].config.rope_theta == 5e5  # the rest of the section still applies


def test_section_defaults_then_alias_then_inline():
    cfg = ModelConfig(pattern="d d[conv_size=3] delta", deltanet=DeltaNetConfig(conv_size=2, expand_v=2.0),
                      mixers={"d": {"type": "delta", "conv_size": 0}})
    out = resolve_layers(cfg)
    assert [l.config.conv_size for l in out] == [0, 3, 2]
    assert all(l.config.expand_v == 2.0 for l in out)


def test_heads_and_head_dim_filled_from_the_model():
    out = layers("delta swa[n_heads=2] attn[head_dim=16]", d_model=64, n_heads=4)
    assert (out[0].config.n_heads, out[0].config.head_dim) == (4, 16)
    assert (out[1].config.n_heads, out[1].config.head_dim) == (2, 32)
    assert (out[2].config.n_heads, out[2].config.head_dim) == (4, 16)


# --- aliases --------------------------------------------------------------------------------

def test_alias_of_registry_key_and_of_alias():
    mixers = {"big_swa": {"type": "attention", "window": 4096},
              "wide": {"type": "big_swa", "n_kv_heads": 2},
              "fast": {"type": "gdelta", "conv_size": 2}}
    out = layers("big_swa wide fast wide[window=8]", mixers=mixers)
    assert [l.mixer for l in out] == ["attention", "attention", "gated_deltanet", "attention"]
    assert (out[1].config.window, out[1].config.n_kv_heads) == (4096, 2)
    assert out[2].config.conv_size == 2 and out[2].config.use_gate is True
    assert (out[3].config.window, out[3].config.n_kv_heads) == (8, 2)


def test_alias_overrides_a_builtin():
    out = layers("swa attn", mixers={"swa": {"type": "attention", "window": 512}})
    assert out[0].config.window == 512 and out[1].config.window is None


def test_alias_extending_the_builtin_it_shadows():
    out = layers("swa", mixers={"swa": {"type": "swa", "rope_theta": 1e6}})
    assert (out[0].config.window, out[0].config.rope_theta) == (2048, 1e6)


def test_aliases_from_yaml_config():
    cfg = merge(ModelConfig, {"pattern": "(local delta)*2", "mixers": {"local": {"type": "swa", "window": 64}}})
    assert [l.config.window for l in resolve_layers(cfg)[::2]] == [64, 64]


def test_alias_cycle_is_an_error():
    mixers = {"a": {"type": "b"}, "b": {"type": "c"}, "c": {"type": "a"}}
    err = error("delta a", mixers=mixers)
    assert "alias cycle a -> b -> c -> a" in str(err)
    assert_caret(err, "delta a", "a", occurrence=1)


def test_self_alias_without_builtin_is_an_error():
    err = error("delta", mixers={"foo": {"type": "foo"}})  # unused aliases are checked too
    assert "model.mixers.foo: unknown type 'foo'" in str(err)


@pytest.mark.parametrize("mixers, message", [
    ({"x": {"window": 3}}, "model.mixers.x needs a 'type:'"),
    ({"x": "attention"}, "model.mixers.x must be a mapping"),
    ({"x": {"type": "atention"}}, "unknown type 'atention' (did you mean 'attention'?)"),
    ({"x": {"type": "swa", "windw": 3}}, "unknown option 'windw' for mixer 'attention'"),
    ({"x": {"type": "swa", "window": "big"}}, "option 'window' of mixer 'attention' expects int or none, got 'big'"),
    ({"swa-1k": {"type": "swa"}}, "alias name 'swa-1k' cannot be written in a pattern"),
])
def test_bad_alias(mixers, message):
    assert message in str(error("delta", mixers=mixers))


def test_bad_alias_error_points_at_its_use():
    err = error("delta big", mixers={"big": {"type": "swa", "windw": 3}})
    assert "valid options:" in str(err) and "window" in err.hint
    assert_caret(err, "delta big", "big")


# --- errors with carets ---------------------------------------------------------------------

def test_unknown_mixer_message():
    err = error("delta foo", mixers={"local": {"type": "swa"}})
    assert str(err) == ("unknown mixer 'foo' in pattern:\n  delta foo\n        ^^^\n"
                        "valid names: attn, delta, gdelta, linear, local, swa")
    assert isinstance(err, ValueError) and isinstance(err, ZooError)


def test_unknown_mixer_suggests_close_name():
    err = error("(delta swq)*2")
    assert "did you mean 'swa'" in str(err)
    assert_caret(err, "(delta swq)*2", "swq")


def test_registry_keys_are_not_pattern_names():
    assert_caret(error("delta deltanet"), "delta deltanet", "deltanet")


@pytest.mark.parametrize("pattern, token, occurrence, message", [
    ("(delta swa", "(", 0, "unclosed '('"),
    ("((delta swa)*2", "(", 0, "unclosed '('"),
    ("delta swa)", ")", 0, "unmatched ')'"),
    ("(delta)) swa", ")", 1, "unmatched ')'"),
    ("delta*0", "0", 0, "repeat count must be at least 1, got 0"),
    ("delta*-2", "-2", 0, "repeat count must be at least 1, got -2"),
    ("delta*2.5", "2.5", 0, "repeat count must be a positive integer, got '2.5'"),
    ("delta*n", "n", 0, "repeat count must be a positive integer, got 'n'"),
    ("delta*12x", "12x", 0, "repeat count must be a positive integer"),
    ("delta*", "*", 0, "missing repeat count after '*'"),
    ("delta* swa", "swa", 0, "repeat count must be a positive integer, got 'swa'"),
    ("delta*(2)", "*", 0, "missing repeat count after '*'"),
    ("delta ()", "()", 0, "empty group '()'"),
    ("*3", "*", 0, "expected a mixer name or '('"),
    (", delta", ",", 0, "expected a mixer name or '('"),
    ("delta,,swa", ",", 0, "a comma must sit between two mixer names"),
    ("delta swa,", ",", 0, "a comma must sit between two mixer names"),
    ("(delta,)*2", ",", 0, "a comma must sit between two mixer names"),
    ("delta-swa", "delta-swa", 0, "expected a mixer name or '('"),
    ("delta ]", "]", 0, "expected a mixer name or '('"),
    ("delta # swa", "#", 0, "unexpected character '#'"),
    ("delta swa[window='12]", "'", 0, "unterminated string"),
    ("swa[]", "[]", 0, "empty override list"),
    ("swa[window=1", "[", 0, "unclosed '['"),
    ("swa[window", "window", 0, "expected '=' after option 'window'"),
    ("swa[window 3]", "3", 0, "expected '=' after option 'window'"),
    ("swa[window=]", "]", 0, "missing value for option 'window'"),
    ("swa[window=", "=", 0, "missing value for option 'window'"),
    ("swa[=3]", "=", 0, "expected an option name"),
    ("swa[window=1 rope_theta=2]", "rope_theta", 0, "expected ',' or ']'"),
    ("swa[window=1,]", "]", 0, "expected an option name"),
    ("swa[window=1, window=2]", "window", 1, "option 'window' given twice"),
    ("(delta swa)[window=1]", "[", 0, "overrides go right after a mixer name"),
    ("swa[windw=1]", "windw", 0, "unknown option 'windw' for mixer 'attention' (did you mean 'window'?)"),
    ("swa[type=deltanet]", "type", 0, "unknown option 'type'"),
    ("swa[window=wide]", "wide", 0, "option 'window' of mixer 'attention' expects int or none, got 'wide'"),
    ("swa[window=2.0]", "2.0", 0, "expects int or none, got 2.0"),
    ("swa[window=true]", "true", 0, "expects int or none, got true"),
    ("delta[use_gate=1]", "1", 0, "option 'use_gate' of mixer 'deltanet' expects bool, got 1"),
    ("delta[conv_size=none]", "none", 0, "expects int, got none"),
    ("attn[backend=3]", "3", 0, "expects str, got 3"),
    ("delta*5000 swa*5001", "swa*5001", 0, f"more than {MAX_LAYERS} layers"),
    ("(delta*100)*101", "101", 0, f"repeat expands to 10100 layers, more than {MAX_LAYERS}"),
])
def test_error_carets(pattern, token, occurrence, message):
    err = error(pattern)
    assert message in err.reason, str(err)
    assert_caret(err, pattern, token, occurrence)


def test_unknown_option_lists_valid_ones():
    err = error("delta[chunk=32]")
    assert err.hint == "valid options: chunk_size, conv_size, expand_v, head_dim, n_heads, norm_eps, use_gate"


def test_caret_on_the_right_line_of_a_multiline_pattern():
    err = error("delta swa\n  delta foo\nattn")
    assert caret(err) == ("  delta foo", "        ^^^")


def test_caret_at_end_of_pattern():
    err = error("swa[window=1")
    assert caret(err) == ("swa[window=1", "   ^")


@pytest.mark.parametrize("pattern", ["", "   ", "\n\t"])
def test_empty_pattern(pattern):
    assert "empty pattern" in str(error(pattern))


def test_count_mismatch():
    err = error("(delta swa)*12", n_layers=23)
    assert "pattern '(delta swa)*12' expands to 24 layers but n_layers=23" in str(err)
    assert "n_layers=24" in err.hint


def test_head_dim_needs_divisible_width():
    err = error("delta swa", d_model=100, n_heads=3)
    assert "d_model=100 is not divisible by n_heads=3" in str(err)
    assert_caret(err, "delta swa", "delta")
    assert layers("delta[head_dim=32]", d_model=100, n_heads=3)[0].config.head_dim == 32


def test_bad_n_heads():
    err = error("delta swa[n_heads=0]")
    assert "n_heads must be a positive integer for 'swa[n_heads=0]'" in str(err)
    assert_caret(err, "delta swa[n_heads=0]", "swa")


# --- custom registries: typed options and the Config's own checks ---------------------------

@dataclass
class _ToyConfig:
    mode: Literal["fast", "exact"] = "fast"
    rate: float = 0.5
    label: str = ""
    n_heads: Optional[int] = None

    def __post_init__(self):
        if not 0 < self.rate < 1:
            raise ValueError(f"rate must lie in (0, 1), got {self.rate}")


class _Toy:
    Config = _ToyConfig


def _toy(pattern, mixers=None):
    cfg = ModelConfig(pattern=pattern, mixers=mixers or {})
    return resolve_layers(cfg, registry={"toy": _Toy})


def test_custom_registry_literal_and_post_init():
    out = _toy("t t[mode=exact, rate=0.25]", mixers={"t": {"type": "toy"}})
    assert [(l.config.mode, l.config.rate, l.config.n_heads) for l in out] == [("fast", 0.5, 4), ("exact", 0.25, 4)]
    with pytest.raises(SpecError, match="expects one of fast, exact, got 'slow'"):
        _toy("t[mode=slow]", mixers={"t": {"type": "toy"}})
    with pytest.raises(SpecError) as info:
        _toy("t t[rate=2]", mixers={"t": {"type": "toy"}})
    assert "invalid options for 't[rate=2]' (toy): rate must lie in (0, 1), got 2.0" in str(info.value)
    assert_caret(info.value, "t t[rate=2]", "t", occurrence=1)


def test_builtin_missing_from_registry():
    with pytest.raises(SpecError, match="built-in 'delta' needs mixer 'deltanet'"):
        _toy("delta")


# --- describe -------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, summary", [
    ("delta", "delta"),
    ("delta*24", "delta*24"),
    ("((delta swa)*2 attn)*3", "(delta swa delta swa attn)*3"),
    ("delta swa[window=64] swa[window=64] attn", "delta swa[window=64]*2 attn"),
    ("(swa[backend='flash'] delta)*2", "(swa[backend=flash] delta)*2"),
])
def test_describe(pattern, summary):
    assert describe(layers(pattern)) == summary


@pytest.mark.parametrize("pattern, summary", [
    ("t[label='two words']*3", "t[label='two words']*3"),
    ("t[label='true', rate=0.25]", "t[label='true', rate=0.25]"),
])
def test_describe_quotes_strings_that_would_read_otherwise(pattern, summary):
    assert describe(_toy(pattern, mixers={"t": {"type": "toy"}})) == summary


# --- properties -----------------------------------------------------------------------------

_JUNK = st.lists(st.sampled_from([
    "delta", "swa", "attn", "gdelta", "foo", "(", ")", "[", "]", "*", ",", "=", " ", "\n", "2", "0",
    "-1", "1.5", "1e3", "'", '"', "window", "true", "none", "#", "é", "\x00", "_", ".", "+",
    "12", "99999", "conv_size", "use_gate", "backend", "sdpa",
]), max_size=20).map("".join)


@settings(max_examples=150, deadline=None)
@given(st.one_of(_JUNK, st.text(max_size=30)))
def test_random_text_raises_only_spec_error(pattern):
    try:
        out = layers(pattern)
    except SpecError as err:
        assert str(err)
    else:
        assert 1 <= len(out) <= MAX_LAYERS


_VALUES = st.sampled_from(["window=64", "window=none", "rope_theta=10000.0", "backend=sdpa", "n_kv_heads=2"])
_LEAF = st.one_of(
    st.sampled_from(["delta", "gdelta", "attn", "swa"]),
    st.lists(_VALUES, min_size=1, max_size=2, unique_by=lambda s: s.split("=")[0]).map(
        lambda kvs: f"swa[{', '.join(kvs)}]"),
)


def _group(children, count, seps):
    body = seps.join(text for text, _ in children)
    text = f"({body})" + (f"*{count}" if count > 1 else "")
    return text, [name for _, names in children for name in names] * count


_TREE = st.recursive(
    _LEAF.map(lambda leaf: (leaf, [leaf])),
    lambda inner: st.builds(_group, st.lists(inner, min_size=1, max_size=3), st.integers(1, 3),
                            st.sampled_from([" ", ",", ", ", "\n", " ,\t"])),
    max_leaves=8,
)


@settings(max_examples=100, deadline=None)
@given(_TREE, st.integers(1, 3))
def test_well_formed_patterns_expand_as_written(tree, count):
    text, names = tree
    text = f"({text})*{count}"
    names = names * count
    terms = parse_pattern(text)
    assert [t.label for t in terms] == names
    out = layers(text, n_layers=len(names))
    assert [l.name for l in out] == names
    assert [l.name for l in layers(describe(out))] == names  # describe round-trips
