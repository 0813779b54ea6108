"""Softmax attention, global (window=None) or sliding-window (window=W): RoPE, GQA, packed docs.

Window convention (DESIGN §3): window W means each query sees W keys including itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class AttentionConfig:
    n_heads: Optional[int] = None  # None: the model's n_heads
    n_kv_heads: Optional[int] = None  # None: n_heads (MHA); fewer for GQA
    head_dim: Optional[int] = None  # None: d_model // n_heads
    window: Optional[int] = None  # None: global causal; W: sliding window of W keys incl. self
    rope_theta: float = 10000.0
    backend: str = "auto"  # auto | flash | flex | sdpa | math
