"""Optimiser groups and the LR schedule of the LightningModule."""
import math

import pytest
import torch

from zoo.config import load_recipe
from zoo.model import ZooModel
from zoo.train.module import decay_names, lr_lambda, param_groups


def test_no_weight_decay_on_norms_biases_embeddings():
    cfg = load_recipe("recipes/hybrid_swa.yaml", ["model.d_model=32", "model.n_heads=2", "model.vocab_size=64"]).model
    model = ZooModel(cfg)
    groups = param_groups(model, 0.1)
    decayed = {id(p) for p in groups[0]["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    assert model.embeddings.weight is model.lm_head.weight  # tied: counted once, no decay
    assert id(model.embeddings.weight) not in decayed
    for layer in model.layers:
        for module in (layer.mixer_norm, layer.mlp_norm):
            assert all(id(p) not in decayed for p in module.parameters())
    assert all(p.ndim >= 2 for p in groups[0]["params"]), [names[id(p)] for p in groups[0]["params"] if p.ndim < 2]
    assert any("proj" in names[i] for i in decayed)
    # every parameter is in exactly one group
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_groups_follow_names_decided_before_sharding(tmp_path):
    """FSDP2's ``fully_shard`` turns the parameters into DTensors but keeps their names: the names decided
    on the plain model still pick the same parameters (a 1-process gloo group)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor

    cfg = load_recipe("recipes/hybrid_swa.yaml", ["model.d_model=32", "model.n_heads=2", "model.vocab_size=64"]).model
    model = ZooModel(cfg)
    decay = decay_names(model)
    names = {id(p): n for n, p in model.named_parameters()}
    expected = {names[id(p)] for p in param_groups(model, 0.1)[0]["params"]}
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        for layer in model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        assert all(isinstance(p, DTensor) for p in model.parameters())
        names = {id(p): n for n, p in model.named_parameters()}
        assert {names[id(p)] for p in param_groups(model, 0.1, decay)[0]["params"]} == expected
    finally:
        dist.destroy_process_group()


def test_warmup_then_cosine_to_floor():
    lrs = [lr_lambda(s, warmup=10, total=110, min_ratio=0.1) for s in range(111)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lrs[110] == pytest.approx(0.1)
    assert all(a >= b - 1e-12 for a, b in zip(lrs[9:], lrs[10:]))  # non-increasing after warmup


def test_split_rows_rebases_document_boundaries():
    from zoo.train.datamodule import split_rows

    T = 5
    ids = torch.arange(4 * T).view(4, T)
    cu = torch.tensor([0, 2, 5, 10, 13, 15, 20], dtype=torch.int32)  # every row start is a boundary
    pieces = split_rows({"input_ids": ids, "labels": ids + 1, "cu_seqlens": cu}, 2)
    assert len(pieces) == 2
    assert torch.equal(pieces[0]["input_ids"], ids[:2]) and torch.equal(pieces[1]["labels"], ids[2:] + 1)
    assert pieces[0]["cu_seqlens"].tolist() == [0, 2, 5, 10]
    assert pieces[1]["cu_seqlens"].tolist() == [0, 3, 5, 10]
    assert all(p["cu_seqlens"].dtype == torch.int32 for p in pieces)
    whole = split_rows({"input_ids": ids, "labels": ids}, 8)
    assert len(whole) == 1 and whole[0]["input_ids"] is ids
