"""One model class for every hybrid: embed → Block × N → RMSNorm → LM head.

Each Block is pre-norm: x + mixer(norm(x)), then x + SwiGLU(norm(x)); the mixer of layer i is
whatever the block spec resolved (zoo/spec.py). Packed batches (cu_seqlens over the flattened
B·T tokens) run as one sequence of B·T tokens whose documents never see each other.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import torch
from torch import nn
from safetensors.torch import load_model, save_model

from zoo.config import ModelConfig, merge, to_container
from zoo.layers import MIXERS
from zoo.layers.mlp import SwiGLU
from zoo.layers.norm import RMSNorm
from zoo.spec import LayerSpec, resolve_layers


class Block(nn.Module):
    def __init__(self, spec: LayerSpec, config: ModelConfig):
        super().__init__()
        self.spec = spec
        self.mixer_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mixer = MIXERS[spec.mixer](config.d_model, spec.config)
        self.mlp_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = SwiGLU(config.d_model, config.ffn_hidden)

    def forward(self, x, cu_seqlens=None, cache=None):
        x = x + self.mixer(self.mixer_norm(x), cu_seqlens=cu_seqlens, cache=cache)
        return x + self.mlp(self.mlp_norm(x))


@dataclass
class ModelCache:
    """Generation state: one cache per layer and the number of tokens consumed so far."""

    layers: List[object]
    batch_size: int
    seen: int = 0


class ZooModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.specs = resolve_layers(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(Block(spec, config) for spec in self.specs)
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.reset_parameters()
        if config.tie_embeddings:
            self.lm_head.weight = self.embeddings.weight

    def reset_parameters(self) -> None:
        """Normal(0, init_std) for embeddings and linears; residual outputs scaled by 1/√(2N)."""
        std = self.config.init_std
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                scale = 1 / math.sqrt(2 * len(self.layers)) if name.endswith(("o_proj", "down_proj")) else 1.0
                nn.init.normal_(module.weight, std=std * scale)

    def forward(self, input_ids: torch.Tensor, cu_seqlens: Optional[torch.Tensor] = None, cache: Optional[ModelCache] = None):
        """input_ids [B, T] → logits [B, T, V] float32.

        cu_seqlens: int32 [N+1] document offsets into the flattened B·T tokens (packed training).
        cache: from ``init_cache``; the tokens are appended to it (prefill, then one-token steps).
        """
        B, T = input_ids.shape
        if input_ids.dtype not in (torch.long, torch.int):
            raise TypeError(f"input_ids must be integer token ids, got {input_ids.dtype}")
        if cu_seqlens is not None:
            if cache is not None:
                raise ValueError("cu_seqlens (packed documents) and a generation cache cannot be combined")
            if cu_seqlens[0].item() != 0 or cu_seqlens[-1].item() != B * T:
                raise ValueError(f"cu_seqlens must run from 0 to B*T={B * T}, got {cu_seqlens[0].item()}..{cu_seqlens[-1].item()}")
            input_ids = input_ids.reshape(1, B * T)
        if cache is not None and cache.batch_size != B:
            raise ValueError(f"cache was made for batch size {cache.batch_size}, got input of batch size {B}")
        x = self.embeddings(input_ids)
        for i, layer in enumerate(self.layers):
            x = layer(x, cu_seqlens=cu_seqlens, cache=cache.layers[i] if cache is not None else None)
        if cache is not None:
            cache.seen += T
        return self.lm_head(self.norm(x)).float().view(B, T, -1)

    def init_cache(self, batch_size: int, device=None, dtype=None) -> ModelCache:
        device = device or self.embeddings.weight.device
        dtype = dtype or self.embeddings.weight.dtype
        return ModelCache([layer.mixer.init_cache(batch_size, device, dtype) for layer in self.layers], batch_size)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, temperature: float = 0.0,
                 eos_token_id: Optional[int] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Prefill the prompt once, then decode one token per step from the cache.

        input_ids [B, T] (all rows the same length) → [B, T + n], n ≤ max_new_tokens; greedy when
        temperature is 0. Rows that emitted eos_token_id are padded with it until all have.
        """
        cache = self.init_cache(input_ids.shape[0])
        logits = self(input_ids, cache=cache)[:, -1]
        out, done = [input_ids], torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for step in range(max_new_tokens):
            if temperature > 0:
                probs = torch.softmax(logits / temperature, dim=-1)
                token = torch.multinomial(probs, 1, generator=generator)[:, 0]
            else:
                token = logits.argmax(-1)
            if eos_token_id is not None:
                token = torch.where(done, torch.full_like(token, eos_token_id), token)
                done |= token == eos_token_id
            out.append(token[:, None])
            if step == max_new_tokens - 1 or (eos_token_id is not None and bool(done.all())):
                break
            logits = self(token[:, None], cache=cache)[:, -1]
        return torch.cat(out, dim=1)

    def num_params(self) -> int:
        """Exact count of distinct parameters (tied embeddings counted once)."""
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(self, directory: str | Path) -> None:
        """Write config.json and model.safetensors (tied weights stored once)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(to_container(self.config), indent=2))
        save_model(self, str(directory / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu", dtype: Optional[torch.dtype] = None) -> "ZooModel":
        directory = Path(directory)
        for name in ("config.json", "model.safetensors"):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory} has no {name}: not a zoo model directory (save_pretrained writes one)")
        config = merge(ModelConfig, json.loads((directory / "config.json").read_text()))
        model = cls(config)
        load_model(model, str(directory / "model.safetensors"), device=str(device))
        return model.to(device=device, dtype=dtype) if dtype is not None else model.to(device)
