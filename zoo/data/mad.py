"""The six MAD synthetic tasks (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid
Architectures", arXiv 2403.17844), generated vectorised with torch on any device.

Every generator has the signature ``fn(batch_size, generator, train=True, **settings)`` and
returns ``{"input_ids": long [B, T], "labels": long [B, T]}`` where ``labels[b, t]`` is what the
model should output at position t (-100: no target). Settings default to MAD's baselines
(``MAD_DEFAULTS``). Accuracy is scored on the *test* targets (``train=False``): the positions
the task probes. Training targets follow MAD's protocol: the three recall tasks train on
every next token (plain language modelling of the sequence), the other tasks on their probes.

Vocabulary layout (V = vocab_size):
- recall tasks: keys ``[0, n/2)``, values ``[n/2, n)`` with ``n = V - noise_vocab_size``
  (fuzzy recall: ``n = V - 1``, the last id pads); noise tokens ``[n, V)``.
- selective copying: content ``[0, V-2)``, blank ``V-2``, copy marker ``V-1``.
- compression: content ``[0, V-1)``, compression marker ``V-1``.
- memorization: keys ``[0, m/2)``, values ``[m/2, m)`` with ``m = V - 1``; insert marker ``V-1``.

Differences from MAD-Lab's per-example numpy generators, made so batches are built in a
few kernels on the GPU: inputs are exactly ``seq_len`` tokens (MAD's recall inputs are
``seq_len - 1``; an even ``seq_len`` here starts with one unlabelled filler key); the recall
tasks run in MAD's standard multi-query mode only; selective copying scatters the content
tokens over a uniform random subset of positions. Compression is returned as MAD poses it,
an auto-encoding target (``labels == input_ids``, ``AUTOENCODE_TASKS``): it is scored through a
decoder that reads the model's output at the last position (``zoo.train.heads``), not through
the causal LM head.
"""
from __future__ import annotations

from typing import Any, Callable, Dict

import torch

IGNORE = -100

MAD_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "in_context_recall": {"vocab_size": 16, "seq_len": 128, "noise_vocab_size": 0, "frac_noise": 0.0,
                          "num_train_examples": 12800},
    "fuzzy_recall": {"vocab_size": 16, "seq_len": 128, "k_motif_size": 3, "v_motif_size": 3,
                     "num_train_examples": 12800},
    "noisy_recall": {"vocab_size": 32, "seq_len": 128, "noise_vocab_size": 16, "frac_noise": 0.2,
                     "num_train_examples": 12800},
    "selective_copying": {"vocab_size": 16, "seq_len": 256, "num_tokens_to_copy": 16, "num_train_examples": 12800},
    "compression": {"vocab_size": 16, "seq_len": 32, "num_train_examples": 12800},
    "memorization": {"vocab_size": 256, "seq_len": 32, "kv_map_seed": 12345, "num_train_examples": 256},
}
MAD_NUM_TEST_EXAMPLES = 1280
AUTOENCODE_TASKS = frozenset({"compression"})


def _dev(g: torch.Generator) -> torch.device:
    return g.device


def _randint(lo: int, hi: int, shape, g: torch.Generator) -> torch.Tensor:
    return torch.randint(lo, hi, shape, generator=g, device=_dev(g))


def _rand(shape, g: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=g, device=_dev(g))


def in_context_recall(batch_size: int, generator: torch.Generator, train: bool = True, vocab_size: int = 16,
                      seq_len: int = 128, noise_vocab_size: int = 0, frac_noise: float = 0.0,
                      **_unused) -> Dict[str, torch.Tensor]:
    """Associative recall with repeated keys: pairs ``k v k v ...``, each key keeps its value.

    Worked example (V = 8: keys 0-3, values 4-7; seq_len = 9, so 5 pairs minus the last value)::

        tokens  2 5 | 0 7 | 2 5 | 1 4 | 0 7        pairs; key 2 -> 5, 0 -> 7, 1 -> 4
        input   2 5   0 7   2 5   1 4   0          (T = 9 tokens)
        test    - -   - -   5 -   - -   7          targets where a key comes back
        train   5 0   7 2   5 1   4 0   7          every next token

    The last pair always repeats an earlier key, so every sequence has at least one probe.
    With ``frac_noise > 0`` (noisy recall) each pair slot is, with that probability, two random
    noise tokens instead; noise slots are never probed and do not count as "seen".
    """
    B, T, V = batch_size, seq_len, vocab_size
    n = V - noise_vocab_size
    nk = n // 2
    if nk < 1 or n - nk < 1 or (frac_noise > 0 and noise_vocab_size < 1) or not 0 <= frac_noise < 1:
        raise ValueError(f"in-context recall: bad vocab split (vocab_size={V}, noise_vocab_size={noise_vocab_size}, "
                         f"frac_noise={frac_noise})")
    P = (T + 1) // 2  # pairs; the sequence is 2P (+1 filler if T is even) tokens, input drops the last
    filler = T + 1 - 2 * P
    if P < 2:
        raise ValueError(f"in-context recall needs seq_len >= 3, got {T}")
    keys = _randint(0, nk, (B, P), generator)
    table = _randint(nk, n, (B, nk), generator)  # this sequence's value of every key
    noise = _rand((B, P), generator) < frac_noise if frac_noise > 0 else torch.zeros(B, P, dtype=torch.bool, device=keys.device)
    keep = _randint(0, P - 1, (B, 1), generator)  # one guaranteed real pair before the probe
    noise.scatter_(1, keep, False)
    noise[:, -1] = False
    # the last pair repeats the key of a random earlier real pair
    score = _rand((B, P - 1), generator).masked_fill(noise[:, :-1], -1.0)
    src = score.argmax(1, keepdim=True)
    keys[:, -1:] = keys.gather(1, src)
    vals = table.gather(1, keys)
    if frac_noise > 0:
        keys_tok = torch.where(noise, _randint(n, V, (B, P), generator), keys)
        vals_tok = torch.where(noise, _randint(n, V, (B, P), generator), vals)
    else:
        keys_tok, vals_tok = keys, vals
    seq = torch.stack([keys_tok, vals_tok], dim=-1).reshape(B, 2 * P)
    # seen[i]: key i is real and an earlier real pair had the same key
    same = (keys[:, :, None] == keys[:, None, :]) & ~noise[:, None, :]
    earlier = torch.ones(P, P, dtype=torch.bool, device=keys.device).tril(-1)
    seen = (same & earlier).any(-1) & ~noise
    test = torch.full((B, 2 * P), IGNORE, dtype=torch.long, device=keys.device)
    test[:, 0::2] = torch.where(seen, vals, torch.full_like(vals, IGNORE))
    if filler:
        seq = torch.cat([_randint(0, nk, (B, 1), generator), seq], 1)
        test = torch.cat([torch.full((B, 1), IGNORE, dtype=torch.long, device=seq.device), test], 1)
    labels = seq[:, 1:] if train else test[:, :-1]
    return {"input_ids": seq[:, :-1].contiguous(), "labels": labels.contiguous()}


def noisy_recall(batch_size: int, generator: torch.Generator, train: bool = True, vocab_size: int = 32,
                 seq_len: int = 128, noise_vocab_size: int = 16, frac_noise: float = 0.2,
                 **_unused) -> Dict[str, torch.Tensor]:
    """In-context recall where a share ``frac_noise`` of pair slots are noise tokens.

    Worked example (V = 12, noise_vocab_size = 4: keys 0-3, values 4-7, noise 8-11)::

        input   1 6 | 9 11 | 3 4 | 1 6 | 8 8 | 3      slots 2 and 5 are noise
        test    - - | -  - | - - | 6 - | - - | 4      only real repeated keys are probed

    See ``in_context_recall`` for the layout; the same generator with noise switched on.
    """
    return in_context_recall(batch_size, generator, train, vocab_size, seq_len, noise_vocab_size, frac_noise)


def fuzzy_recall(batch_size: int, generator: torch.Generator, train: bool = True, vocab_size: int = 16,
                 seq_len: int = 128, k_motif_size: int = 3, v_motif_size: int = 3,
                 **_unused) -> Dict[str, torch.Tensor]:
    """Recall where keys and values are motifs of 1..k (1..v) distinct adjacent tokens.

    Keys are drawn from ``[0, n/2)`` and values from ``[n/2, n)``, ``n = V - 1``; id ``V - 1``
    pads the front of the sequence. In training the key length varies per pair (so keys of
    different lengths overlap: "fuzzy"); at test time every key has ``k_motif_size`` tokens.
    A key keeps its value within a sequence; the final pair repeats an earlier one. Targets
    are the value tokens of a repeated key, predicted one after the other.

    Worked example (V = 16: keys 0-6, values 7-14, pad 15; k = v = 2; T = 12; test mode, so
    every key has 2 tokens; pairs (3 1 -> 9), (4 2 -> 12 8), then the probe repeats the first)::

        tokens  15 15 15 | 3 1 9 | 4 2 12 8 | 3 1 9
        input   15 15 15   3 1 9   4 2 12 8   3 1
        test     -  -  -   - - -   - -  - -   - 9      (value tokens after a repeated key)
    """
    B, T, V, K, W = batch_size, seq_len, vocab_size, k_motif_size, v_motif_size
    n = V - 1
    nk, nv = n // 2, n - n // 2
    pad = V - 1
    if K < 1 or W < 1 or K > nk or W > nv:
        raise ValueError(f"fuzzy recall: motif sizes ({K}, {W}) must be >= 1 and fit the key/value vocab "
                         f"({nk}, {nv}) of vocab_size={V}")
    if T + 1 < 2 * (K + W):
        raise ValueError(f"fuzzy recall needs seq_len >= {2 * (K + W) - 1} for motifs of {K}+{W} tokens, got {T}")
    dev = _dev(generator)
    P = (T + 1) // 2 + 1  # more candidate pairs than can fit; the prefix that fits is used
    ksz = _randint(1, K + 1, (B, P), generator) if train else torch.full((B, P), K, device=dev)
    key = _rand((B, P, nk), generator).argsort(-1)[..., :K]  # distinct tokens within a motif
    kpos = torch.arange(K, device=dev)
    kmask = kpos < ksz[..., None]  # [B, P, K]
    base = torch.tensor(nk + 1, device=dev, dtype=torch.long)
    kid = ((key + 1) * kmask * base ** kpos).sum(-1)  # unique id of the (variable-length) key tuple
    # value of a pair = the value drawn for the first pair with the same key
    vsz0 = _randint(1, W + 1, (B, P), generator)
    val0 = _rand((B, P, nv), generator).argsort(-1)[..., :W] + nk
    first = (kid[:, :, None] == kid[:, None, :]).to(torch.int8).argmax(-1)  # [B, P] earliest equal key
    vsz = vsz0.gather(1, first)
    val = val0.gather(1, first[..., None].expand(B, P, W))
    # lengths; keep the longest prefix of body pairs that leaves room for the probe pair
    plen = ksz + vsz
    ends = plen.cumsum(1)
    fits = ends <= T + 1 - (K + W)  # room for any probe
    nbody = fits.sum(1)  # >= 1 because T + 1 >= 2 (K + W)
    pidx = (_rand((B,), generator) * nbody).long().clamp_max(nbody - 1)  # probe repeats a body pair
    used = torch.arange(P, device=dev)[None] < nbody[:, None]
    # assemble: pairs 0..nbody-1, then the probe copy, all right-aligned, padded in front
    bidx = torch.arange(B, device=dev)
    probe_len = plen[bidx, pidx]
    total = torch.where(used, plen, 0).sum(1) + probe_len
    start = T + 1 - total  # front padding
    pstart = start[:, None] + ends - plen  # start of each body pair
    seq = torch.full((B, T + 1), pad, dtype=torch.long, device=dev)
    test = torch.full((B, T + 1), IGNORE, dtype=torch.long, device=dev)
    seen = ((kid[:, :, None] == kid[:, None, :]) & torch.ones(P, P, dtype=torch.bool, device=dev).tril(-1)).any(-1)

    def put(pos0, k_tok, k_n, v_tok, v_n, probe_mask, valid):
        kp = pos0[..., None] + kpos
        kv = valid[..., None] & (kpos < k_n[..., None])
        vpos_ar = torch.arange(W, device=dev)
        vp = pos0[..., None] + k_n[..., None] + vpos_ar
        vv = valid[..., None] & (vpos_ar < v_n[..., None])
        flat_b = bidx.view(B, *([1] * (kp.dim() - 1)))
        seq[flat_b.expand_as(kp)[kv], kp[kv]] = k_tok[kv]
        seq[flat_b.expand_as(vp)[vv], vp[vv]] = v_tok[vv]
        tv = vv & probe_mask[..., None]
        test[flat_b.expand_as(vp)[tv], vp[tv]] = v_tok[tv]

    put(pstart, key, ksz, val, vsz, seen, used)
    pos_probe = (T + 1 - probe_len)[:, None]
    one = torch.ones(B, 1, dtype=torch.bool, device=dev)
    put(pos_probe, key[bidx, pidx][:, None], ksz[bidx, pidx][:, None], val[bidx, pidx][:, None],
        vsz[bidx, pidx][:, None], one, one)
    labels = seq[:, 1:] if train else test[:, 1:]
    return {"input_ids": seq[:, :-1].contiguous(), "labels": labels.contiguous()}


def selective_copying(batch_size: int, generator: torch.Generator, train: bool = True, vocab_size: int = 16,
                      seq_len: int = 256, num_tokens_to_copy: int = 16, **_unused) -> Dict[str, torch.Tensor]:
    """Copy the content tokens, scattered among blanks, in order after a copy marker.

    Worked example (V = 6: content 0-3, blank 4, copy 5; T = 10, 3 tokens to copy)::

        input   4 2 4 4 0 3 | 5 | 4 4 4
        labels  - - - - - - | - | 2 0 3      (train and test alike)

    The n content tokens (drawn with replacement) sit at a uniformly random subset of the
    first ``T - n - 1`` positions; the model must output them at the n blanks after the marker.
    """
    B, T, V, N = batch_size, seq_len, vocab_size, num_tokens_to_copy
    blank, copy = V - 2, V - 1
    if V < 3 or T <= 2 * N + 1 or N < 1:
        raise ValueError(f"selective copying needs vocab_size >= 3 and seq_len > 2 * num_tokens_to_copy + 1; "
                         f"got vocab_size={V}, seq_len={T}, num_tokens_to_copy={N}")
    dev = _dev(generator)
    L = T - N - 1  # region holding content + blanks
    content = _randint(0, V - 2, (B, N), generator)
    pos = _rand((B, L), generator).topk(N, dim=1).indices.sort(1).values
    x = torch.full((B, T), blank, dtype=torch.long, device=dev)
    x.scatter_(1, pos, content)
    x[:, L] = copy
    y = torch.full((B, T), IGNORE, dtype=torch.long, device=dev)
    y[:, L + 1 :] = content
    return {"input_ids": x, "labels": y}


def compression(batch_size: int, generator: torch.Generator, train: bool = True, vocab_size: int = 16,
                seq_len: int = 32, **_unused) -> Dict[str, torch.Tensor]:
    """Compress a random sequence into the model's output at a final marker, then rebuild it.

    ``T - 1`` content tokens drawn uniformly with replacement from ``[0, V-1)``, then the
    compression marker ``V - 1``. The target at every position is the input token there, the
    marker included (MAD scores all ``T``); train and test targets are the same. The model sees
    the whole sequence causally; only its output at the marker (position ``T - 1``) reaches a
    decoder, which adds a position embedding for each target position p and predicts token p
    from that one vector (``zoo.train.heads.CompressionDecoder``, after MAD-Lab's auto-encoder).
    Chance is about ``1 / (V - 1)`` per content position.

    Worked example (V = 5: content 0-3, marker 4; T = 6)::

        input    3 0 0 2 1 4
        labels   3 0 0 2 1 4          every position is a target
        decoder  h = model output at position 5 (the marker)
                 logits[p] = decoder(h + pos(p)) for p = 0..5  ->  3 0 0 2 1 4

    A causal LM head scored on these labels would only copy its input (``AUTOENCODE_TASKS``
    marks the task, so training uses the decoder instead).
    """
    B, T, V = batch_size, seq_len, vocab_size
    if V < 2 or T < 2:
        raise ValueError(f"compression needs vocab_size >= 2 and seq_len >= 2, got {V}, {T}")
    x = torch.cat([_randint(0, V - 1, (B, T - 1), generator),
                   torch.full((B, 1), V - 1, dtype=torch.long, device=_dev(generator))], 1)
    return {"input_ids": x, "labels": x.clone()}


def memorization_table(vocab_size: int, kv_map_seed: int = 12345, device: Any = "cpu") -> torch.Tensor:
    """The fixed key -> value map of the memorization task: long [m // 2] (m = vocab_size - 1).

    Drawn once from ``kv_map_seed`` on the CPU (the same on every device and every run):
    an injective map from keys ``[0, m/2)`` to values ``[m/2, m)``.
    """
    m = vocab_size - 1
    g = torch.Generator().manual_seed(kv_map_seed)
    return (torch.randperm(m - m // 2, generator=g)[: m // 2] + m // 2).to(device)


def memorization(batch_size: int, generator: torch.Generator, train: bool = True, vocab_size: int = 256,
                 seq_len: int = 32, kv_map_seed: int = 12345, **_unused) -> Dict[str, torch.Tensor]:
    """Recall facts stored in the weights: ``key INSERT`` pairs, output the key's fixed value.

    Worked example (V = 9: keys 0-3, values 4-7, insert marker 8; map 0->6, 1->4, 2->7, 3->5)::

        input   2 8 0 8 2 8 1 8
        labels  - 7 - 6 - 7 - 4

    The map is the same for every sequence (``memorization_table``), so it can only be
    learnt across training examples; ``seq_len`` must be even.
    """
    B, T, V = batch_size, seq_len, vocab_size
    if T % 2 or V < 4:
        raise ValueError(f"memorization needs an even seq_len and vocab_size >= 4, got {T}, {V}")
    table = memorization_table(V, kv_map_seed, _dev(generator))
    keys = _randint(0, table.numel(), (B, T // 2), generator)
    x = torch.stack([keys, torch.full_like(keys, V - 1)], -1).reshape(B, T)
    y = torch.stack([torch.full_like(keys, IGNORE), table[keys]], -1).reshape(B, T)
    return {"input_ids": x, "labels": y}


MAD_GENERATORS: Dict[str, Callable[..., Dict[str, torch.Tensor]]] = {
    "in_context_recall": in_context_recall,
    "fuzzy_recall": fuzzy_recall,
    "noisy_recall": noisy_recall,
    "selective_copying": selective_copying,
    "compression": compression,
    "memorization": memorization,
}


def mad_settings(task: str, seq_len: Any = None, vocab_size: Any = None, options: Any = None) -> Dict[str, Any]:
    """MAD's baseline settings for ``task`` with the given overrides; unknown option names are errors."""
    if task not in MAD_DEFAULTS:
        raise ValueError(f"unknown MAD task {task!r}; choose one of {', '.join(MAD_DEFAULTS)}")
    s = dict(MAD_DEFAULTS[task])
    for k, v in dict(options or {}).items():
        if k not in s or k in ("seq_len", "vocab_size"):
            valid = ", ".join(x for x in s if x not in ("seq_len", "vocab_size"))
            raise ValueError(f"data.mad.options.{k} is not a setting of {task} (valid: {valid}; "
                             "seq_len and vocab_size are data.seq_len and data.mad.vocab_size)")
        s[k] = v
    if seq_len is not None:
        s["seq_len"] = int(seq_len)
    if vocab_size is not None:
        s["vocab_size"] = int(vocab_size)
    return s


def mad_batch(task: str, batch_size: int, generator: torch.Generator, train: bool = True,
              **settings) -> Dict[str, torch.Tensor]:
    """One batch of a MAD task with its baseline settings overridden by ``settings``."""
    s = mad_settings(task, settings.pop("seq_len", None), settings.pop("vocab_size", None), settings)
    s.pop("num_train_examples")
    return MAD_GENERATORS[task](batch_size, generator, train, **s)
