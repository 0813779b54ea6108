"""Softmax attention, global (window=None) or sliding-window (window=W): RoPE, GQA, packed docs.

Window convention (DESIGN §3): window W means each query sees W keys including itself, i.e.
query i sees keys max(0, i-W+1)..i. ``window_left`` is the one place this is converted into a
backend's terms (the count of keys strictly before the query: flash-attn's
``window_size=(W-1, 0)``, FlexAttention's and the masks' ``q - kv <= W-1``).

Backends (``AttentionConfig.backend``), chosen by ``select_backend`` once per
(request, device, dtype) and then remembered:

- ``flash``: flash-attn-4 (``flash_attn.cute``, CuTe DSL, Hopper/Blackwell) or flash-attn 2.x
  (``flash_attn``), dense and varlen (``cu_seqlens``) entry points; CUDA, fp16/bf16 only.
- ``flex``: ``torch.nn.attention.flex_attention`` with a block mask (causal, window, documents),
  ``torch.compile``'d on CUDA; elsewhere torch runs it eager and forward-only (for tests; a
  backward there is a clear error); block masks are cached per (length, window, cu_seqlens, device).
- ``sdpa``: ``F.scaled_dot_product_attention``; ``is_causal`` for plain global attention,
  otherwise a boolean [T, T] mask (O(T²) memory: CPU and short sequences).
- ``math``: explicit masked softmax in float32 (O(T²)); the slow, obvious path.
- ``auto``: flash on CUDA when importable and the dtype is half precision, else flex on CUDA
  (one logged notice says why), sdpa elsewhere.

Packed documents: ``cu_seqlens`` (int32 [N+1]) indexes the flattened B*T tokens; the layer then
runs attention over one [1, B*T] sequence in which no query sees a key of another document, and
RoPE positions restart at each document start.

Generation (``init_cache``): global attention keeps a growing KV cache (preallocated in chunks
of 256 positions); SWA keeps a ring buffer of exactly W keys/values. A cache tracks the absolute
position for RoPE; the first (multi-token) prefill runs on the configured backend, later chunks
and single-token steps attend to the cache through a position-masked SDPA.
"""
from __future__ import annotations

import functools
import logging
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.errors import ZooError
from zoo.layers.packing import positions_in_document
from zoo.layers.rope import apply_rope, positions_for, rope_angles

log = logging.getLogger("zoo.attention")

BACKENDS = ("auto", "flash", "flex", "sdpa", "math")


@dataclass
class AttentionConfig:
    n_heads: Optional[int] = None  # None: the model's n_heads
    n_kv_heads: Optional[int] = None  # None: n_heads (MHA); fewer for GQA
    head_dim: Optional[int] = None  # None: d_model // n_heads
    # None: global causal; W: sliding window of W keys incl. self. In model.attention this is the
    # default of attention aliases defined under model.mixers: the built-ins set their own
    # (attn: global, swa: 2048; change with swa[window=W] or model.mixers.swa.window).
    window: Optional[int] = None
    rope_theta: float = 10000.0
    backend: str = "auto"  # auto | flash | flex | sdpa | math

    def __post_init__(self) -> None:
        window_left(self.window)  # validates
        if self.backend not in BACKENDS:
            raise AttentionConfigError(f"unknown attention backend {self.backend!r}; valid: {', '.join(BACKENDS)}")
        if self.rope_theta <= 0:
            raise AttentionConfigError(f"rope_theta must be > 0, got {self.rope_theta}")
        H, Hkv = self.n_heads, self.n_kv_heads
        if H is not None and (H < 1 or (Hkv is not None and (Hkv < 1 or H % Hkv))):
            raise AttentionConfigError(f"n_heads ({H}) must be a positive multiple of n_kv_heads ({Hkv})")
        if self.head_dim is not None and (self.head_dim < 2 or self.head_dim % 2):
            raise AttentionConfigError(f"head_dim must be even for RoPE, got {self.head_dim}; "
                                       "pick n_heads so that d_model / n_heads is even, or set head_dim")


class AttentionConfigError(ZooError):
    """Attention options that cannot work; the message names the option and the fix."""


class BackendUnavailable(ZooError, RuntimeError):
    """An explicitly requested attention backend that cannot run here; the message says what to do."""


# --------------------------------------------------------------------------------------------
# The window convention, converted in exactly one place.

def window_left(window: Optional[int]) -> int:
    """Keys strictly before the query that a query may see: ``W - 1`` for window W (W keys
    including itself), ``-1`` for global causal attention (unbounded)."""
    if window is None:
        return -1
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise AttentionConfigError(f"attention window must be None (global) or an int >= 1, got {window!r}")
    return window - 1


def _visible(q_idx, kv_idx, left: int):
    """Causal (+ sliding window) visibility of key ``kv_idx`` from query ``q_idx`` (broadcasting
    tensors of absolute positions; also used as a FlexAttention mask_mod body)."""
    ok = kv_idx <= q_idx
    if left >= 0:
        ok = ok & (q_idx - kv_idx <= left)
    return ok


# --------------------------------------------------------------------------------------------
# Backend discovery and choice.

@functools.lru_cache(maxsize=None)
def _flash_impl(capability_major: int):
    """(name, dense_fn, varlen_fn) of the installed flash-attn, or (None, reason, None).

    flash-attn-4 (``flash_attn.cute``) is preferred on sm90+ (Hopper, Blackwell), flash-attn 2.x
    elsewhere or when FA4 is missing."""
    reasons = []
    order = ("fa4", "fa2") if capability_major >= 9 else ("fa2", "fa4")
    for which in order:
        try:
            if which == "fa4":
                from flash_attn.cute import flash_attn_func, flash_attn_varlen_func
                return "flash-attn-4", flash_attn_func, flash_attn_varlen_func
            from flash_attn import flash_attn_func, flash_attn_varlen_func
            return "flash-attn-2", flash_attn_func, flash_attn_varlen_func
        except Exception as exc:  # ImportError, or a broken install raising at import time
            reasons.append(f"{which}: {type(exc).__name__}: {exc}")
    return None, "; ".join(reasons), None


def _flex_available() -> bool:
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention  # noqa: F401
        return True
    except ImportError:
        return False


_NOTICES: set[str] = set()


def _notice_once(msg: str) -> None:
    if msg not in _NOTICES:
        _NOTICES.add(msg)
        log.warning(msg)


_FLASH_INSTALL = ("install flash-attn (pip install 'zoo[flash]' for flash-attn 2.x, or the "
                  "flash-attn-4 package on Hopper) or choose attention.backend=flex|sdpa|math")


@functools.lru_cache(maxsize=None)
def select_backend(requested: str, device_type: str, dtype: torch.dtype, capability_major: int = 0) -> str:
    """Resolve ``requested`` (auto|flash|flex|sdpa|math) to the backend that runs.

    Cached, so the choice (and its notice) happens once per (request, device type, dtype).
    An explicitly requested backend that cannot run raises with the fix; ``auto`` falls back
    with one logged notice."""
    if requested not in BACKENDS:
        raise AttentionConfigError(f"unknown attention backend {requested!r}; valid: {', '.join(BACKENDS)}")
    half = dtype in (torch.float16, torch.bfloat16)
    if requested == "flash":
        if device_type != "cuda":
            raise BackendUnavailable(f"attention.backend=flash needs a CUDA device (got {device_type}); "
                               "choose attention.backend=flex|sdpa|math")
        name, why, _ = _flash_impl(capability_major)
        if name is None:
            raise BackendUnavailable(f"attention.backend=flash but flash-attn is not importable ({why}); "
                               + _FLASH_INSTALL)
        if not half:
            raise BackendUnavailable(f"flash-attn runs in fp16/bf16 only, got {dtype}; use bf16 autocast or "
                               "choose attention.backend=flex|sdpa|math")
        return "flash"
    if requested == "flex":
        if not _flex_available():
            raise BackendUnavailable("attention.backend=flex needs torch>=2.5 (torch.nn.attention.flex_attention); "
                               "upgrade torch or choose attention.backend=sdpa|math")
        return "flex"
    if requested in ("sdpa", "math"):
        return requested
    # auto
    if device_type != "cuda":
        return "sdpa"
    name, why, _ = _flash_impl(capability_major)
    if name is not None and half:
        return "flash"
    fallback = "flex" if _flex_available() else "sdpa"
    if name is None:
        _notice_once(f"zoo attention: flash-attn not available ({why.splitlines()[0][:200]}); "
                     f"using {fallback}. To use it: {_FLASH_INSTALL}.")
    else:
        _notice_once(f"zoo attention: {name} needs fp16/bf16 but inputs are {dtype}; using {fallback}.")
    return fallback


def _resolve(requested: str, x: torch.Tensor) -> str:
    major = torch.cuda.get_device_capability(x.device)[0] if x.device.type == "cuda" else 0
    return select_backend(requested, x.device.type, x.dtype, major)


# --------------------------------------------------------------------------------------------
# Packed documents.

def _cu_list(cu_seqlens: Union[torch.Tensor, Sequence[int]], total: int) -> tuple[int, ...]:
    """Validated cu_seqlens as a tuple of ints: starts at 0, non-decreasing (empty documents are
    allowed, as in the delta-rule kernels), ends at total."""
    cu = tuple(int(c) for c in (cu_seqlens.tolist() if isinstance(cu_seqlens, torch.Tensor) else cu_seqlens))
    if len(cu) < 2 or cu[0] != 0 or cu[-1] != total or any(b < a for a, b in zip(cu[:-1], cu[1:])):
        raise ValueError(f"cu_seqlens must start at 0, never decrease and end at B*T={total}; got "
                         f"{list(cu)[:8]}{'...' if len(cu) > 8 else ''}")
    return cu


def _doc_ids(cu: tuple[int, ...], device) -> torch.Tensor:
    lengths = torch.tensor([b - a for a, b in zip(cu[:-1], cu[1:])], device=device)
    return torch.repeat_interleave(torch.arange(len(cu) - 1, device=device, dtype=torch.int32), lengths)


def _mask_TT(T: int, left: int, cu: Optional[tuple[int, ...]], device) -> torch.Tensor:
    """bool [T, T]: True where query i may see key j."""
    idx = torch.arange(T, device=device)
    ok = _visible(idx[:, None], idx[None, :], left)
    if cu is not None:
        doc = _doc_ids(cu, device)
        ok = ok & (doc[:, None] == doc[None, :])
    return ok


# --------------------------------------------------------------------------------------------
# Backends: all take q [B,T,H,D], k/v [B,T,Hkv,D] and return [B,T,H,D]; with ``cu`` B is 1.

def _run_flash(q, k, v, left, cu, scale):
    major = torch.cuda.get_device_capability(q.device)[0]
    _, dense, varlen = _flash_impl(major)
    kw = dict(softmax_scale=scale, causal=True)
    if left >= 0:
        kw["window_size"] = (left, 0)
    if cu is None:
        out = dense(q, k, v, **kw)
    else:
        cu_t = torch.tensor(cu, dtype=torch.int32, device=q.device)
        m = max(b - a for a, b in zip(cu[:-1], cu[1:]))
        out = varlen(q[0], k[0], v[0], cu_seqlens_q=cu_t, cu_seqlens_k=cu_t,
                     max_seqlen_q=m, max_seqlen_k=m, **kw)
    if isinstance(out, tuple):  # flash-attn-4 returns (out, lse)
        out = out[0]
    return out.view(q.shape) if cu is not None else out


_BLOCK_MASKS: "OrderedDict[tuple, object]" = OrderedDict()
_BLOCK_MASK_CACHE_SIZE = 64


def _block_mask(T: int, left: int, cu: Optional[tuple[int, ...]], device: torch.device):
    """FlexAttention block mask for (T, window, documents), cached (LRU) per key."""
    from torch.nn.attention.flex_attention import create_block_mask

    key = (T, left, cu, str(device))
    bm = _BLOCK_MASKS.get(key)
    if bm is not None:
        _BLOCK_MASKS.move_to_end(key)
        return bm
    if cu is None:
        def mask_mod(b, h, q_idx, kv_idx):
            return _visible(q_idx, kv_idx, left)
    else:
        doc = _doc_ids(cu, device)

        def mask_mod(b, h, q_idx, kv_idx):
            return _visible(q_idx, kv_idx, left) & (doc[q_idx] == doc[kv_idx])
    bm = create_block_mask(mask_mod, None, None, T, T, device=device, _compile=device.type == "cuda")
    _BLOCK_MASKS[key] = bm
    if len(_BLOCK_MASKS) > _BLOCK_MASK_CACHE_SIZE:
        _BLOCK_MASKS.popitem(last=False)
    return bm


@functools.lru_cache(maxsize=None)
def _flex_fn(compiled: bool):
    from torch.nn.attention.flex_attention import flex_attention
    return torch.compile(flex_attention, dynamic=False) if compiled else flex_attention


def _run_flex(q, k, v, left, cu, scale):
    T = q.shape[1]
    bm = _block_mask(T, left, cu, q.device)
    compiled = q.device.type == "cuda"
    args = (q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    kw = dict(block_mask=bm, scale=scale, enable_gqa=q.shape[2] != k.shape[2])
    if compiled:
        return _flex_fn(True)(*args, **kw).transpose(1, 2)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        raise RuntimeError(f"FlexAttention has no backward on {q.device.type} (torch runs it uncompiled "
                           "there, forward only); choose attention.backend=sdpa|math off CUDA")
    _notice_once(f"zoo attention: FlexAttention on {q.device.type} runs uncompiled (materialises the "
                 "scores; for tests); choose attention.backend=sdpa for speed.")
    args = tuple(a.detach() for a in args)  # torch refuses requires_grad inputs here even under no_grad
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
        return _flex_fn(False)(*args, **kw).transpose(1, 2)


def _run_sdpa(q, k, v, left, cu, scale):
    T = q.shape[1]
    gqa = q.shape[2] != k.shape[2]
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if left < 0 and cu is None:
        o = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True, scale=scale, enable_gqa=gqa)
    else:
        mask = _mask_TT(T, left, cu, q.device)
        o = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, scale=scale, enable_gqa=gqa)
    return o.transpose(1, 2)


def _masked_math(q, k, v, mask, scale):
    """float32 softmax(q kᵀ · scale, masked) v for q [B,Tq,H,D], k/v [B,Tk,Hkv,D], mask [Tq,Tk]."""
    rep = q.shape[2] // k.shape[2]
    kf = k.float().repeat_interleave(rep, dim=2)
    vf = v.float().repeat_interleave(rep, dim=2)
    s = torch.einsum("bqhd,bkhd->bhqk", q.float(), kf) * scale
    s = s.masked_fill(~mask, float("-inf"))
    return torch.einsum("bhqk,bkhd->bqhd", s.softmax(dim=-1), vf).to(q.dtype)


def _run_math(q, k, v, left, cu, scale):
    return _masked_math(q, k, v, _mask_TT(q.shape[1], left, cu, q.device), scale)


_RUNNERS = {"flash": _run_flash, "flex": _run_flex, "sdpa": _run_sdpa, "math": _run_math}


def attention(q_BTHD: torch.Tensor, k_BTHD: torch.Tensor, v_BTHD: torch.Tensor,
              window: Optional[int] = None, cu_seqlens=None, backend: str = "auto",
              scale: Optional[float] = None) -> torch.Tensor:
    """Causal softmax attention, global or over a sliding window of ``window`` keys incl. self.

    Args:
        q_BTHD: [B, T, H, D] queries (RoPE already applied).
        k_BTHD, v_BTHD: [B, T, Hkv, D] keys/values; H must be a multiple of Hkv (GQA).
        window: None (global causal) or W >= 1.
        cu_seqlens: optional int32 [N+1] (tensor or ints) over the flattened B*T tokens; no query
            attends across a document boundary.
        backend: auto | flash | flex | sdpa | math (see the module docstring).
        scale: softmax scale, default D**-0.5.
    Returns:
        [B, T, H, D] in q's dtype.
    """
    B, T, H, D = q_BTHD.shape
    if k_BTHD.shape != v_BTHD.shape or k_BTHD.shape[:2] != (B, T) or k_BTHD.shape[3] != D:
        raise ValueError(f"k/v must be [B, T, Hkv, D] matching q {tuple(q_BTHD.shape)}; "
                         f"got k {tuple(k_BTHD.shape)}, v {tuple(v_BTHD.shape)}")
    if H % k_BTHD.shape[2]:
        raise ValueError(f"n_heads ({H}) must be a multiple of n_kv_heads ({k_BTHD.shape[2]})")
    left = window_left(window)
    scale = D ** -0.5 if scale is None else scale
    name = _resolve(backend, q_BTHD)
    if cu_seqlens is None:
        return _RUNNERS[name](q_BTHD, k_BTHD, v_BTHD, left, None, scale)
    cu = _cu_list(cu_seqlens, B * T)
    flat = lambda t: t.reshape(1, B * T, *t.shape[2:])  # noqa: E731
    o = _RUNNERS[name](flat(q_BTHD), flat(k_BTHD), flat(v_BTHD), left, cu, scale)
    return o.reshape(B, T, H, D)


# --------------------------------------------------------------------------------------------
# Generation cache.

_NO_POSITION = -(2 ** 62)  # an empty ring slot: never visible to any query


class AttentionCache:
    """Per-layer KV cache. Global: growing buffer [B, capacity, Hkv, D] (grown in ``chunk``-position
    steps). Sliding window W: a ring buffer of exactly W slots; slot ``p % W`` holds position p.
    ``pos`` is the number of tokens seen (the absolute position of the next token)."""

    def __init__(self, batch_size: int, n_kv_heads: int, head_dim: int, window: Optional[int],
                 device=None, dtype=None, chunk: int = 256):
        self.batch_size, self.window, self.chunk, self.pos = batch_size, window, chunk, 0
        dtype = dtype or torch.get_default_dtype()
        size = window if window is not None else 0
        self.k = torch.zeros(batch_size, size, n_kv_heads, head_dim, device=device, dtype=dtype)
        self.v = torch.zeros_like(self.k)
        self.slot_pos = torch.full((size,), _NO_POSITION, device=device, dtype=torch.long) if window else None

    def keys(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(k [B,S,Hkv,D], v, positions long [S]) of every cached key (ring slots in slot order)."""
        if self.window is not None:
            return self.k, self.v, self.slot_pos
        return self.k[:, :self.pos], self.v[:, :self.pos], torch.arange(self.pos, device=self.k.device)

    def append(self, k_new: torch.Tensor, v_new: torch.Tensor) -> None:
        """Store n new keys/values (positions pos..pos+n-1) and advance ``pos``."""
        n = k_new.shape[1]
        if self.window is not None:
            W = self.window
            take = min(n, W)  # only the last W new tokens can ever be seen again
            p = torch.arange(self.pos + n - take, self.pos + n, device=self.k.device)
            slots = p % W
            self.k[:, slots] = k_new[:, n - take:].to(self.k.dtype)
            self.v[:, slots] = v_new[:, n - take:].to(self.v.dtype)
            self.slot_pos[slots] = p
        else:
            need = self.pos + n
            if need > self.k.shape[1]:
                cap = -(-need // self.chunk) * self.chunk
                grown = self.k.new_zeros(self.k.shape[0], cap, *self.k.shape[2:])
                grown_v = torch.zeros_like(grown)
                grown[:, :self.pos] = self.k[:, :self.pos]
                grown_v[:, :self.pos] = self.v[:, :self.pos]
                self.k, self.v = grown, grown_v
            self.k[:, self.pos:need] = k_new.to(self.k.dtype)
            self.v[:, self.pos:need] = v_new.to(self.v.dtype)
        self.pos += n


# --------------------------------------------------------------------------------------------
# The layer.

class Attention(nn.Module):
    """Multi-head causal attention with RoPE and GQA, global or sliding-window.

    ``forward(x [B,T,D], cu_seqlens=None, cache=None) -> [B,T,D]``; see the module docstring for
    backends, packed documents and caches."""

    Config = AttentionConfig

    def __init__(self, d_model: int, config: Optional[AttentionConfig] = None):
        super().__init__()
        cfg = config if config is not None else AttentionConfig()
        if cfg.n_heads is None:
            raise ValueError("AttentionConfig.n_heads is None; set it (the spec resolver fills it "
                             "from model.n_heads)")
        H = cfg.n_heads
        Hkv = cfg.n_kv_heads if cfg.n_kv_heads is not None else H
        Dh = cfg.head_dim if cfg.head_dim is not None else d_model // H
        if Dh < 2 or Dh % 2:
            raise AttentionConfigError(f"head_dim must be even for RoPE, got {Dh} (d_model={d_model}, n_heads={H}); "
                                       "set attention.head_dim")
        self.config = cfg
        self.d_model, self.n_heads, self.n_kv_heads, self.head_dim = d_model, H, Hkv, Dh
        self.window, self.rope_theta, self.backend = cfg.window, cfg.rope_theta, cfg.backend
        self.q_proj = nn.Linear(d_model, H * Dh, bias=False)
        self.k_proj = nn.Linear(d_model, Hkv * Dh, bias=False)
        self.v_proj = nn.Linear(d_model, Hkv * Dh, bias=False)
        self.o_proj = nn.Linear(H * Dh, d_model, bias=False)

    def extra_repr(self) -> str:
        return (f"heads={self.n_heads}, kv_heads={self.n_kv_heads}, head_dim={self.head_dim}, "
                f"window={self.window}, backend={self.backend}")

    def forward(self, x: torch.Tensor, cu_seqlens: Optional[torch.Tensor] = None,
                cache: Optional[AttentionCache] = None) -> torch.Tensor:
        B, T, _ = x.shape
        H, Hkv, Dh = self.n_heads, self.n_kv_heads, self.head_dim
        if cache is not None and cu_seqlens is not None:
            raise ValueError("attention: cache and cu_seqlens are exclusive (generate one document per row)")
        q = self.q_proj(x).view(B, T, H, Dh)
        k = self.k_proj(x).view(B, T, Hkv, Dh)
        v = self.v_proj(x).view(B, T, Hkv, Dh)
        cu = None
        if cu_seqlens is not None:
            cu = _cu_list(cu_seqlens, B * T)
            pos = positions_in_document(cu, B * T, x.device).view(B, T)
            cos, sin = rope_angles(pos, Dh, self.rope_theta)
        else:
            offset = cache.pos if cache is not None else 0
            cos, sin = rope_angles(positions_for(T, x.device, offset), Dh, self.rope_theta)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)

        if cache is None:
            o = attention(q, k, v, self.window, cu, self.backend)
        else:
            if cache.batch_size != B:
                raise ValueError(f"cache was made for batch {cache.batch_size}, got batch {B}")
            if cache.pos == 0:  # prefill from scratch: the regular backend over the prompt
                o = attention(q, k, v, self.window, None, self.backend)
                cache.append(k, v)
            else:
                o = self._attend_cached(q, k, v, cache)
        return self.o_proj(o.reshape(B, T, H * Dh))

    def _attend_cached(self, q, k, v, cache: AttentionCache) -> torch.Tensor:
        """New tokens (positions pos..pos+T-1) attend to the cache plus themselves."""
        T = q.shape[1]
        left = window_left(self.window)
        q_pos = torch.arange(cache.pos, cache.pos + T, device=q.device)
        if self.window is not None:  # ring slots are overwritten by append: read them first
            ck, cv, k_pos = cache.keys()
            keys = torch.cat([ck.to(k.dtype), k], dim=1)
            vals = torch.cat([cv.to(v.dtype), v], dim=1)
            k_pos = torch.cat([k_pos, q_pos])
            cache.append(k, v)
        else:
            cache.append(k, v)
            keys, vals, k_pos = cache.keys()
            keys, vals = keys.to(k.dtype), vals.to(v.dtype)
        mask = _visible(q_pos[:, None], k_pos[None, :], left)
        o = F.scaled_dot_product_attention(q.transpose(1, 2), keys.transpose(1, 2), vals.transpose(1, 2),
                                           attn_mask=mask, enable_gqa=self.n_heads != self.n_kv_heads)
        return o.transpose(1, 2)

    def init_cache(self, batch_size: int, device=None, dtype=None) -> AttentionCache:
        """A fresh cache: ring buffer of W slots for SWA, growing KV buffer for global attention."""
        if device is None:
            device = self.q_proj.weight.device
        if dtype is None:
            dtype = self.q_proj.weight.dtype
        return AttentionCache(batch_size, self.n_kv_heads, self.head_dim, self.window, device, dtype)

    # ---- accounting for `zoo compose` ----
    def mean_keys(self, context: int) -> float:
        """Keys a query sees, averaged over positions 0..context-1 (min(t+1, W))."""
        if context <= 0:
            return 0.0
        W = self.window
        if W is None or context <= W:
            return (context + 1) / 2
        return (W * (W + 1) / 2 + (context - W) * W) / context

    def flops_per_token(self, d_model: int, context: int) -> float:
        """Forward FLOPs per token (2 per multiply-add): q/k/v/o projections plus QKᵀ and PV over
        the keys visible on average over a context of ``context`` tokens (window-capped)."""
        H, Hkv, Dh = self.n_heads, self.n_kv_heads, self.head_dim
        proj = 2 * d_model * Dh * (H + 2 * Hkv) + 2 * H * Dh * d_model
        return float(proj + 4 * H * Dh * self.mean_keys(context))

    def cache_bytes(self, batch_size: int, context: int, dtype_bytes: int = 2) -> int:
        """KV-cache bytes after ``context`` tokens: min(context, W) keys and values for SWA."""
        kept = context if self.window is None else min(context, self.window)
        return int(2 * batch_size * kept * self.n_kv_heads * self.head_dim * dtype_bytes)
