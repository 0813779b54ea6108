"""GPU timing shared by the bench scripts: median of triton's do_bench, CUDA-graph replay (GPU time
only, no launch overhead), and the device's copy bandwidth (the floor the memory-bound ops meet)."""
from __future__ import annotations

import torch


def ms(fn, **kw) -> float:
    """Median ms of fn (triton.testing.do_bench; ``grad_to_none`` etc. passed on)."""
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=25, rep=100, return_mode="median", **kw))


def time_graph(fns) -> float:
    """Median ms of one call, replaying a CUDA graph that runs every fn once (GPU time only; the
    first three run uncaptured first, so compiling and autotuning stay outside). A failed capture is
    tried once more: the first fwd+bwd capture of a process failed once on an H200 (bench/fused_ops.py,
    2026-11-27: "operation failed due to a previous error during capture") while later ones worked."""
    for attempt in (1, 2):
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for f in fns[:3]:
                f()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                for f in fns:
                    f()
        except RuntimeError:  # torch.AcceleratorError is one
            if attempt == 2:
                raise
            torch.cuda.synchronize()
            continue
        return ms(graph.replay) / len(fns)


def copy_bandwidth() -> float:
    """Bytes/s of a 1 GiB device-to-device copy (read + write)."""
    n = 1 << 28  # 1 GiB of fp32
    x = torch.randn(n, device="cuda")
    y = torch.empty_like(x)
    t = ms(lambda: y.copy_(x))
    del x, y
    return 2 * 4 * n / (t * 1e-3)
