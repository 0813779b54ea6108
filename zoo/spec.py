"""Block spec language: a short pattern that picks the token mixer of every layer.

    (delta swa)*12                      # 24 layers, sliding-window attention every other layer
    delta attn delta*10 attn delta*11   # global attention at layers 2 and 13 (1-based)
    ((delta swa)*2 attn)*3              # groups nest
    delta[conv_size=2, use_gate=false] swa[window=1024]*3

Grammar (whitespace is insignificant except as a separator)::

    pattern   := sequence
    sequence  := item ((',')? item)*          # names separated by whitespace or one comma
    item      := atom ('*' COUNT)*            # COUNT: integer >= 1; chained repeats multiply
    atom      := NAME overrides? | '(' sequence ')'
    overrides := '[' KEY '=' value (',' KEY '=' value)* ']'
    value     := int | float | true | false | none | null | bare word | 'quoted' | "quoted"

Names are the built-ins (``delta`` -> deltanet, ``gdelta`` -> gated_deltanet, ``attn`` ->
attention with window=None, ``swa`` -> attention with window=2048, ``linear`` -> additive
linear attention) plus the aliases of
``model.mixers``: ``{name: {type: <registry key, built-in or another alias>, **options}}``.
An alias may shadow a built-in; ``swa: {type: swa, window: 512}`` extends the built-in it
shadows (an alias's ``type`` naming itself skips the user aliases). Alias cycles are errors.

A layer's Config is built from, in increasing priority: the model's section of its mixer type
(``model.deltanet`` / ``model.gated_deltanet`` / ``model.attention``; the section name is the
registry key), the alias chain's options (base first), and the inline overrides; ``n_heads`` /
``head_dim`` / ``norm_eps`` left None are filled from the model (``n_heads``, ``d_model // n_heads``,
``norm_eps``).

Every error is a ``SpecError`` whose message shows the pattern with a caret under the
offending token and lists the valid choices.
"""
from __future__ import annotations

import difflib
import math
import re
import typing
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from zoo.errors import ZooError

__all__ = [
    "BUILTINS",
    "MAX_LAYERS",
    "LayerSpec",
    "Override",
    "SpecError",
    "Term",
    "describe",
    "parse_pattern",
    "resolve_layers",
]

#: Built-in pattern names: name -> {type: registry key, **options}.
BUILTINS: Dict[str, Dict[str, Any]] = {
    "delta": {"type": "deltanet"},
    "gdelta": {"type": "gated_deltanet"},
    "attn": {"type": "attention", "window": None},
    "swa": {"type": "attention", "window": 2048},
    "linear": {"type": "linear"},
}

#: Upper bound on a pattern's expansion, so that ``delta*10**12`` fails fast instead of OOMing.
MAX_LAYERS = 10_000

Span = Tuple[int, int]  # [start, end) character offsets into the pattern


class SpecError(ZooError):
    """A bad block spec (a ``ValueError`` via ``ZooError``). ``str(err)`` shows the pattern with a caret under ``span``.

    Attributes: ``pattern`` (str or None), ``span`` ((start, end) or None), ``reason`` (the
    first line without the caret block).
    """

    def __init__(self, reason: str, pattern: Optional[str] = None, span: Optional[Span] = None,
                 hint: Optional[str] = None, where: str = "in pattern"):
        self.reason, self.pattern, self.span, self.hint = reason, pattern, span, hint
        text = reason
        if pattern is not None and span is not None:
            text += f" {where}:\n" + _caret_block(pattern, span)
        if hint:
            text += "\n" + hint
        super().__init__(text)


def _caret_block(pattern: str, span: Span) -> str:
    """The line of ``pattern`` holding ``span[0]``, indented, with ``^`` under the span."""
    start, end = span
    line_start = pattern.rfind("\n", 0, start) + 1
    line_end = pattern.find("\n", start)
    line_end = len(pattern) if line_end < 0 else line_end
    line = pattern[line_start:line_end]
    pad = "".join("\t" if c == "\t" else " " for c in line[: start - line_start])
    width = max(1, min(end, line_end) - start)
    return f"  {line}\n  {pad}{'^' * width}"


# ---------------------------------------------------------------------------------------------
# Tokenizer

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INT = re.compile(r"[+-]?[0-9]+\Z")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?=[eE]))(?:[eE][+-]?[0-9]+)?\Z")
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+-")
_PUNCT = frozenset("()[]*,=")


@dataclass(frozen=True)
class _Tok:
    kind: str  # NAME INT FLOAT WORD STRING EOF, or the punctuation character itself
    text: str  # source text (STRING: the unquoted content)
    span: Span


def _tokenize(pattern: str) -> List[_Tok]:
    toks: List[_Tok] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c in " \t\r\n":
            i += 1
        elif c in _PUNCT:
            toks.append(_Tok(c, c, (i, i + 1)))
            i += 1
        elif c in "'\"":
            close = pattern.find(c, i + 1)
            if close < 0:
                raise SpecError(f"unterminated string: no closing {c}", pattern, (i, i + 1))
            toks.append(_Tok("STRING", pattern[i + 1: close], (i, close + 1)))
            i = close + 1
        elif c in _WORD_CHARS:
            j = i
            while j < n and pattern[j] in _WORD_CHARS:
                j += 1
            word = pattern[i:j]
            kind = ("NAME" if _NAME.match(word) else "INT" if _INT.match(word)
                    else "FLOAT" if _FLOAT.match(word) else "WORD")
            toks.append(_Tok(kind, word, (i, j)))
            i = j
        else:
            raise SpecError(f"unexpected character {c!r}", pattern, (i, i + 1),
                            "a pattern holds mixer names, ( ), *N repeats, commas and [key=value] overrides")
    toks.append(_Tok("EOF", "", (n, n)))
    return toks


# ---------------------------------------------------------------------------------------------
# Parser: recursive descent, expanding as it goes (bounded by MAX_LAYERS)


@dataclass(frozen=True)
class Override:
    """One inline ``key=value``; spans point into the pattern for error carets."""

    key: str
    value: Any
    key_span: Span
    value_span: Span


@dataclass(frozen=True)
class Term:
    """One layer as written: a name, its inline overrides, and the span of the name token."""

    name: str
    overrides: Tuple[Override, ...]
    span: Span

    @property
    def label(self) -> str:
        """Canonical source text, e.g. ``swa`` or ``swa[window=1024, backend=sdpa]``."""
        if not self.overrides:
            return self.name
        return f"{self.name}[{', '.join(f'{o.key}={_fmt_value(o.value)}' for o in self.overrides)}]"


def _fmt_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if _NAME.match(text) and text.lower() not in _KEYWORDS:
        return text
    return f"'{text}'" if "'" not in text else f'"{text}"'


_KEYWORDS = {"true": True, "false": False, "none": None, "null": None}


class _Parser:
    def __init__(self, pattern: str):
        self.pattern = pattern
        self.toks = _tokenize(pattern)
        self.pos = 0

    def error(self, reason: str, span: Span, hint: Optional[str] = None) -> SpecError:
        return SpecError(reason, self.pattern, span, hint)

    def peek(self) -> _Tok:
        return self.toks[self.pos]

    def next(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def parse(self) -> List[Term]:
        if self.peek().kind == "EOF":
            raise SpecError("empty pattern: give at least one mixer name, e.g. '(delta swa)*12'")
        terms = self.sequence(opener=None)
        tok = self.peek()
        if tok.kind == ")":
            raise self.error("unmatched ')'", tok.span, "remove it or add the '(' it closes")
        return terms

    def sequence(self, opener: Optional[_Tok]) -> List[Term]:
        terms: List[Term] = []
        while True:
            tok = self.peek()
            if tok.kind in ("EOF", ")"):
                break
            if terms and tok.kind == ",":
                comma = self.next()
                if self.peek().kind in ("EOF", ")", ","):
                    raise self.error("a comma must sit between two mixer names", comma.span)
            start = self.peek().span[0]
            item = self.item()
            if len(terms) + len(item) > MAX_LAYERS:
                raise self.error(f"pattern expands to more than {MAX_LAYERS} layers",
                                 (start, self.toks[self.pos - 1].span[1]))
            terms.extend(item)
        if opener is not None and not terms:
            raise self.error("empty group '()'", (opener.span[0], self.peek().span[1]))
        return terms

    def item(self) -> List[Term]:
        terms = self.atom()
        while self.peek().kind == "*":
            star = self.next()
            count = self.peek()
            if count.kind != "INT":
                if count.kind == "FLOAT" or (count.kind in ("NAME", "WORD", "STRING")):
                    raise self.error(f"repeat count must be a positive integer, got {count.text!r}",
                                     count.span)
                raise self.error("missing repeat count after '*'", star.span, "e.g. delta*12")
            self.next()
            n = int(count.text)
            if n < 1:
                raise self.error(f"repeat count must be at least 1, got {n}", count.span)
            if len(terms) * n > MAX_LAYERS:
                raise self.error(f"repeat expands to {len(terms) * n} layers, more than {MAX_LAYERS}",
                                 count.span)
            terms = terms * n
        return terms

    def atom(self) -> List[Term]:
        tok = self.next()
        if tok.kind == "(":
            terms = self.sequence(opener=tok)
            if self.peek().kind != ")":
                raise self.error("unclosed '('", tok.span, "add the matching ')'")
            self.next()
            if self.peek().kind == "[":
                raise self.error("overrides go right after a mixer name, not after a group",
                                 self.peek().span, "e.g. (delta swa[window=512])*4")
            return terms
        if tok.kind == "NAME":
            overrides = self.overrides() if self.peek().kind == "[" else ()
            return [Term(tok.text, overrides, tok.span)]
        raise self.error(f"expected a mixer name or '(' but found {tok.text!r}", tok.span)

    def overrides(self) -> Tuple[Override, ...]:
        opener = self.next()
        out: List[Override] = []
        seen: Dict[str, Span] = {}
        while True:
            key = self.next()
            if key.kind == "]" and not out:
                raise self.error("empty override list '[]'", (opener.span[0], key.span[1]),
                                 "write overrides as [key=value, ...] or drop the brackets")
            if key.kind == "EOF":
                raise self.error("unclosed '['", opener.span, "add the matching ']'")
            if key.kind != "NAME":
                raise self.error(f"expected an option name but found {key.text!r}", key.span,
                                 "write overrides as [key=value, ...]")
            if key.text in seen:
                raise self.error(f"option '{key.text}' given twice", key.span)
            eq = self.next()
            if eq.kind != "=":
                raise self.error(f"expected '=' after option '{key.text}'",
                                 eq.span if eq.kind != "EOF" else key.span,
                                 "write overrides as [key=value, ...]")
            val = self.next()
            if val.kind not in ("NAME", "INT", "FLOAT", "WORD", "STRING"):
                span = val.span if val.kind != "EOF" else eq.span
                raise self.error(f"missing value for option '{key.text}'", span)
            seen[key.text] = key.span
            out.append(Override(key.text, _value(val), key.span, val.span))
            sep = self.next()
            if sep.kind == "]":
                return tuple(out)
            if sep.kind == "EOF":
                raise self.error("unclosed '['", opener.span, "add the matching ']'")
            if sep.kind != ",":
                raise self.error(f"expected ',' or ']' but found {sep.text!r}", sep.span)


def _value(tok: _Tok) -> Any:
    if tok.kind == "INT":
        return int(tok.text)
    if tok.kind == "FLOAT":
        return float(tok.text)
    if tok.kind == "NAME" and tok.text.lower() in _KEYWORDS:
        return _KEYWORDS[tok.text.lower()]
    return tok.text


def parse_pattern(pattern: str) -> List[Term]:
    """Expand ``pattern`` into one ``Term`` per layer (names not yet checked).

    ``parse_pattern("(delta swa[window=512])*2")`` -> 4 terms labelled
    ``delta, swa[window=512], delta, swa[window=512]``. Raises SpecError on bad syntax.
    """
    if not isinstance(pattern, str):
        raise SpecError(f"pattern must be a string, got {type(pattern).__name__}")
    return _Parser(pattern).parse()


# ---------------------------------------------------------------------------------------------
# Resolution: names -> registry key + validated Config


@dataclass(frozen=True)
class LayerSpec:
    """One resolved layer.

    ``index``: 0-based layer number; ``name``: the layer as written, canonicalised
    (``swa`` or ``swa[window=1024]``; joining the names with spaces gives an equivalent
    pattern); ``mixer``: the registry key (``zoo.layers.MIXERS``); ``config``: an instance of
    that mixer's ``Config`` with every option set.
    """

    index: int
    name: str
    mixer: str
    config: Any


class _Names:
    """Resolves pattern names (user aliases over built-ins) to (registry key, options)."""

    def __init__(self, aliases: Mapping[str, Any], registry: Mapping[str, Any]):
        if not isinstance(aliases, Mapping):
            raise SpecError(f"model.mixers must be a mapping of alias -> {{type: ..., options}}, "
                            f"got {type(aliases).__name__}")
        self.registry = registry
        self.aliases: Dict[str, Mapping[str, Any]] = dict(aliases)
        for name, entry in self.aliases.items():
            where = f"model.mixers.{name}"
            if not isinstance(name, str) or not _NAME.match(name):
                raise SpecError(f"model.mixers: alias name {name!r} cannot be written in a pattern",
                                hint="use letters, digits and _, starting with a letter or _")
            if not isinstance(entry, Mapping):
                raise SpecError(f"{where} must be a mapping like {{type: attention, window: 512}}, "
                                f"got {entry!r}")
            if not isinstance(entry.get("type"), str):
                raise SpecError(f"{where} needs a 'type:' naming a mixer or another alias",
                                hint=f"valid types: {', '.join(self.types(exclude=name))}")
        self.done: Dict[str, Tuple[str, Dict[str, Any]]] = {}

    def pattern_names(self) -> List[str]:
        return sorted(set(BUILTINS) | set(self.aliases))

    def types(self, exclude: str) -> List[str]:
        return sorted(set(self.registry) | set(BUILTINS) | (set(self.aliases) - {exclude}))

    def lookup(self, name: str) -> Optional[Tuple[str, Dict[str, Any]]]:
        """A pattern name -> (registry key, options), or None when the name is unknown."""
        if name in self.aliases:
            return self.alias(name, ())
        if name in BUILTINS:
            return self.builtin(name)
        return None

    def builtin(self, name: str) -> Tuple[str, Dict[str, Any]]:
        opts = dict(BUILTINS[name])
        key = opts.pop("type")
        if key not in self.registry:
            raise SpecError(f"built-in '{name}' needs mixer '{key}', which zoo.layers.MIXERS lacks")
        return key, opts

    def alias(self, name: str, chain: Tuple[str, ...]) -> Tuple[str, Dict[str, Any]]:
        if name in self.done:
            return self.done[name]
        if name in chain:
            cycle = " -> ".join(chain[chain.index(name):] + (name,))
            raise SpecError(f"model.mixers: alias cycle {cycle}",
                            hint="point one of them at a mixer type such as "
                                 + ", ".join(sorted(self.registry)))
        entry = self.aliases[name]
        target = entry["type"]
        chain = chain + (name,)
        if target in self.aliases and target != name:
            key, base = self.alias(target, chain)
        elif target in BUILTINS:
            key, base = self.builtin(target)
        elif target in self.registry:
            key, base = target, {}
        else:
            close = difflib.get_close_matches(target, self.types(exclude=name), n=1)
            raise SpecError(f"model.mixers.{name}: unknown type '{target}'"
                            + (f" (did you mean '{close[0]}'?)" if close else ""),
                            hint=f"valid types: {', '.join(self.types(exclude=name))}")
        config_cls = self.registry[key].Config
        own = {}
        for opt, value in entry.items():
            if opt == "type":
                continue
            own[opt] = _check_option(config_cls, key, str(opt), value,
                                     lambda reason, hint=None: SpecError(
                                         f"model.mixers.{name}: {reason}", hint=hint))
        self.done[name] = (key, {**base, **own})
        return self.done[name]


def _check_option(config_cls: type, mixer: str, key: str, value: Any, fail) -> Any:
    """Validate ``key=value`` against ``config_cls``; return the value (int -> float coerced)."""
    hints = _type_hints(config_cls)
    if key not in hints:
        close = difflib.get_close_matches(key, list(hints), n=1)
        raise fail(f"unknown option '{key}' for mixer '{mixer}'"
                   + (f" (did you mean '{close[0]}'?)" if close else ""),
                   f"valid options: {', '.join(sorted(hints))}")
    ok, coerced = _coerce(value, hints[key])
    if not ok:
        raise fail(f"option '{key}' of mixer '{mixer}' expects {_type_name(hints[key])}, "
                   f"got {_fmt_value(value) if _is_scalar(value) and not isinstance(value, str) else repr(value)} "
                   f"({type(value).__name__})")
    return coerced


def _type_hints(config_cls: type) -> Dict[str, Any]:
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints.get(f.name, Any) for f in fields(config_cls)}


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _coerce(value: Any, hint: Any) -> Tuple[bool, Any]:
    """(fits, value) for the basic hints mixer Configs use: bool/int/float/str, Optional, Literal."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True, value
    if origin is typing.Union:
        for arm in typing.get_args(hint):
            ok, out = _coerce(value, arm)
            if ok:
                return True, out
        return False, value
    if origin is typing.Literal:
        return value in typing.get_args(hint), value
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    return True, value  # container or custom types: the mixer's Config checks them


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Union:
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is typing.Literal:
        return "one of " + ", ".join(_fmt_value(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "none"
    return getattr(hint, "__name__", str(hint))


def _section(model_cfg: Any, key: str, config_cls: type) -> Dict[str, Any]:
    """The model's default options for mixer ``key`` (its ``model.<key>`` section), as a dict."""
    section = getattr(model_cfg, key, None)
    if section is None:
        return {}
    if is_dataclass(section):
        return {f.name: getattr(section, f.name) for f in fields(section)}
    if isinstance(section, Mapping):
        return dict(section)
    raise SpecError(f"model.{key} must be a {config_cls.__name__} section, got {type(section).__name__}")


def resolve_layers(model_cfg: Any, registry: Optional[Mapping[str, Any]] = None) -> List[LayerSpec]:
    """Expand ``model_cfg.pattern`` into one validated ``LayerSpec`` per layer.

    ``model_cfg`` is a ``zoo.config.ModelConfig`` (reads pattern, n_layers, d_model, n_heads,
    mixers and the per-type sections). ``registry`` defaults to ``zoo.layers.MIXERS``.
    Raises SpecError (with a caret into the pattern where one applies) on unknown names,
    unknown or ill-typed options, alias cycles and a length that differs from ``n_layers``.
    """
    if registry is None:
        from zoo.layers import MIXERS as registry
    pattern = model_cfg.pattern
    terms = parse_pattern(pattern)
    n_layers = model_cfg.n_layers
    if n_layers is not None and len(terms) != n_layers:
        shown = " ".join(pattern.split())
        raise SpecError(f"pattern '{shown}' expands to {len(terms)} layers but n_layers={n_layers}",
                        hint=f"fix the repeat counts, set n_layers={len(terms)}, "
                             "or leave n_layers unset to take the pattern's length")
    names = _Names(model_cfg.mixers or {}, registry)
    layers: List[LayerSpec] = []
    built: Dict[Tuple[str, str], Any] = {}  # (pattern name, label) -> Config, copied per layer
    for index, term in enumerate(terms):
        try:
            found = names.lookup(term.name)
        except SpecError as err:  # a broken alias: show where the pattern uses it
            raise SpecError(err.reason, pattern, term.span, err.hint,
                            where="(alias used in pattern)") from None
        if found is None:
            valid = names.pattern_names()
            close = difflib.get_close_matches(term.name, valid, n=1)
            raise SpecError(f"unknown mixer '{term.name}'"
                            + (f" (did you mean '{close[0]}'?)" if close else ""),
                            pattern, term.span, f"valid names: {', '.join(valid)}")
        key, alias_opts = found
        cache_key = (key, term.label)
        if cache_key not in built:
            built[cache_key] = _build_config(model_cfg, registry, key, alias_opts, term, pattern)
        layers.append(LayerSpec(index, term.label, key, replace(built[cache_key])))
    for alias in names.aliases:  # unused aliases are checked too: a typo there is still a bug
        names.alias(alias, ())
    return layers


def _build_config(model_cfg: Any, registry: Mapping[str, Any], key: str,
                  alias_opts: Dict[str, Any], term: Term, pattern: str) -> Any:
    config_cls = registry[key].Config
    opts = {**_section(model_cfg, key, config_cls), **alias_opts}
    for o in term.overrides:
        def fail(reason: str, hint: Optional[str] = None, o=o) -> SpecError:
            span = o.key_span if reason.startswith("unknown") else o.value_span
            return SpecError(reason, pattern, span, hint)
        opts[o.key] = _check_option(config_cls, key, o.key, o.value, fail)
    valid = {f.name for f in fields(config_cls)}
    if "n_heads" in valid and opts.get("n_heads") is None:
        opts["n_heads"] = model_cfg.n_heads
    if "norm_eps" in valid and opts.get("norm_eps") is None:
        opts["norm_eps"] = model_cfg.norm_eps
    if "head_dim" in valid and opts.get("head_dim") is None:
        heads = opts.get("n_heads")
        if not isinstance(heads, int) or isinstance(heads, bool) or heads < 1:
            raise SpecError(f"n_heads must be a positive integer for '{term.label}', got {heads!r}",
                            pattern, term.span)
        if model_cfg.d_model % heads:
            raise SpecError(f"d_model={model_cfg.d_model} is not divisible by n_heads={heads} "
                            f"for '{term.label}'", pattern, term.span,
                            "set head_dim explicitly or pick n_heads that divides d_model")
        opts["head_dim"] = model_cfg.d_model // heads
    try:
        return config_cls(**opts)
    except (ValueError, TypeError) as err:  # the Config's own __post_init__ checks
        raise SpecError(f"invalid options for '{term.label}' ({key}): {err}", pattern,
                        term.span) from None


# ---------------------------------------------------------------------------------------------
# Summary


def describe(layers: Sequence[LayerSpec]) -> str:
    """A short pattern equivalent to ``layers``, for headers.

    The whole stack as one repeated group when it is periodic (``(delta swa)*12``), else runs
    of equal names (``delta attn delta*10 attn delta*11``). Parsing the result gives the same
    layer names back.
    """
    names = [layer.name for layer in layers]
    n = len(names)
    for period in range(1, n // 2 + 1):
        if n % period == 0 and names == names[:period] * (n // period):
            body = _runs(names[:period])
            return f"{body}*{n // period}" if period == 1 else f"({body})*{n // period}"
    return _runs(names)


def _runs(names: Sequence[str]) -> str:
    out: List[str] = []
    i = 0
    while i < len(names):
        j = i
        while j < len(names) and names[j] == names[i]:
            j += 1
        out.append(names[i] if j - i == 1 else f"{names[i]}*{j - i}")
        i = j
    return " ".join(out)
