"""``zoo generate``: continue a prompt with a trained run (prefill once, then cached steps).

The prompt is prefixed with EOS, the document separator of the training stream; generation
stops at ``max_new_tokens`` or EOS. Greedy at temperature 0, sampled (seeded) above.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch

from zoo.errors import ZooError


def generate_text(run_dir: str | Path, prompt: str, max_new_tokens: int = 64, temperature: float = 0.0,
                  device: Optional[str] = None, seed: int = 0) -> str:
    """The continuation of ``prompt`` (without the prompt) as text."""
    from zoo.eval.lm import load_run_tokenizer, resolve_model_dir
    from zoo.model import ZooModel

    if max_new_tokens < 1:
        raise ZooError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    if temperature < 0:
        raise ZooError(f"--temperature must be >= 0, got {temperature}")
    model_dir = resolve_model_dir(run_dir)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = ZooModel.from_pretrained(model_dir, device=dev, dtype=torch.bfloat16 if dev.type == "cuda" else None).eval()
    tok = load_run_tokenizer(model_dir)
    ids = torch.tensor([[tok.eos_id] + tok.encode(prompt)], device=dev)
    gen = torch.Generator(device=dev).manual_seed(seed)
    out = model.generate(ids, max_new_tokens=max_new_tokens, temperature=temperature, eos_token_id=tok.eos_id,
                         generator=gen)
    new = [t for t in out[0, ids.shape[1]:].tolist() if t != tok.eos_id]
    return tok.decode(new)


def run_generate(run_dir: Optional[str], prompt: str, max_new_tokens: int = 64, temperature: float = 0.0,
                 device: Optional[str] = None, seed: int = 0, runs_root: str = "runs",
                 echo: Callable[[str], None] = print) -> str:
    """CLI body: resolve the run (latest when None, announced), print prompt + continuation."""
    from zoo.eval.runner import resolve_run_dir

    run = resolve_run_dir(run_dir, runs_root, lambda line: echo(line.replace("zoo eval:", "zoo generate:")))
    text = generate_text(run, prompt, max_new_tokens, temperature, device, seed)
    echo(prompt + text)
    return text
