"""flash-linear-attention (fla 0.6.0) checkpoints <-> zoo run directories.

``import_fla(source, out_dir)`` reads an fla ``DeltaNetForCausalLM`` (``model_type: delta_net``)
or ``GatedDeltaNetForCausalLM`` (``gated_deltanet``) checkpoint, including fla's hybrids (the
``attn`` entry of the config puts softmax attention at the listed layer indices), and writes a
zoo run directory; ``export_fla(run_dir, out_dir)`` is the inverse where fla can express the model.

Config mapping (fla key -> zoo)::

    hidden_size -> d_model            num_hidden_layers -> n_layers (and the pattern's length)
    vocab_size -> vocab_size          tie_word_embeddings -> tie_embeddings
    norm_eps -> norm_eps, and the mixer's o_norm eps (fla passes the same value to both)
    intermediate_size | hidden_ratio -> mlp_hidden (fla's rule: int(h * ratio * 2/3) rounded up to 256)
    initializer_range -> init_std     max_position_embeddings -> max_seq_len
    delta_net: num_heads -> n_heads; hidden_size*expand_k/num_heads -> deltanet.head_dim;
               expand_v/expand_k -> deltanet.expand_v; conv_size, use_gate -> same
    gated_deltanet: num_heads, head_dim, expand_v, conv_size, use_gate -> gated_deltanet.*
    attn {layers, num_heads, num_kv_heads, window_size, rope_theta} (a dict or a list of them)
        -> ``attn`` / ``swa[window=W]`` in the pattern, ``model.attention`` options, and
           ``model.mixers`` aliases ``attn1``, ``attn2`` ... for further specs with other heads/theta

Tensor mapping: ``model.embeddings`` -> ``embeddings``, ``model.layers.i.attn_norm`` ->
``layers.i.mixer_norm``, ``model.layers.i.attn.*`` -> ``layers.i.mixer.*`` (zoo's mixers use fla's
parameter names and shapes: q/k/v/b/a/g/o_proj, A_log, dt_bias, {q,k,v}_conv1d.weight [C, 1, W],
o_norm), ``model.layers.i.mlp_norm`` / ``mlp.{gate,up,down}_proj`` and ``model.norm`` lose the
``model.`` prefix, ``lm_head`` stays. Tensors keep their dtype.

Options zoo cannot reproduce are refused by name (``REFUSED`` below lists them with the reason);
keys that do not change the forward pass (fused-kernel switches, token ids, ``attn_mode``) are
carried in ``import.json`` and restored on export. fla 0.6.0 accepts ``use_output_norm=false`` but
never reads it (its DeltaNet always normalises the output), so zoo imports it with a notice.
"""
from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from zoo.errors import ZooError

FLA_VERSION = "0.6.0"
SUPPORTED_MODEL_TYPES = ("delta_net", "gated_deltanet")
ARCHITECTURES = {"delta_net": "DeltaNetForCausalLM", "gated_deltanet": "GatedDeltaNetForCausalLM"}
NATIVE = {"delta_net": ("deltanet", "delta"), "gated_deltanet": ("gated_deltanet", "gdelta")}

# fla 0.6.0 constructor defaults (fla/models/*/configuration_*.py): a key missing from a
# config.json takes these values, exactly as fla would.
_COMMON_DEFAULTS: Dict[str, Any] = dict(
    attn_mode="chunk", use_gate=False, use_short_conv=True, allow_neg_eigval=False, conv_size=4,
    max_position_embeddings=2048, hidden_ratio=4, intermediate_size=None, hidden_act="swish",
    norm_eps=1e-6, attn=None, use_cache=True, pad_token_id=None, bos_token_id=1, eos_token_id=2,
    tie_word_embeddings=False, initializer_range=0.02, fuse_norm=True, fuse_swiglu=True,
    fuse_cross_entropy=True, fuse_linear_cross_entropy=False, use_l2warp=False, vocab_size=32000,
    attnres_block_size=None,
)
DEFAULTS: Dict[str, Dict[str, Any]] = {
    "delta_net": {**_COMMON_DEFAULTS, "hidden_size": 2048, "expand_k": 1.0, "expand_v": 1.0,
                  "use_beta": True, "use_output_norm": True, "num_heads": 16, "qk_norm": "l2",
                  "qk_activation": "silu", "num_hidden_layers": 24},
    "gated_deltanet": {**_COMMON_DEFAULTS, "hidden_size": 2048, "expand_v": 2.0, "use_gate": True,
                       "head_dim": 256, "num_heads": 6, "num_v_heads": None, "num_hidden_layers": 21,
                       "output_gate_activation": "swish"},
}
#: Keys with no effect on the forward pass: kept in import.json and written back on export.
CARRIED = ("attn_mode", "use_cache", "pad_token_id", "bos_token_id", "eos_token_id", "fuse_norm",
           "fuse_swiglu", "fuse_cross_entropy", "fuse_linear_cross_entropy", "use_l2warp")
# Hugging Face PretrainedConfig bookkeeping that config.json files carry.
_HF_KEYS = {"architectures", "model_type", "transformers_version", "torch_dtype", "dtype", "return_dict",
            "output_hidden_states", "output_attentions", "torchscript", "use_bfloat16", "tf_legacy_loss",
            "pruned_heads", "chunk_size_feed_forward", "is_encoder_decoder", "is_decoder",
            "add_cross_attention", "tie_encoder_decoder", "id2label", "label2id", "problem_type",
            "tokenizer_class", "auto_map"}

# (model types, key, accepted(value, cfg) -> bool, why zoo differs). Checked on import.
REFUSED: List[Tuple[Tuple[str, ...], str, Callable[[Any, dict], bool], str]] = [
    (("delta_net", "gated_deltanet"), "use_short_conv", lambda v, c: v is True,
     "zoo's conv-less path (conv_size=0, SiLU on q, k and v) has not been checked against fla's "
     "use_short_conv=false, so it is not mapped"),
    (("delta_net", "gated_deltanet"), "allow_neg_eigval", lambda v, c: v is False,
     "zoo has no negative-eigenvalue variant (beta scaled by 2)"),
    (("delta_net", "gated_deltanet"), "hidden_act", lambda v, c: v == "swish",
     "zoo's MLP is SwiGLU only ('swish')"),
    (("delta_net", "gated_deltanet"), "attnres_block_size", lambda v, c: v is None,
     "zoo blocks have plain residuals, not fla's attention residuals"),
    (("delta_net",), "qk_activation", lambda v, c: v == "silu",
     "zoo's DeltaNet applies SiLU to q and k (fla's 'silu')"),
    (("delta_net",), "qk_norm", lambda v, c: v == "l2",
     "zoo's DeltaNet L2-normalises q and k (fla's 'l2')"),
    (("delta_net",), "use_beta", lambda v, c: v is True,
     "zoo's DeltaNet always learns beta = sigmoid(b_proj x)"),
    (("gated_deltanet",), "num_v_heads", lambda v, c: v is None or v == c["num_heads"],
     "zoo's Gated DeltaNet has no grouped value heads (num_v_heads must equal num_heads)"),
    (("gated_deltanet",), "output_gate_activation", lambda v, c: v in ("swish", "silu") or not c["use_gate"],
     "zoo's output gate is silu(g_proj x)"),
    (("delta_net", "gated_deltanet"), "norm_first", lambda v, c: v is False,
     "an extra norm inside the mixer (older fla) has no zoo counterpart"),
    (("delta_net", "gated_deltanet"), "elementwise_affine", lambda v, c: v is True,
     "zoo's norms always have a weight"),
]
_LEGACY_KEYS = {"norm_first", "elementwise_affine"}
_ATTN_KEYS = {"layers", "num_heads", "num_kv_heads", "qkv_bias", "window_size", "rope_theta"}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                    "vocab.json", "merges.txt", "added_tokens.json")
_HUB_SAFETENSORS = ["*.safetensors", "*.safetensors.index.json"]
_HUB_BIN = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]


class InteropError(ZooError):
    """A checkpoint zoo cannot convert faithfully; the message names the option or tensor."""


@dataclass
class ConvertResult:
    """What ``import_fla`` / ``export_fla`` wrote, and the one-line notices for the user."""

    out_dir: Path
    model_type: str
    pattern: str
    n_params: int
    notices: List[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Reading an fla checkpoint


def resolve_source(source: str | Path) -> Path:
    """A local checkpoint directory, or a hub id (``owner/name``) downloaded to the HF cache."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        raise InteropError(f"{source} is a file; give the checkpoint directory that holds config.json")
    text = str(source)
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", text):
        raise InteropError(f"{source}: no such directory, and not a Hugging Face hub id (owner/name)")
    try:
        from huggingface_hub import list_repo_files, snapshot_download
    except ImportError:
        raise InteropError(f"{source} is not a local directory and huggingface_hub is not installed; "
                           "pip install huggingface_hub, or download the checkpoint and pass its directory") from None
    try:  # safetensors when the repo has them, else the .bin files; never both
        files = list_repo_files(text)
        weights = _HUB_SAFETENSORS if any(f.endswith(".safetensors") for f in files) else _HUB_BIN
        return Path(snapshot_download(repo_id=text, allow_patterns=["config.json", *weights, *_TOKENIZER_FILES]))
    except Exception as err:  # offline, unknown repo, gated repo, ...
        raise InteropError(f"could not download {text!r} from the Hugging Face hub ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else 'no detail'}); without network, "
                           "download the checkpoint elsewhere and pass its local directory") from None


def read_tensors(directory: Path) -> Dict[str, torch.Tensor]:
    """All tensors of a HF checkpoint directory: model.safetensors, sharded safetensors (index
    json), or pytorch_model.bin (loaded with ``weights_only=True``; sharded too)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    for index_name, loader in (("model.safetensors.index.json", load_file),
                               ("pytorch_model.bin.index.json", _load_bin)):
        index = directory / index_name
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            out: Dict[str, torch.Tensor] = {}
            for shard in shards:
                if not (directory / shard).is_file():
                    raise InteropError(f"{index} lists shard {shard}, which is missing from {directory}")
                out.update(loader(str(directory / shard)))
            return out
    if (directory / "model.safetensors").is_file():
        return load_file(str(directory / "model.safetensors"))
    if (directory / "pytorch_model.bin").is_file():
        return _load_bin(str(directory / "pytorch_model.bin"))
    raise InteropError(f"{directory} holds no weights: expected model.safetensors, a sharded "
                       "model.safetensors.index.json, or pytorch_model.bin")


def _load_bin(path: str) -> Dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InteropError(f"{path} does not load as plain tensors with torch.load(weights_only=True) "
                           f"({type(err).__name__}); zoo does not unpickle arbitrary objects") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InteropError(f"{path} is not a flat state dict of tensors")
    return state


def read_config(directory: Path) -> Dict[str, Any]:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise InteropError(f"{directory} has no config.json: not a Hugging Face checkpoint directory")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InteropError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(cfg, dict):
        raise InteropError(f"{path} must hold a JSON object")
    return cfg


# ---------------------------------------------------------------------------------------------
# Config: fla -> zoo


def fla_intermediate_size(hidden_size: int, hidden_ratio: Optional[float], intermediate_size: Optional[int]) -> int:
    """fla GatedMLP's width: ``intermediate_size``, else int(h * ratio * 2/3) rounded up to 256."""
    if intermediate_size is not None:
        return int(intermediate_size)
    ratio = 4 if hidden_ratio is None else hidden_ratio
    width = int(hidden_size * ratio * 2 / 3)
    return 256 * ((width + 255) // 256)


def _attn_specs(attn: Any, n_layers: int) -> List[Dict[str, Any]]:
    """fla's ``attn`` (None, a dict, or a list of dicts) -> list of specs with fla's defaults filled."""
    if attn is None:
        return []
    raw = [attn] if isinstance(attn, dict) else attn
    if not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
        raise InteropError(f"config 'attn' must be null, an object or a list of objects, got {attn!r}")
    specs, seen = [], set()
    for i, spec in enumerate(raw):
        where = "attn" if isinstance(attn, dict) else f"attn[{i}]"
        for key in ("layers", "num_heads"):
            if key not in spec:
                raise InteropError(f"config '{where}' lacks '{key}'")
        layers = spec["layers"]
        if not isinstance(layers, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in layers):
            raise InteropError(f"config '{where}.layers' must be a list of layer indices, got {layers!r}")
        for idx in layers:
            if not 0 <= idx < n_layers:
                raise InteropError(f"config '{where}.layers' has layer {idx}, outside 0..{n_layers - 1}")
            if idx in seen:
                raise InteropError(f"config '{where}.layers' assigns layer {idx} twice")
            seen.add(idx)
        full = {"num_kv_heads": None, "qkv_bias": False, "window_size": None, "rope_theta": 10000.0, **spec}
        if full["num_kv_heads"] is None:
            full["num_kv_heads"] = full["num_heads"]
        specs.append(full)
    return specs


def fla_to_zoo_config(fla_cfg: Dict[str, Any]) -> Tuple[Dict[str, Any], List[str]]:
    """fla config.json dict -> (zoo ModelConfig dict, notices). Raises InteropError on any option
    whose value zoo cannot reproduce."""
    model_type = fla_cfg.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise InteropError(f"unsupported fla model_type {model_type!r}; zoo imports: "
                           f"{', '.join(SUPPORTED_MODEL_TYPES)} (with or without 'attn' hybrid layers)")
    defaults = DEFAULTS[model_type]
    c = {**defaults, **fla_cfg}
    notices: List[str] = []
    for types, key, ok, why in REFUSED:
        if model_type in types and key in c and not ok(c[key], c):
            raise InteropError(f"fla option {key}={json.dumps(c[key])} is not supported: {why}")
    if model_type == "delta_net" and c["use_output_norm"] is not True:
        notices.append("use_output_norm=false is ignored by fla 0.6.0 itself (its DeltaNet always applies "
                       "o_norm); zoo does the same")
    known = set(defaults) | _HF_KEYS | _LEGACY_KEYS
    unknown = sorted(k for k in fla_cfg if k not in known and not k.startswith("_"))
    if unknown:
        notices.append(f"config keys unknown to fla {FLA_VERSION}'s {model_type} (fla ignores them too): "
                       + ", ".join(unknown))

    d, n_layers = int(c["hidden_size"]), int(c["num_hidden_layers"])
    H = int(c["num_heads"])
    if model_type == "delta_net":
        key_dim, value_dim = d * c["expand_k"], d * c["expand_v"]
        if not (math.isclose(key_dim, round(key_dim)) and math.isclose(value_dim, round(value_dim))):
            raise InteropError(f"hidden_size*expand_k / expand_v must be integers (fla asserts it), got "
                               f"{key_dim}, {value_dim}")
        key_dim, value_dim = round(key_dim), round(value_dim)
        if key_dim % H or value_dim % H:
            raise InteropError(f"key dim {key_dim} and value dim {value_dim} must be divisible by num_heads={H}")
        dk, dv = key_dim // H, value_dim // H
        expand_v = dv / dk
    else:
        dk = int(c["head_dim"])
        dv = int(dk * c["expand_v"])
        if not math.isclose(dk * c["expand_v"], dv, rel_tol=1e-5):
            raise InteropError(f"head_dim*expand_v = {dk * c['expand_v']} is not an integer (fla refuses it too)")
        expand_v = float(c["expand_v"])
    if int(dk * expand_v) != dv:
        raise InteropError(f"value head dim {dv} is not reachable as int(head_dim={dk} * expand_v) in zoo")
    section, alias = NATIVE[model_type]
    mixer_opts = {"n_heads": H, "head_dim": dk, "expand_v": expand_v, "conv_size": int(c["conv_size"]),
                  "use_gate": bool(c["use_gate"]), "norm_eps": float(c["norm_eps"])}

    names = [alias] * n_layers
    zoo: Dict[str, Any] = {
        "n_layers": n_layers, "d_model": d, "n_heads": H, "vocab_size": int(c["vocab_size"]),
        "mlp_hidden": fla_intermediate_size(d, c["hidden_ratio"], c["intermediate_size"]),
        "tie_embeddings": bool(c["tie_word_embeddings"]), "norm_eps": float(c["norm_eps"]),
        "init_std": float(c["initializer_range"]), "max_seq_len": int(c["max_position_embeddings"]),
        "mixers": {}, section: mixer_opts,
    }
    specs = _attn_specs(c["attn"], n_layers)
    for i, spec in enumerate(specs):
        where = "attn" if len(specs) == 1 else f"attn[{i}]"
        if spec["qkv_bias"]:
            raise InteropError(f"fla option {where}.qkv_bias=true is not supported: zoo's attention has no "
                               "q/k/v projection bias")
        extra = sorted(set(spec) - _ATTN_KEYS)
        if extra:
            notices.append(f"keys of '{where}' that fla {FLA_VERSION} ignores: {', '.join(extra)}")
        if d % spec["num_heads"] or spec["num_heads"] % spec["num_kv_heads"]:
            raise InteropError(f"'{where}': num_heads={spec['num_heads']} must divide hidden_size={d} and be "
                               f"a multiple of num_kv_heads={spec['num_kv_heads']}")
        opts = {"n_heads": spec["num_heads"], "n_kv_heads": spec["num_kv_heads"],
                "head_dim": d // spec["num_heads"], "rope_theta": float(spec["rope_theta"])}
        window = spec["window_size"]
        if i == 0:
            zoo["attention"] = dict(opts)
            name = "attn" if window is None else ("swa" if window == 2048 else f"swa[window={window}]")
        elif opts == zoo["attention"]:
            name = "attn" if window is None else ("swa" if window == 2048 else f"swa[window={window}]")
        else:
            name = f"attn{i}"
            zoo["mixers"][name] = {"type": "attention", **opts, "window": window}
        for idx in spec["layers"]:
            names[idx] = name
    zoo["pattern"] = _compress(names)
    return zoo, notices


def _compress(names: List[str]) -> str:
    from zoo.spec import describe

    @dataclass
    class _Named:
        name: str

    return describe([_Named(n) for n in names])


# ---------------------------------------------------------------------------------------------
# Tensors: fla <-> zoo names

_LAYER = re.compile(r"^model\.layers\.(\d+)\.(attn_norm|attn|mlp_norm|mlp)\.(.+)$")
_TOP = {"model.embeddings.weight": "embeddings.weight", "model.norm.weight": "norm.weight",
        "lm_head.weight": "lm_head.weight"}
_ZOO_LAYER = re.compile(r"^layers\.(\d+)\.(mixer_norm|mixer|mlp_norm|mlp)\.(.+)$")
_TO_ZOO_PART = {"attn_norm": "mixer_norm", "attn": "mixer", "mlp_norm": "mlp_norm", "mlp": "mlp"}
_TO_FLA_PART = {v: k for k, v in _TO_ZOO_PART.items()}
_HINTS = {r"_conv1d\.bias$": "short-convolution bias (fla conv_bias=True): zoo's convolution has no bias",
          r"\.(q|k|v)_proj\.bias$": "attention q/k/v bias: zoo's attention has none",
          r"res_(proj|norm)": "fla attention residuals (attnres_block_size): zoo has none",
          r"\.(q|k)_norm\.": "attention q/k norm: zoo's attention has none",
          r"\.attn\.norm\.": "an in-mixer input norm (older fla norm_first=true): zoo has none"}


def fla_name_to_zoo(name: str) -> Optional[str]:
    """``model.layers.3.attn.q_proj.weight`` -> ``layers.3.mixer.q_proj.weight``; None if not fla's layout."""
    if name in _TOP:
        return _TOP[name]
    m = _LAYER.match(name)
    return f"layers.{m.group(1)}.{_TO_ZOO_PART[m.group(2)]}.{m.group(3)}" if m else None


def zoo_name_to_fla(name: str) -> str:
    inverse = {v: k for k, v in _TOP.items()}
    if name in inverse:
        return inverse[name]
    m = _ZOO_LAYER.match(name)
    if not m:
        raise InteropError(f"zoo tensor {name!r} has no fla counterpart")
    return f"model.layers.{m.group(1)}.{_TO_FLA_PART[m.group(2)]}.{m.group(3)}"


def _expected_zoo_tensors(config) -> Dict[str, torch.Size]:
    """Names and shapes of the tensors a zoo model file holds (tied lm_head stored once)."""
    from zoo.model import ZooModel

    with torch.device("meta"):
        model = ZooModel(config)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    if config.tie_embeddings:
        shapes.pop("lm_head.weight")
    return shapes


def _hint(name: str) -> str:
    for pattern, text in _HINTS.items():
        if re.search(pattern, name):
            return f" ({text})"
    return ""


def fla_to_zoo_tensors(tensors: Dict[str, torch.Tensor], config) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Rename fla tensors to zoo's and check every name and shape against the zoo model of ``config``."""
    notices: List[str] = []
    expected = _expected_zoo_tensors(config)
    out: Dict[str, torch.Tensor] = {}
    unexpected = []
    for name, tensor in tensors.items():
        zoo_name = fla_name_to_zoo(name)
        if zoo_name == "lm_head.weight" and config.tie_embeddings:
            emb = tensors.get("model.embeddings.weight")
            if emb is not None and not torch.equal(emb, tensor):
                notices.append("tie_word_embeddings=true but lm_head.weight differs from the embeddings; "
                               "like fla (transformers ties them on load), zoo uses the embeddings")
            continue
        if zoo_name is None or zoo_name not in expected:
            unexpected.append(name)
            continue
        out[zoo_name] = tensor.contiguous()
    if unexpected:
        shown = "; ".join(f"{n}{_hint(n)}" for n in sorted(unexpected)[:8])
        more = f" and {len(unexpected) - 8} more" if len(unexpected) > 8 else ""
        raise InteropError(f"checkpoint tensors with no place in the zoo model: {shown}{more}")
    missing = sorted(set(expected) - set(out))
    if missing:
        fla_names = [zoo_name_to_fla(n) for n in missing[:8]]
        raise InteropError(f"checkpoint lacks tensors the config implies: {', '.join(fla_names)}"
                           + (f" and {len(missing) - 8} more" if len(missing) > 8 else ""))
    for name, shape in expected.items():
        if out[name].shape != shape:
            raise InteropError(f"tensor {zoo_name_to_fla(name)} has shape {tuple(out[name].shape)}, but the "
                               f"config implies {tuple(shape)}")
    return out, notices


# ---------------------------------------------------------------------------------------------
# Import


def _prepare_out(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InteropError(f"{out_dir} exists and is not a directory")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise InteropError(f"{out_dir} is not empty; choose another directory or pass --force to overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)


def _copy_tokenizer(src: Path, dst: Path) -> List[str]:
    copied = [name for name in _TOKENIZER_FILES if (src / name).is_file()]
    for name in copied:
        shutil.copyfile(src / name, dst / name)
    if "tokenizer.json" in copied:
        return []
    if copied:
        return [f"the checkpoint has no tokenizer.json (HF tokenizers format), only {', '.join(copied)} "
                f"(copied to {dst}); zoo eval/generate read tokenizer.json: convert with transformers, "
                "AutoTokenizer.from_pretrained(SRC).save_pretrained(DIR), and copy DIR/tokenizer.json there"]
    return [f"the checkpoint has no tokenizer files; zoo eval/generate need {dst}/tokenizer.json"]


def import_fla(source: str | Path, out_dir: str | Path, overwrite: bool = False) -> ConvertResult:
    """Convert an fla checkpoint (directory or hub id) into a zoo run directory ``out_dir``:
    ``config.yaml`` (``model:`` section), ``import.json`` (source and fla config),
    ``model/{config.json, model.safetensors, tokenizer files}``."""
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    from zoo.config import ModelConfig, merge, to_container

    src = resolve_source(source)
    fla_cfg = read_config(src)
    zoo_dict, notices = fla_to_zoo_config(fla_cfg)
    config = merge(ModelConfig, zoo_dict)
    tensors, more = fla_to_zoo_tensors(read_tensors(src), config)
    notices += more

    out_dir = Path(out_dir)
    _prepare_out(out_dir, overwrite)
    model_dir = out_dir / "model"
    model_dir.mkdir(exist_ok=True)
    container = to_container(config)
    (model_dir / "config.json").write_text(json.dumps(container, indent=2))
    save_file(tensors, str(model_dir / "model.safetensors"), metadata={"format": "pt"})
    notices += _copy_tokenizer(src, model_dir)
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml({"model": container}))
    (out_dir / "import.json").write_text(json.dumps(
        {"format": "fla", "fla_version": FLA_VERSION, "source": str(source), "config": fla_cfg}, indent=2))
    n_params = sum(t.numel() for t in tensors.values())
    return ConvertResult(out_dir, fla_cfg["model_type"], config.pattern, n_params, notices)


# ---------------------------------------------------------------------------------------------
# Export


def _model_dir(run_dir: Path) -> Path:
    for cand in (run_dir / "model", run_dir):
        if (cand / "config.json").is_file() and (cand / "model.safetensors").is_file():
            return cand
    raise InteropError(f"{run_dir} is neither a zoo run directory (with model/) nor a model directory "
                       "(config.json + model.safetensors)")


def _weights_meaning(config):
    """A mixer config without the fields that change no weight's meaning (what fla's one config must match)."""
    from zoo.layers.deltanet import GatedDeltaNetConfig

    if isinstance(config, GatedDeltaNetConfig):
        fresh = GatedDeltaNetConfig()
        config = replace(config, **{f: getattr(fresh, f) for f in GatedDeltaNetConfig.INIT})
    return replace(config, chunk_size=0)


def zoo_to_fla_config(config, carried: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """zoo ModelConfig -> fla 0.6.0 config.json dict; InteropError names what fla cannot express."""
    from zoo.spec import resolve_layers

    specs = resolve_layers(config)
    natives = [s for s in specs if s.mixer != "attention"]
    kinds = sorted({s.mixer for s in natives})
    if not natives:
        raise InteropError("the model has only attention layers; fla's DeltaNet/Gated DeltaNet formats need "
                           "at least one DeltaNet or Gated DeltaNet layer (fla's 'transformer' type is not "
                           "exported by zoo)")
    if len(kinds) > 1:
        raise InteropError(f"fla holds one native mixer per model; this one mixes {' and '.join(kinds)} "
                           f"(layers {[s.index for s in natives if s.mixer == kinds[1]]} are {kinds[1]})")
    mixer = kinds[0]
    model_type = "delta_net" if mixer == "deltanet" else "gated_deltanet"
    ref = natives[0]
    for s in natives[1:]:  # the CPU path's block length and the gate's init ranges leave the weights' meaning alone
        if _weights_meaning(s.config) != _weights_meaning(ref.config):
            raise InteropError(f"fla uses one {mixer} configuration for every layer; layer {s.index} "
                               f"({s.name}) differs from layer {ref.index} ({ref.name})")
    m = ref.config
    d = config.d_model
    H, dk = m.n_heads, m.head_dim
    dv = int(dk * m.expand_v)
    if m.conv_size < 1:
        raise InteropError(f"{mixer} conv_size=0 is not exported: zoo's conv-less path has not been checked "
                           "against fla's use_short_conv=false")
    if m.norm_eps != config.norm_eps:
        raise InteropError(f"fla uses one norm_eps for the block norms and the mixer's output norm; this "
                           f"model has norm_eps={config.norm_eps} and {mixer}.norm_eps={m.norm_eps} (leave model.{mixer}.norm_eps "
                           f"unset, so it follows model.norm_eps, to make a model exportable)")
    out: Dict[str, Any] = {"architectures": [ARCHITECTURES[model_type]], "model_type": model_type}
    out.update({k: v for k, v in DEFAULTS[model_type].items()})
    out.update({k: v for k, v in (carried or {}).items() if k in CARRIED})
    out.update(hidden_size=d, num_hidden_layers=len(specs), num_heads=H, conv_size=m.conv_size,
               use_gate=m.use_gate, norm_eps=config.norm_eps, vocab_size=config.vocab_size,
               tie_word_embeddings=config.tie_embeddings, initializer_range=config.init_std,
               max_position_embeddings=config.max_seq_len, intermediate_size=config.ffn_hidden)
    if model_type == "delta_net":
        expand_k, expand_v = H * dk / d, H * dv / d
        if round(d * expand_k) != H * dk or round(d * expand_v) != H * dv:
            raise InteropError(f"deltanet key/value widths {H * dk}/{H * dv} are not expressible as "
                               f"hidden_size*expand_k/expand_v with hidden_size={d}")
        out.update(expand_k=expand_k, expand_v=expand_v)
    else:
        out.update(head_dim=dk, expand_v=m.expand_v)

    groups: Dict[Tuple, List[int]] = {}
    for s in specs:
        if s.mixer != "attention":
            continue
        a = s.config
        if a.n_heads * a.head_dim != d:
            raise InteropError(f"attention layer {s.index} ({s.name}) has n_heads*head_dim = "
                               f"{a.n_heads}*{a.head_dim} != d_model={d}; fla's attention fixes "
                               "head_dim = hidden_size // num_heads")
        groups.setdefault((a.n_heads, a.n_kv_heads or a.n_heads, a.window, a.rope_theta), []).append(s.index)
    attn = [{"layers": layers, "num_heads": h, "num_kv_heads": kv, "qkv_bias": False, "window_size": w,
             "rope_theta": theta} for (h, kv, w, theta), layers in groups.items()]
    out["attn"] = None if not attn else attn[0] if len(attn) == 1 else attn
    return out


def export_fla(run_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> ConvertResult:
    """Write the zoo model of ``run_dir`` as an fla 0.6.0 checkpoint directory (config.json,
    model.safetensors, tokenizer files)."""
    from safetensors.torch import load_file, save_file

    from zoo.config import ModelConfig, merge

    run_dir = Path(run_dir)
    model_dir = _model_dir(run_dir)
    config = merge(ModelConfig, json.loads((model_dir / "config.json").read_text()))
    carried: Dict[str, Any] = {}
    provenance = run_dir / "import.json"
    if provenance.is_file():
        meta = json.loads(provenance.read_text())
        if meta.get("format") == "fla":
            carried = meta.get("config", {})
    fla_cfg = zoo_to_fla_config(config, carried)
    tensors = load_file(str(model_dir / "model.safetensors"))
    expected = _expected_zoo_tensors(config)
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected) - {"lm_head.weight"})
    if missing or extra:
        raise InteropError(f"{model_dir}/model.safetensors does not match its config.json "
                           f"(missing: {missing[:5]}, unexpected: {extra[:5]})")
    out = {zoo_name_to_fla(n): t.contiguous() for n, t in tensors.items()
           if not (config.tie_embeddings and n == "lm_head.weight")}

    out_dir = Path(out_dir)
    _prepare_out(out_dir, overwrite)
    (out_dir / "config.json").write_text(json.dumps(fla_cfg, indent=2))
    save_file(out, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    notices = []
    copied = [n for n in _TOKENIZER_FILES if (model_dir / n).is_file()]
    for name in copied:
        shutil.copyfile(model_dir / name, out_dir / name)
    if not copied:
        notices.append(f"{model_dir} has no tokenizer files; the fla checkpoint has none either")
    n_params = sum(t.numel() for t in out.values())
    return ConvertResult(out_dir, fla_cfg["model_type"], config.pattern, n_params, notices)
