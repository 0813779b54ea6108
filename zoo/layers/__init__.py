"""Layer zoo: token mixers (one file each) and the blocks around them.

Adding a mixer is one file here (plus its kernel) and one entry in MIXERS. A mixer class has
a ``Config`` dataclass of its options (``n_heads``/``head_dim`` left None are filled from the
model), is built as ``Mixer(d_model, config)``, and runs
``forward(x [B, T, D], cu_seqlens=None, cache=None) -> [B, T, D]``; ``init_cache(batch, device,
dtype)`` returns its generation state, and ``flops_per_token(d_model, context)`` /
``cache_bytes(batch, context, dtype_bytes)`` feed ``zoo compose``.
"""
from zoo.layers.attention import Attention
from zoo.layers.deltanet import DeltaNet, GatedDeltaNet
from zoo.layers.linear_attention import LinearAttention

MIXERS = {
    "deltanet": DeltaNet,
    "gated_deltanet": GatedDeltaNet,
    "attention": Attention,
    "linear": LinearAttention,
}

__all__ = ["MIXERS", "Attention", "DeltaNet", "GatedDeltaNet", "LinearAttention"]
