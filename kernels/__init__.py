"""Functional delta-rule ops (fla-compatible layout [B, T, H, K]): Triton kernels and PyTorch references."""
from zoo.kernels.chunk import chunk_delta_rule, chunk_gated_delta_rule
from zoo.kernels.naive import (
    naive_recurrent_delta_rule,
    naive_recurrent_gated_delta_rule,
    torch_chunk_delta_rule,
    torch_chunk_gated_delta_rule,
)
from zoo.kernels.fused_recurrent import (
    delta_rule_step,
    delta_rule_step_torch,
    fused_recurrent_delta_rule,
    fused_recurrent_gated_delta_rule,
)
from zoo.kernels.norm import l2_normalize, rms_norm, silu_mul, torch_l2_normalize, torch_rms_norm, torch_silu_mul
from zoo.kernels.conv import causal_conv1d_silu, torch_causal_conv1d_silu
