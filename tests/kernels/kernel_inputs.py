"""Shared helpers of the kernel tests: fresh random inputs and the relative-RMS metric."""
import torch


def rel_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    """RMS of (a - b) relative to the RMS of b, in float64."""
    a, b = a.double(), b.double()
    return ((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt().clamp_min(1e-30)).item()


def make_inputs(B, T, H, K, V, dtype=torch.float32, gated=False, n_states=None, seed=None):
    """Fresh random delta-rule inputs: L2-normalised k, beta in (0, 1), g <= 0, a random initial state."""
    gen = torch.Generator().manual_seed(seed if seed is not None else torch.seed() % (2**31))
    q = torch.randn(B, T, H, K, generator=gen, dtype=torch.float64)
    k = torch.nn.functional.normalize(torch.randn(B, T, H, K, generator=gen, dtype=torch.float64), dim=-1)
    v = torch.randn(B, T, H, V, generator=gen, dtype=torch.float64)
    beta = torch.rand(B, T, H, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    g = -torch.rand(B, T, H, generator=gen, dtype=torch.float64) * 0.3 if gated else None
    h0 = torch.randn(n_states or B, H, K, V, generator=gen, dtype=torch.float64)
    cast = lambda x: None if x is None else x.to(dtype)  # noqa: E731
    return dict(q=cast(q), k=cast(k), v=cast(v), beta=cast(beta), g=cast(g), h0=h0.to(torch.float32 if dtype != torch.float64 else dtype))
