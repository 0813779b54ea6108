"""MAD tasks: structure of inputs and targets, determinism, standard settings."""
import pytest
import torch

from zoo.data.mad import (MAD_DEFAULTS, MAD_GENERATORS, compression, fuzzy_recall, in_context_recall, mad_batch,
                          mad_settings, memorization, memorization_table, noisy_recall, selective_copying)


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def _recall_check(x, y, nk, n):
    """Every test target sits on a real key and is the value that key had at its first occurrence."""
    for b in range(x.shape[0]):
        first = {}
        xs, ys = x[b].tolist(), y[b].tolist()
        start = len(xs) % 2 == 0  # even T: one filler token in front
        for p in range(int(start), len(xs) - 1, 2):
            k, v = xs[p], xs[p + 1]
            if k < nk and nk <= v < n:
                if k in first:
                    assert ys[p] == first[k]
                else:
                    assert ys[p] == -100
                    first[k] = v
            else:
                assert ys[p] == -100
        assert ys[-1] != -100  # the final probe always asks a key seen before
        assert all(t == -100 for t in ys[int(start) + 1 :: 2])


@pytest.mark.parametrize("T", [31, 32])
def test_in_context_recall(T):
    V = 16
    x, y = in_context_recall(8, _g(), False, V, T).values()
    assert x.shape == y.shape == (8, T) and int(x.max()) < V
    _recall_check(x, y, V // 2, V)
    xt, yt = in_context_recall(8, _g(), True, V, T).values()
    assert torch.equal(xt, x) and torch.equal(yt[:, :-1], xt[:, 1:])  # training: every next token


def test_noisy_recall_noise_is_never_a_target():
    V, nv = 32, 16
    x, y = noisy_recall(16, _g(1), False, V, 64, nv, 0.4).values()
    noise = x >= V - nv
    assert noise.float().mean() > 0.2 and bool((y[noise] == -100).all())
    _recall_check(x, y, (V - nv) // 2, V - nv)


def test_fuzzy_recall_targets_are_values_of_repeated_keys():
    V, K, W, T = 16, 3, 3, 64
    x, y = fuzzy_recall(32, _g(2), False, V, T, K, W).values()
    assert x.shape == (32, T) and int(x.max()) < V
    nk = (V - 1) // 2
    assert bool((y[:, -1] >= nk).all() & (y[:, -1] < V - 1).all())  # the probe's value is asked
    t = y != -100
    assert bool((y[t] >= nk).all())  # targets are value tokens
    # the last key of the sequence (K tokens before the probe value) appears earlier with that value
    for b in range(32):
        xs = x[b].tolist() + [y[b, -1].item()]
        vstart = next(i for i in range(len(xs) - 1, -1, -1) if xs[i] < nk) + 1
        key = xs[vstart - K : vstart]
        body = xs[: vstart - K]
        hits = [i for i in range(len(body) - K + 1) if body[i : i + K] == key]
        assert hits, "probe key must occur earlier"
        assert body[hits[0] + K : hits[0] + K + len(xs) - vstart] == xs[vstart:]
    xt, yt = fuzzy_recall(8, _g(3), True, V, T, K, W).values()
    assert torch.equal(yt[:, :-1], xt[:, 1:])


def test_selective_copying():
    V, T, N = 16, 64, 8
    x, y = selective_copying(16, _g(4), True, V, T, N).values()
    L = T - N - 1
    assert bool((x[:, L] == V - 1).all()) and bool((x[:, L + 1 :] == V - 2).all())
    for b in range(16):
        content = [t for t in x[b, :L].tolist() if t != V - 2]
        assert len(content) == N and y[b, L + 1 :].tolist() == content
    assert bool((y[:, : L + 1] == -100).all())


def test_compression_targets_every_position_train_and_test_alike():
    V, T = 16, 32
    x, y = compression(64, _g(5), True, V, T).values()
    assert x.shape == y.shape == (64, T) and x.dtype == y.dtype == torch.long
    assert torch.equal(x, y)  # every position is a target, the marker included (as MAD scores it)
    assert bool((x[:, -1] == V - 1).all()) and bool((x[:, :-1] != V - 1).all()) and int(x.min()) >= 0
    assert len(set(x[:, :-1].flatten().tolist())) == V - 1  # uniform over the content ids
    xt, yt = compression(64, _g(5), False, V, T).values()
    assert torch.equal(xt, x) and torch.equal(yt, y)
    assert mad_batch("compression", 2, _g(), True)["input_ids"].shape == (2, 32)  # MAD's baseline T
    with pytest.raises(ValueError, match="compression needs"):
        compression(2, _g(), True, 1, 32)


def test_memorization():
    table = memorization_table(256)
    assert len(set(table.tolist())) == table.numel() == 127 and int(table.min()) >= 127
    assert torch.equal(table, memorization_table(256))  # fixed across calls and runs
    x, y = memorization(8, _g(6), True, 256, 32).values()
    assert bool((x[:, 1::2] == 255).all()) and bool((y[:, 0::2] == -100).all())
    assert torch.equal(y[:, 1::2], table[x[:, 0::2]])


def test_determinism_settings_and_errors():
    for task in MAD_GENERATORS:
        a = mad_batch(task, 4, _g(7), False)
        b = mad_batch(task, 4, _g(7), False)
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert a["input_ids"].shape[1] == MAD_DEFAULTS[task]["seq_len"]
    assert mad_settings("noisy_recall")["frac_noise"] == 0.2 and mad_settings("memorization")["vocab_size"] == 256
    with pytest.raises(ValueError, match="not a setting"):
        mad_settings("compression", options={"frac_noise": 0.1})
    with pytest.raises(ValueError, match="seq_len > 2"):
        selective_copying(2, _g(), True, 16, 32, 16)
