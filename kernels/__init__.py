"""Functional delta-rule ops (fla-compatible layout [B, T, H, K]): Triton kernels and PyTorch references."""
