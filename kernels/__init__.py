"""Functional ops in Triton beside their PyTorch references: the (gated) delta rule (fla-compatible
layout [B, T, H, K]), and the layers' fused conv+SiLU, RMSNorm, L2 norm and SwiGLU."""
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
