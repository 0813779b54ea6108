"""MQAR structure: disjoint key/value halves, labels only at queries, answers recallable."""
import pytest
import torch

from zoo.data.mqar import mqar_batch


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("T,K,V,noise", [(64, 8, 64, True), (512, 64, 8192, True), (40, 10, 32, False)])
def test_structure(T, K, V, noise):
    b = mqar_batch(16, T, K, V, random_non_queries=noise, generator=_gen(0))
    x, y = b["input_ids"], b["labels"]
    assert x.shape == y.shape == (16, T) and x.dtype == y.dtype == torch.long
    assert int(x.min()) >= 0 and int(x.max()) < V
    keys, vals = x[:, 0 : 2 * K : 2], x[:, 1 : 2 * K : 2]
    assert bool((keys >= 1).all() and (keys < V // 2).all()) and bool((vals >= V // 2).all())
    for b_ in range(16):
        assert len(set(keys[b_].tolist())) == K and len(set(vals[b_].tolist())) == K
        pairs = dict(zip(keys[b_].tolist(), vals[b_].tolist()))
        q = torch.nonzero(y[b_] != -100).squeeze(1)
        assert len(q) == K and bool((q >= 2 * K).all()) and bool(((q - 2 * K) % 2 == 0).all())
        for p in q.tolist():  # the answer is the value paired with this key earlier on
            assert pairs[x[b_, p].item()] == y[b_, p].item()
        assert sorted(x[b_, q].tolist()) == sorted(pairs)  # every key is asked exactly once
    if not noise:
        fill = torch.ones_like(x, dtype=torch.bool)
        fill[:, : 2 * K] = False
        fill &= y == -100
        assert bool((x[fill] == 0).all())


def test_power_law_prefers_short_gaps():
    b = mqar_batch(256, 512, 16, 8192, power_a=0.01, generator=_gen(1))
    q = torch.nonzero(b["labels"] != -100)[:, 1] - 32
    gaps = q // 2
    space = (512 - 32) // 2
    assert (gaps < space // 4).float().mean() > 0.5  # uniform placement would give ~0.25


def test_seeded_determinism_and_errors():
    a = mqar_batch(4, 64, 8, 64, generator=_gen(5))
    b = mqar_batch(4, 64, 8, 64, generator=_gen(5))
    c = mqar_batch(4, 64, 8, 64, generator=_gen(6))
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["input_ids"], c["input_ids"])
    with pytest.raises(ValueError, match="seq_len >= 64"):
        mqar_batch(2, 60, 16, 8192)
