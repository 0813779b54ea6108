"""Multi-query associative recall (MQAR), as defined by Zoology (Arora et al. 2023, arXiv 2312.04927).

A sequence opens with ``K`` key-value pairs ``k1 v1 k2 v2 ...``; keys come from the lower half
of the vocabulary ``[1, V/2)``, values from the upper half ``[V/2, V)``, all distinct within a
sequence. The rest of the sequence holds queries: each key appears once more, at an even
offset ``2*g`` after the pairs, where the gaps ``g`` are drawn without replacement with
probability proportional to ``g^(a-1)`` (power law; ``a = 0.01`` makes short gaps much more
likely, so many queries come soon after the context and a few come late). The label at a
query position is the value paired with that key; every other label is -100. Slots that are
not queries hold random tokens from the whole vocabulary (``random_non_queries``) or 0.

Everything is drawn with torch on the requested device in a handful of kernels (top-k over
random scores gives sampling without replacement; Gumbel top-k gives the power-law gaps), so
a 256 x 512 batch costs milliseconds on a GPU and generation never stalls training.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch

IGNORE = -100


def mqar_batch(batch_size: int, seq_len: int, num_kv_pairs: int, vocab_size: int = 8192,
               power_a: float = 0.01, random_non_queries: bool = True,
               generator: Optional[torch.Generator] = None,
               device: Optional[torch.device | str] = None) -> Dict[str, torch.Tensor]:
    """One MQAR batch: ``input_ids`` long [B, T], ``labels`` long [B, T] (-100 off the queries).

    Worked example (vocab 16 -> keys in 1..7, values in 8..15; T = 12, K = 2;
    ``random_non_queries=False`` so fillers are 0)::

        position  0  1  2  3 | 4  5  6  7  8  9 10 11
        input     3 12  6  9 | 0  0  6  0  3  0  0  0      pairs (3->12), (6->9); gaps g = 1, 2
        labels    -  -  -  - | -  -  9  -  12 -  -  -      "-" is -100

    The model must output 9 at position 6 (where key 6 is asked again) and 12 at position 8.
    Requires ``seq_len >= 4 * num_kv_pairs`` (room for K query slots at even offsets) and
    ``num_kv_pairs < vocab_size // 2``. Deterministic for a seeded ``generator`` on a given device.
    """
    B, T, K, V = batch_size, seq_len, num_kv_pairs, vocab_size
    half = V // 2
    space = (T - 2 * K) // 2  # number of even query slots after the pairs
    if K < 1 or K > space or K >= half:
        raise ValueError(
            f"MQAR with {K} key-value pairs needs 1 <= K <= (seq_len - 2K) / 2 and K < vocab/2; "
            f"got seq_len={T}, vocab_size={V}: use seq_len >= {4 * K} or fewer pairs"
        )
    if generator is not None:
        device = generator.device
    device = torch.device(device) if device is not None else torch.device("cpu")
    g = generator

    keys = torch.rand(B, half - 1, generator=g, device=device).topk(K, dim=1).indices + 1  # [B, K] in [1, V/2)
    values = torch.rand(B, V - half, generator=g, device=device).topk(K, dim=1).indices + half  # [B, K]
    # Gumbel top-k: an ordered sample without replacement with p(gap g) ~ (g+1)^(a-1), g in [0, space).
    logp = (power_a - 1.0) * torch.log(torch.arange(1, space + 1, device=device, dtype=torch.float32))
    u = torch.rand(B, space, generator=g, device=device).clamp_min(1e-20)
    gaps = (logp - torch.log(-torch.log(u))).topk(K, dim=1).indices  # [B, K]; i-th key asked at gaps[:, i]

    inputs = torch.zeros(B, T, dtype=torch.long, device=device)
    inputs[:, 0 : 2 * K : 2] = keys
    inputs[:, 1 : 2 * K : 2] = values
    qpos = 2 * K + 2 * gaps
    inputs.scatter_(1, qpos, keys)
    labels = torch.full((B, T), IGNORE, dtype=torch.long, device=device)
    labels.scatter_(1, qpos, values)
    if random_non_queries:
        noise = torch.randint(0, V, (B, T), generator=g, device=device)
        inputs = torch.where(inputs == 0, noise, inputs)
    return {"input_ids": inputs, "labels": labels}
