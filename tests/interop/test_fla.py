"""fla 0.6.0 checkpoints -> zoo and back, on checkpoints written here in fla's file layout.

The checkpoints carry the config keys and tensor names/shapes fla 0.6.0's DeltaNetForCausalLM /
GatedDeltaNetForCausalLM write (fla/models/*/configuration_*.py and the layer constructors in
fla/layers/{delta_net,gated_deltanet,attn}.py); for four of the configs below the key set, the
tensor names and the shapes were checked equal to what fla 0.6.0 + transformers 5.17.0's
save_pretrained writes (fla's attn specs come back with their defaults filled in, which
``_attn_specs`` does too). ``fla_reference_logits`` is an independent
per-token float32 forward of those architectures over the fla-named tensors (no zoo code), so the
import is checked against what the fla model computes, not only against zoo itself.
"""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from zoo.interop.fla import InteropError, export_fla, fla_to_zoo_config, import_fla
from zoo.model import ZooModel

# -------------------------------------------------------------------------------------------
# fla-layout checkpoints

_COMMON = dict(attn_mode="chunk", use_short_conv=True, allow_neg_eigval=False, conv_size=4,
               max_position_embeddings=2048, hidden_ratio=4, intermediate_size=None, hidden_act="swish",
               norm_eps=1e-6, attn=None, use_cache=True, pad_token_id=None, bos_token_id=1, eos_token_id=2,
               tie_word_embeddings=False, initializer_range=0.02, fuse_norm=True, fuse_swiglu=True,
               fuse_cross_entropy=True, fuse_linear_cross_entropy=False, use_l2warp=False,
               attnres_block_size=None)


def fla_config(model_type: str, **kw) -> dict:
    """A config.json as fla 0.6.0's save_pretrained writes it (every constructor key + HF's)."""
    if model_type == "delta_net":
        base = dict(_COMMON, hidden_size=64, expand_k=1.0, expand_v=1.0, use_gate=False, use_beta=True,
                    use_output_norm=True, num_heads=4, qk_norm="l2", qk_activation="silu",
                    num_hidden_layers=2, vocab_size=97, architectures=["DeltaNetForCausalLM"])
    else:
        base = dict(_COMMON, hidden_size=64, expand_v=2.0, use_gate=True, head_dim=16, num_heads=3,
                    num_v_heads=None, num_hidden_layers=2, vocab_size=97, output_gate_activation="swish",
                    architectures=["GatedDeltaNetForCausalLM"])
    base.update(model_type=model_type, transformers_version="5.17.0", dtype="float32")
    base.update(kw)
    return base


def _attn_spec_of(cfg: dict, i: int):
    attn = cfg.get("attn")
    for spec in ([attn] if isinstance(attn, dict) else attn or []):
        if i in spec["layers"]:
            return {"num_kv_heads": spec["num_heads"], "window_size": None, "rope_theta": 10000.0, **spec}
    return None


def fla_tensors(cfg: dict, seed: int = 0) -> dict:
    """Random tensors named and shaped as fla 0.6.0's modules hold them."""
    g = torch.Generator().manual_seed(seed)
    d, V = cfg["hidden_size"], cfg["vocab_size"]
    inter = cfg["intermediate_size"] or 256 * ((int(d * (cfg["hidden_ratio"] or 4) * 2 / 3) + 255) // 256)
    W = cfg["conv_size"]

    def rnd(*shape, std=0.2):
        return torch.randn(*shape, generator=g) * std

    t = {"model.embeddings.weight": rnd(V, d, std=1.0), "model.norm.weight": 1 + rnd(d)}
    if not cfg["tie_word_embeddings"]:
        t["lm_head.weight"] = rnd(V, d)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t[p + "attn_norm.weight"] = 1 + rnd(d)
        t[p + "mlp_norm.weight"] = 1 + rnd(d)
        t[p + "mlp.gate_proj.weight"] = rnd(inter, d)
        t[p + "mlp.up_proj.weight"] = rnd(inter, d)
        t[p + "mlp.down_proj.weight"] = rnd(d, inter)
        spec = _attn_spec_of(cfg, i)
        a = p + "attn."
        if spec is not None:
            hd = d // spec["num_heads"]
            t[a + "q_proj.weight"] = rnd(d, d)
            t[a + "k_proj.weight"] = rnd(spec["num_kv_heads"] * hd, d)
            t[a + "v_proj.weight"] = rnd(spec["num_kv_heads"] * hd, d)
            t[a + "o_proj.weight"] = rnd(d, d)
            continue
        H = cfg["num_heads"]
        if cfg["model_type"] == "delta_net":
            key_dim, value_dim = round(d * cfg["expand_k"]), round(d * cfg["expand_v"])
        else:
            key_dim, value_dim = H * cfg["head_dim"], H * int(cfg["head_dim"] * cfg["expand_v"])
            t[a + "a_proj.weight"] = rnd(H, d)
            t[a + "A_log"] = torch.empty(H).uniform_(1, 16, generator=g).log()
            t[a + "dt_bias"] = rnd(H, std=1.0)
        t[a + "q_proj.weight"] = rnd(key_dim, d)
        t[a + "k_proj.weight"] = rnd(key_dim, d)
        t[a + "v_proj.weight"] = rnd(value_dim, d)
        t[a + "b_proj.weight"] = rnd(H, d)
        t[a + "q_conv1d.weight"] = rnd(key_dim, 1, W, std=0.5)
        t[a + "k_conv1d.weight"] = rnd(key_dim, 1, W, std=0.5)
        t[a + "v_conv1d.weight"] = rnd(value_dim, 1, W, std=0.5)
        if cfg["use_gate"]:
            t[a + "g_proj.weight"] = rnd(value_dim, d)
        t[a + "o_norm.weight"] = 1 + rnd(value_dim // H)
        t[a + "o_proj.weight"] = rnd(d, value_dim)
    return t


def write_fla(path, cfg: dict, tensors: dict, tokenizer: bool = True):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer:
        (path / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "BPE"}}')
        (path / "tokenizer_config.json").write_text("{}")
    return path


# -------------------------------------------------------------------------------------------
# Independent reference forward over fla tensor names (float32, one token at a time)


def _rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _causal_conv_silu(x, w):  # x [T, C], w [C, 1, W]: y_t = sum_j w[:, 0, j] x_{t-W+1+j}
    T, C = x.shape
    Wd = w.shape[-1]
    xp = torch.cat([x.new_zeros(Wd - 1, C), x])
    y = sum(xp[j:j + T] * w[:, 0, j] for j in range(Wd))
    return F.silu(y)


def _delta_mixer(x, t, a, cfg, gated):
    T, d = x.shape
    H = cfg["num_heads"]
    q = _causal_conv_silu(x @ t[a + "q_proj.weight"].T, t[a + "q_conv1d.weight"])
    k = _causal_conv_silu(x @ t[a + "k_proj.weight"].T, t[a + "k_conv1d.weight"])
    v = _causal_conv_silu(x @ t[a + "v_proj.weight"].T, t[a + "v_conv1d.weight"])
    q, k, v = q.view(T, H, -1), k.view(T, H, -1), v.view(T, H, -1)
    q = q / torch.sqrt(q.pow(2).sum(-1, keepdim=True) + 1e-6)
    k = k / torch.sqrt(k.pow(2).sum(-1, keepdim=True) + 1e-6)
    beta = torch.sigmoid(x @ t[a + "b_proj.weight"].T)  # [T, H]
    if gated:
        gate = -t[a + "A_log"].exp() * F.softplus(x @ t[a + "a_proj.weight"].T + t[a + "dt_bias"])
    S = x.new_zeros(H, q.shape[-1], v.shape[-1])
    outs = []
    for i in range(T):
        if gated:
            S = S * gate[i].exp()[:, None, None]
        err = v[i] - torch.einsum("hk,hkv->hv", k[i], S)
        S = S + torch.einsum("hk,hv->hkv", k[i], err * beta[i][:, None])
        outs.append(torch.einsum("hk,hkv->hv", q[i] * q.shape[-1] ** -0.5, S))
    o = _rms(torch.stack(outs), t[a + "o_norm.weight"], cfg["norm_eps"])
    if cfg["use_gate"]:
        o = o * F.silu((x @ t[a + "g_proj.weight"].T).view(T, H, -1))
    return o.reshape(T, -1) @ t[a + "o_proj.weight"].T


def _rope(x, theta):  # x [T, H, D], rotate-half pairs (i, i + D/2)
    T, _, D = x.shape
    inv = theta ** (-torch.arange(0, D, 2, dtype=torch.float32) / D)
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv
    cos, sin = ang.cos()[:, None], ang.sin()[:, None]
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def _attention(x, t, a, spec):
    T, d = x.shape
    H, Hkv = spec["num_heads"], spec["num_kv_heads"]
    hd = d // H
    q = _rope((x @ t[a + "q_proj.weight"].T).view(T, H, hd), spec["rope_theta"])
    k = _rope((x @ t[a + "k_proj.weight"].T).view(T, Hkv, hd), spec["rope_theta"])
    v = (x @ t[a + "v_proj.weight"].T).view(T, Hkv, hd)
    k, v = k.repeat_interleave(H // Hkv, 1), v.repeat_interleave(H // Hkv, 1)
    s = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None]
    ok = j <= i
    if spec["window_size"] is not None:
        ok &= i - j < spec["window_size"]
    o = torch.einsum("hqk,khd->qhd", s.masked_fill(~ok, float("-inf")).softmax(-1), v)
    return o.reshape(T, d) @ t[a + "o_proj.weight"].T


def fla_reference_logits(cfg: dict, tensors: dict, ids: torch.Tensor) -> torch.Tensor:
    """ids [T] -> logits [T, V], the fla architecture's forward over fla-named fp32 tensors."""
    t = {k: v.float() for k, v in tensors.items()}
    eps = cfg["norm_eps"]
    x = t["model.embeddings.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = _rms(x, t[p + "attn_norm.weight"], eps)
        spec = _attn_spec_of(cfg, i)
        if spec is not None:
            x = x + _attention(h, t, p + "attn.", spec)
        else:
            x = x + _delta_mixer(h, t, p + "attn.", cfg, gated=cfg["model_type"] == "gated_deltanet")
        h = _rms(x, t[p + "mlp_norm.weight"], eps)
        x = x + (F.silu(h @ t[p + "mlp.gate_proj.weight"].T) * (h @ t[p + "mlp.up_proj.weight"].T)) \
            @ t[p + "mlp.down_proj.weight"].T
    head = t["model.embeddings.weight"] if cfg["tie_word_embeddings"] else t["lm_head.weight"]
    return _rms(x, t["model.norm.weight"], eps) @ head.T


def rel_rms(a, b):
    return ((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt()).item()


def import_and_compare(tmp_path, cfg, T=37, seed=0):
    tensors = fla_tensors(cfg, seed)
    src = write_fla(tmp_path / "fla", cfg, tensors)
    result = import_fla(src, tmp_path / "run")
    model = ZooModel.from_pretrained(tmp_path / "run" / "model").eval()
    ids = torch.randint(0, cfg["vocab_size"], (T,), generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        logits = model(ids[None])[0]
    ref = fla_reference_logits(cfg, tensors, ids)
    assert torch.isfinite(logits).all()
    assert rel_rms(logits, ref) <= 1e-4, rel_rms(logits, ref)
    return result, model, tensors


# -------------------------------------------------------------------------------------------
# Import: logits and weight placement


@pytest.mark.parametrize("kw", [
    dict(),
    dict(expand_v=2.0, use_gate=True, tie_word_embeddings=True, conv_size=3),
    dict(expand_k=0.5, expand_v=1.5, intermediate_size=96, norm_eps=1e-5),
])
def test_deltanet_import_matches_fla_forward(tmp_path, kw):
    result, model, tensors = import_and_compare(tmp_path, fla_config("delta_net", **kw))
    assert result.pattern == "delta*2"
    d = 64
    assert model.layers[0].mixer.head_k == round(d * kw.get("expand_k", 1.0)) // 4
    assert model.layers[0].mixer.head_v == round(d * kw.get("expand_v", 1.0)) // 4
    assert torch.equal(model.layers[1].mixer.k_conv1d.weight, tensors["model.layers.1.attn.k_conv1d.weight"])
    assert torch.equal(model.layers[0].mixer_norm.weight, tensors["model.layers.0.attn_norm.weight"])
    assert torch.equal(model.layers[1].mlp.down_proj.weight, tensors["model.layers.1.mlp.down_proj.weight"])
    if kw.get("tie_word_embeddings"):
        assert model.lm_head.weight is model.embeddings.weight
    else:
        assert torch.equal(model.lm_head.weight, tensors["lm_head.weight"])


@pytest.mark.parametrize("kw", [dict(), dict(use_gate=False, expand_v=1.0, head_dim=32, num_heads=2)])
def test_gated_deltanet_import_matches_fla_forward(tmp_path, kw):
    result, model, tensors = import_and_compare(tmp_path, fla_config("gated_deltanet", **kw))
    assert result.pattern == "gdelta*2"
    assert torch.equal(model.layers[1].mixer.A_log, tensors["model.layers.1.attn.A_log"])
    assert torch.equal(model.layers[0].mixer.dt_bias, tensors["model.layers.0.attn.dt_bias"])


def test_hybrid_with_global_and_window_attention_matches_fla_forward(tmp_path):
    attn = [{"layers": [1], "num_heads": 4, "num_kv_heads": 2, "window_size": 8},
            {"layers": [3], "num_heads": 2, "rope_theta": 500000.0}]
    cfg = fla_config("delta_net", num_hidden_layers=4, attn=attn)
    result, model, _ = import_and_compare(tmp_path, cfg, T=29)
    assert result.pattern == "delta swa[window=8] delta attn1"
    assert model.layers[1].mixer.window == 8 and model.layers[1].mixer.n_kv_heads == 2
    assert model.layers[3].mixer.window is None and model.layers[3].mixer.rope_theta == 500000.0


def test_gated_deltanet_hybrid_matches_fla_forward(tmp_path):
    cfg = fla_config("gated_deltanet", num_hidden_layers=3,
                     attn={"layers": [0], "num_heads": 4, "num_kv_heads": 4, "qkv_bias": False,
                           "window_size": None, "rope_theta": 10000.0})
    result, _, _ = import_and_compare(tmp_path, cfg, T=21)
    assert result.pattern == "attn gdelta*2"


def test_paper_hybrid_attention_indices_map_to_the_pattern():
    cfg = fla_config("delta_net", num_hidden_layers=24, attn={"layers": [1, 12], "num_heads": 4})
    zoo, _ = fla_to_zoo_config(cfg)
    assert zoo["pattern"] == "delta attn delta*10 attn delta*11"
    swa = fla_to_zoo_config(fla_config("delta_net", num_hidden_layers=4,
                                       attn={"layers": [1, 3], "num_heads": 4, "window_size": 2048}))[0]
    assert swa["pattern"] == "(delta swa)*2"


def test_missing_keys_take_fla_defaults():
    # an older/minimal config.json: everything absent takes fla 0.6.0's constructor default
    zoo, notices = fla_to_zoo_config({"model_type": "delta_net", "hidden_size": 128, "num_heads": 4,
                                      "num_hidden_layers": 3, "norm_first": False})
    assert zoo["vocab_size"] == 32000 and zoo["tie_embeddings"] is False and zoo["norm_eps"] == 1e-6
    assert zoo["mlp_hidden"] == 512  # int(128 * 4 * 2/3) = 341 -> rounded up to 512
    assert zoo["deltanet"]["conv_size"] == 4 and zoo["deltanet"]["head_dim"] == 32
    assert notices == []


def test_bf16_sharded_and_bin_checkpoints(tmp_path):
    cfg = fla_config("gated_deltanet")
    tensors = {k: v.to(torch.bfloat16) for k, v in fla_tensors(cfg).items()}
    names = sorted(tensors)
    half = len(names) // 2
    src = tmp_path / "sharded"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(cfg))
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(src / shard))
    (src / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: s for s, ks in shards.items() for k in ks}}))
    import_fla(src, tmp_path / "run_sharded")
    out = load_file(str(tmp_path / "run_sharded" / "model" / "model.safetensors"))
    assert out["layers.1.mixer.v_conv1d.weight"].dtype == torch.bfloat16
    assert torch.equal(out["layers.1.mixer.v_conv1d.weight"], tensors["model.layers.1.attn.v_conv1d.weight"])

    binary = tmp_path / "bin"
    binary.mkdir()
    (binary / "config.json").write_text(json.dumps(cfg))
    torch.save(tensors, binary / "pytorch_model.bin")
    import_fla(binary, tmp_path / "run_bin")
    out_bin = load_file(str(tmp_path / "run_bin" / "model" / "model.safetensors"))
    assert out_bin.keys() == out.keys() and all(torch.equal(out[k], out_bin[k]) for k in out)


def test_run_directory_layout_and_tokenizer(tmp_path):
    cfg = fla_config("delta_net")
    write_fla(tmp_path / "fla", cfg, fla_tensors(cfg))
    result = import_fla(tmp_path / "fla", tmp_path / "run")
    run = tmp_path / "run"
    assert {p.name for p in (run / "model").iterdir()} == {"config.json", "model.safetensors", "tokenizer.json",
                                                          "tokenizer_config.json"}
    assert json.loads((run / "import.json").read_text())["config"] == cfg
    assert "model:" in (run / "config.yaml").read_text()
    assert result.notices == []
    with pytest.raises(InteropError, match="not empty"):
        import_fla(tmp_path / "fla", run)
    import_fla(tmp_path / "fla", run, overwrite=True)

    sp = write_fla(tmp_path / "fla_sp", cfg, fla_tensors(cfg), tokenizer=False)
    (sp / "tokenizer.model").write_bytes(b"\x00sentencepiece")
    res = import_fla(sp, tmp_path / "run_sp")
    assert (tmp_path / "run_sp" / "model" / "tokenizer.model").is_file()
    assert any("no tokenizer.json" in n for n in res.notices)


# -------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize("model_type,key,value", [
    ("delta_net", "qk_norm", "sum"),
    ("delta_net", "qk_activation", "relu"),
    ("delta_net", "use_beta", False),
    ("delta_net", "use_short_conv", False),
    ("delta_net", "allow_neg_eigval", True),
    ("delta_net", "hidden_act", "powlu"),
    ("delta_net", "attnres_block_size", 2),
    ("gated_deltanet", "use_short_conv", False),
    ("gated_deltanet", "num_v_heads", 6),
    ("gated_deltanet", "output_gate_activation", "sigmoid"),
    ("gated_deltanet", "allow_neg_eigval", True),
])
def test_unsupported_options_are_refused_by_name(model_type, key, value):
    with pytest.raises(InteropError, match=f"{key}={json.dumps(value)}"):
        fla_to_zoo_config(fla_config(model_type, **{key: value}))


def test_harmless_options_are_accepted():
    zoo, notices = fla_to_zoo_config(fla_config("delta_net", use_output_norm=False, attn_mode="fused_recurrent",
                                                fuse_norm=False, some_future_key=1))
    assert any("use_output_norm" in n for n in notices) and any("some_future_key" in n for n in notices)
    zoo, _ = fla_to_zoo_config(fla_config("gated_deltanet", use_gate=False, output_gate_activation="sigmoid",
                                          num_v_heads=3))
    assert zoo["gated_deltanet"]["use_gate"] is False


def test_unknown_model_type_lists_supported():
    with pytest.raises(InteropError, match="unsupported fla model_type 'mamba2'.*delta_net, gated_deltanet"):
        fla_to_zoo_config({"model_type": "mamba2"})


def test_attention_qkv_bias_is_refused():
    cfg = fla_config("delta_net", attn={"layers": [1], "num_heads": 4, "qkv_bias": True})
    with pytest.raises(InteropError, match="qkv_bias"):
        fla_to_zoo_config(cfg)


def test_stray_missing_and_misshapen_tensors_are_named(tmp_path):
    cfg = fla_config("delta_net")
    tensors = fla_tensors(cfg)
    bad = dict(tensors, **{"model.layers.0.attn.q_conv1d.bias": torch.zeros(64)})
    with pytest.raises(InteropError, match=r"q_conv1d\.bias.*convolution has no bias"):
        import_fla(write_fla(tmp_path / "a", cfg, bad), tmp_path / "ra")
    missing = {k: v for k, v in tensors.items() if k != "model.layers.1.attn.b_proj.weight"}
    with pytest.raises(InteropError, match=r"lacks.*model\.layers\.1\.attn\.b_proj\.weight"):
        import_fla(write_fla(tmp_path / "b", cfg, missing), tmp_path / "rb")
    shaped = dict(tensors, **{"model.layers.0.attn.o_norm.weight": torch.ones(32)})
    with pytest.raises(InteropError, match=r"o_norm\.weight has shape \(32,\)"):
        import_fla(write_fla(tmp_path / "c", cfg, shaped), tmp_path / "rc")


def test_hub_id_offline_is_a_clear_error(tmp_path, monkeypatch):
    import huggingface_hub

    def offline(**kw):
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo_id, **kw: offline())
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(InteropError, match="could not download 'fla-hub/delta_net-1.3B-100B'.*local directory"):
        import_fla("fla-hub/delta_net-1.3B-100B", tmp_path / "run")
    # online: only the safetensors weights are fetched when the repo has both formats
    cfg = fla_config("delta_net")
    snapshot = write_fla(tmp_path / "snapshot", cfg, fla_tensors(cfg))
    asked = {}

    def fake_snapshot(repo_id, allow_patterns):
        asked["patterns"] = allow_patterns
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "list_repo_files",
                        lambda repo_id, **kw: ["config.json", "model.safetensors", "pytorch_model.bin"])
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    assert import_fla("fla-hub/tiny", tmp_path / "hub_run").pattern == "delta*2"
    assert "*.safetensors" in asked["patterns"] and not any("bin" in p for p in asked["patterns"])
    with pytest.raises(InteropError, match="no such directory"):
        import_fla(str(tmp_path / "nowhere" / "x" / "y"), tmp_path / "run")


# -------------------------------------------------------------------------------------------
# Export and round trips


@pytest.mark.parametrize("model_type,kw", [
    ("delta_net", dict(expand_k=0.5, expand_v=1.5, tie_word_embeddings=True, bos_token_id=0, fuse_norm=False)),
    ("delta_net", dict(num_hidden_layers=4, attn=[{"layers": [1], "num_heads": 4, "window_size": 8},
                                                  {"layers": [3], "num_heads": 2, "rope_theta": 5e5}])),
    ("gated_deltanet", dict(num_hidden_layers=3, attn={"layers": [2], "num_heads": 2})),
])
def test_import_export_import_is_identity(tmp_path, model_type, kw):
    cfg = fla_config(model_type, **kw)
    tensors = fla_tensors(cfg)
    import_fla(write_fla(tmp_path / "fla", cfg, tensors), tmp_path / "run1")
    export_fla(tmp_path / "run1", tmp_path / "fla2")
    import_fla(tmp_path / "fla2", tmp_path / "run2")
    assert json.loads((tmp_path / "run1/model/config.json").read_text()) == \
        json.loads((tmp_path / "run2/model/config.json").read_text())
    a = load_file(str(tmp_path / "run1/model/model.safetensors"))
    b = load_file(str(tmp_path / "run2/model/model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the exported fla checkpoint holds fla's own names and values, and the architecture keys
    exported = load_file(str(tmp_path / "fla2/model.safetensors"))
    assert exported.keys() == tensors.keys() and all(torch.equal(exported[k], tensors[k]) for k in tensors)
    cfg2 = json.loads((tmp_path / "fla2/config.json").read_text())
    assert (tmp_path / "fla2/tokenizer.json").is_file()
    for key in ("hidden_size", "num_heads", "num_hidden_layers", "vocab_size", "tie_word_embeddings",
                "norm_eps", "conv_size", "use_gate", "bos_token_id", "fuse_norm", "model_type"):
        assert cfg2[key] == cfg[key], key
    assert cfg2["intermediate_size"] == 256 and cfg2["architectures"] == cfg["architectures"]


def _zoo_run(tmp_path, name, **model):
    from zoo.config import ModelConfig, merge

    eps = {"deltanet": {"norm_eps": 1e-6}, "gated_deltanet": {"norm_eps": 1e-6}}  # fla: one eps for all norms
    cfg = merge(ModelConfig, {"d_model": 64, "n_heads": 4, "vocab_size": 50, **eps, **model})
    ZooModel(cfg).save_pretrained(tmp_path / name / "model")
    return tmp_path / name


@pytest.mark.parametrize("pattern,model_type", [("(delta swa[window=16])*2", "delta_net"),
                                                ("(gdelta swa[window=16])*2", "gated_deltanet")])
def test_export_of_a_zoo_trained_hybrid(tmp_path, pattern, model_type):
    run = _zoo_run(tmp_path, "swa", pattern=pattern)
    export_fla(run, tmp_path / "out")
    cfg = json.loads((tmp_path / "out/config.json").read_text())
    assert cfg["model_type"] == model_type
    assert cfg["attn"] == {"layers": [1, 3], "num_heads": 4, "num_kv_heads": 4, "qkv_bias": False,
                           "window_size": 16, "rope_theta": 10000.0}
    import_fla(tmp_path / "out", tmp_path / "back")
    assert json.loads((tmp_path / "back/model/config.json").read_text())["pattern"] == pattern
    a = ZooModel.from_pretrained(run / "model").eval()
    b = ZooModel.from_pretrained(tmp_path / "back" / "model").eval()
    ids = torch.randint(0, 50, (1, 19))
    with torch.no_grad():
        assert torch.equal(a(ids), b(ids))


def test_export_ignores_the_gate_init_ranges(tmp_path):
    """They shape only the initial weights, so layers that differ in them still share fla's one config."""
    run = _zoo_run(tmp_path, "g", pattern="gdelta gdelta[A_max=2,dt_max=0.01]")
    export_fla(run, tmp_path / "out")
    assert json.loads((tmp_path / "out/config.json").read_text())["model_type"] == "gated_deltanet"


@pytest.mark.parametrize("model,match", [
    (dict(pattern="delta gdelta"), "one native mixer"),
    (dict(pattern="attn swa"), "only attention layers"),
    (dict(pattern="delta[conv_size=0] attn"), "conv_size=0"),
    (dict(pattern="delta delta[use_gate=true]"), "layer 1"),
    (dict(pattern="delta", deltanet={"norm_eps": 1e-5}), "deltanet.norm_eps=1e-05"),
    (dict(pattern="delta attn[head_dim=8]"), "head_dim"),
])
def test_export_refuses_what_fla_cannot_express(tmp_path, model, match):
    run = _zoo_run(tmp_path, "r", **model)
    with pytest.raises(InteropError, match=match):
        export_fla(run, tmp_path / "out")


def test_cli_import_and_export(tmp_path):
    from typer.testing import CliRunner

    from zoo.cli import app, main

    cfg = fla_config("delta_net", attn={"layers": [0], "num_heads": 4})
    write_fla(tmp_path / "fla", cfg, fla_tensors(cfg))
    runner = CliRunner()
    res = runner.invoke(app, ["import", str(tmp_path / "fla"), str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert "'attn delta'" in res.output
    res = runner.invoke(app, ["export", str(tmp_path / "run"), str(tmp_path / "out"), "--format", "fla"])
    assert res.exit_code == 0, res.output
    with pytest.raises(SystemExit) as exit_info:
        main(["import", str(tmp_path / "fla"), str(tmp_path / "run")])  # not empty
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(tmp_path / "run"), str(tmp_path / "o2"), "--format", "gguf"])
    assert exit_info.value.code == 2
