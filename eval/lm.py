"""The lm-evaluation-harness model ``zoo``: a trained zoo run scored through its public forward.

    from zoo.eval.lm import ZooLM
    lm = ZooLM(pretrained="runs/my-run")          # run dir or its model/ dir
    lm_eval.simple_evaluate(model=lm, tasks=["swde"])  # or model="zoo", model_args="pretrained=..."

What is notable:

- ``loglikelihood``: requests sorted by length (longest first), right-padded into batches of
  ``batch_size`` and scored with one forward each — right padding is harmless for causal
  models (DeltaNet included: no position sees a later one). Only the continuation's logits
  are log-softmaxed, never the whole [B, T, V] block.
- ``loglikelihood_rolling``: lm-eval's disjoint rolling windows of ``max_length`` tokens
  (default: the model's ``max_seq_len``), all windows of all documents batched together.
- ``generate_until``: cached decoding, never a re-forward of the prefix. Prompts of unequal
  length share one batch in *lockstep*: the batch prefills the shortest prompt's length in
  one forward, then every step feeds one token per row — the row's own next prompt token
  while it still has some, its sampled token after — so each row's recurrent state, conv
  tail, ring buffer and KV cache see exactly its own tokens and all rows share one position.
  Prompts are length-sorted and a batch is cut where the spread exceeds ``lockstep_tokens``,
  so the forced steps stay few. Stops on any ``until`` string, EOS, or ``max_gen_toks``.
- Every prompt starts with the tokenizer's EOS (``prefix_eos``), as documents do in the packed
  training stream (``EOS doc1 EOS doc2 …``).

Registration: lazy (this module loads on first use), by zoo's install for lm-eval's own CLI
(``lm_eval --model zoo``, see ``lm_eval_bridge``) and by ``import zoo.eval`` from Python.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tqdm import tqdm

from zoo.errors import ZooError

log = logging.getLogger("zoo.eval")

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


def resolve_model_dir(path: str | Path) -> Path:
    """A run directory (``runs/x``) or its ``model/`` directory -> the directory with config.json."""
    path = Path(path).expanduser()
    for cand in (path, path / "model"):
        if (cand / "config.json").is_file() and (cand / "model.safetensors").is_file():
            return cand
    if not path.exists():
        raise ZooError(f"{path} does not exist; pass a run directory written by `zoo train` (runs/<name>)")
    raise ZooError(f"{path} holds no zoo model (config.json + model.safetensors, itself or in model/); "
                   "pass a run directory written by `zoo train`")


def load_run_tokenizer(model_dir: Path):
    """The run's ``tokenizer.json`` as a ZooTokenizer; a missing or unusable one is a ZooError."""
    from zoo.data.config import DataConfigError
    from zoo.data.tokenizer import load_tokenizer

    try:
        return load_tokenizer(model_dir)
    except DataConfigError as err:
        raise ZooError(f"{model_dir}: {err}") from None


def _dtype(value: Any, device: torch.device) -> torch.dtype:
    if isinstance(value, torch.dtype):
        return value
    if value in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if str(value) not in _DTYPES:
        raise ZooError(f"dtype={value!r}: choose one of auto, {', '.join(_DTYPES)}")
    return _DTYPES[str(value)]


def _batch_size(value: Any) -> int:
    if isinstance(value, str) and value.startswith("auto"):
        log.warning("zoo: batch_size=%s is not searched automatically; using 16", value)
        return 16
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise ZooError(f"batch_size={value!r} must be a positive integer") from None
    if size < 1:
        raise ZooError(f"batch_size={value!r} must be a positive integer")
    return size


@register_model("zoo")
class ZooLM(TemplateLM):
    """lm-eval model over a ``ZooModel`` and its tokenizer.

    Args (all usable as ``--model_args key=value``):
        pretrained: run directory or model directory (config.json, model.safetensors, tokenizer.json).
        model, tokenizer: an in-memory ``ZooModel`` and ``ZooTokenizer`` instead of ``pretrained``.
        device: default cuda when available, else cpu.  dtype: auto (bf16 on CUDA, fp32 on CPU) or a name.
        batch_size: sequences per forward (loglikelihood) or per lockstep decode batch.
        max_length: context window in tokens (default the model's ``max_seq_len``).
        max_gen_toks: default generation budget when a task gives none.
        lockstep_tokens: the widest prompt-length spread allowed inside one generation batch.
        prefix_eos: start every prompt with EOS (the training stream's document separator).
        max_batch_size: accepted because lm-eval's CLI passes it; there is no automatic batch search.
    """

    def __init__(self, pretrained: Optional[str] = None, model=None, tokenizer=None, device: Optional[str] = None,
                 dtype: Any = "auto", batch_size: Any = 16, max_batch_size: Any = None, max_length: Optional[int] = None,
                 max_gen_toks: int = 256, lockstep_tokens: int = 64, prefix_eos: bool = True, **unused: Any):
        super().__init__()
        if unused:
            raise ZooError(f"unknown model_args for zoo: {', '.join(sorted(unused))}. Valid: pretrained, device, "
                           "dtype, batch_size, max_length, max_gen_toks, lockstep_tokens, prefix_eos")
        from zoo.model import ZooModel

        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self._device.type == "cuda" and not torch.cuda.is_available():
            raise ZooError(f"device={device!r} but CUDA is not available here; pass --device cpu "
                           "(lm-eval's CLI defaults to cuda:0)")
        self._dtype = _dtype(dtype, self._device)
        if model is None:
            if pretrained is None:
                raise ZooError("the zoo model needs pretrained=RUN_DIR (a directory written by `zoo train`)")
            self.model_dir: Optional[Path] = resolve_model_dir(pretrained)
            model = ZooModel.from_pretrained(self.model_dir, device=self._device, dtype=self._dtype)
            tokenizer = tokenizer or load_run_tokenizer(self.model_dir)
        else:
            self.model_dir = None
            model = model.to(device=self._device, dtype=self._dtype)
            if tokenizer is None:
                raise ZooError("ZooLM(model=...) also needs tokenizer=... (a zoo.data.tokenizer.ZooTokenizer)")
        self.model = model.eval()
        self.tokenizer = tokenizer
        if tokenizer.vocab_size > model.config.vocab_size:
            raise ZooError(f"tokenizer has {tokenizer.vocab_size} tokens but the model only {model.config.vocab_size}")
        self.batch_size = _batch_size(batch_size)
        self._max_length = int(max_length or model.config.max_seq_len)
        self.max_gen_toks = int(max_gen_toks)
        self.lockstep_tokens = int(lockstep_tokens)
        self.prefix_eos = str(prefix_eos).lower() not in ("false", "0", "no")

    # ---- lm-eval plumbing -------------------------------------------------------------------
    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_id

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def tokenizer_name(self) -> str:
        return str(self.model_dir or "in-memory").replace("/", "__")

    def get_model_info(self) -> Dict[str, Any]:
        cfg = self.model.config
        return {"zoo_model_dir": str(self.model_dir), "zoo_pattern": cfg.pattern, "zoo_n_layers": len(self.model.layers),
                "zoo_d_model": cfg.d_model, "zoo_params": self.model.num_params(), "zoo_max_length": self.max_length}

    def tok_encode(self, string: str, add_special_tokens: Optional[bool] = None, **kwargs) -> List[int]:
        """Token ids; with ``add_special_tokens`` None/True and ``prefix_eos``, EOS comes first."""
        ids = self.tokenizer.encode(string)
        if add_special_tokens is not False and self.prefix_eos and (not ids or ids[0] != self.eot_token_id):
            ids = [self.eot_token_id] + ids
        return ids

    def tok_decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids)

    # ---- scoring ----------------------------------------------------------------------------
    @torch.no_grad()
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> List[Tuple[float, bool]]:
        """requests: [(key, context_ids, continuation_ids)] -> [(sum log p(continuation), is_greedy)]."""
        rows = []
        for key, ctx, cont in requests:
            if not cont:
                raise ZooError(f"empty continuation for context {str(key)[:60]!r}")
            whole = (list(ctx) + list(cont))[-(self.max_length + 1):]
            n = min(len(cont), len(whole) - 1)
            rows.append((key, whole[:-1], whole[-n:]))
        order = sorted(range(len(rows)), key=lambda i: (-len(rows[i][1]), i))
        out: List[Optional[Tuple[float, bool]]] = [None] * len(rows)
        bar = tqdm(total=len(rows), desc="zoo loglikelihood", disable=disable_tqdm)
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            width = len(rows[batch[0]][1])
            ids = torch.full((len(batch), width), self.eot_token_id, dtype=torch.long)
            for b, i in enumerate(batch):
                ids[b, :len(rows[i][1])] = torch.tensor(rows[i][1])
            logits = self.model(ids.to(self.device))  # [B, T, V] float32
            for b, i in enumerate(batch):
                key, inp, cont = rows[i]
                lp = F.log_softmax(logits[b, len(inp) - len(cont):len(inp)].float(), dim=-1)  # [n, V]
                target = torch.tensor(cont, device=lp.device)
                result = (float(lp.gather(1, target[:, None]).sum()), bool((lp.argmax(-1) == target).all()))
                out[i] = result
                if key is not None:
                    self.cache_hook.add_partial("loglikelihood", key, result)
            bar.update(len(batch))
        bar.close()
        return out  # type: ignore[return-value]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> List[float]:
        """Whole-document log-likelihood over disjoint windows of ``max_length`` predicted tokens."""
        windows, owner = [], []
        for r, req in enumerate(requests):
            (text,) = req.args
            tokens = self.tok_encode(text, add_special_tokens=False)
            for ctx, cont in map(make_disjoint_window, get_rolling_token_windows(
                    token_list=tokens, prefix_token=self.prefix_token_id, max_seq_len=self.max_length, context_len=1)):
                windows.append((None, ctx, cont))
                owner.append(r)
        scores = self._loglikelihood_tokens(windows, disable_tqdm=disable_tqdm)
        totals = [0.0] * len(requests)
        for r, (ll, _) in zip(owner, scores):
            totals[r] += ll
        for req, total in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    # ---- generation -------------------------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False) -> List[str]:
        """Greedy (or sampled, with do_sample and temperature > 0) continuations, cut at ``until``."""
        items = []
        for req in requests:
            context, gen_kwargs = req.args
            items.append((context, gen_kwargs, *self._gen_settings(context, gen_kwargs)))
        order = sorted(range(len(items)), key=lambda i: (len(items[i][2]), i))
        out: List[Optional[str]] = [None] * len(items)
        bar = tqdm(total=len(items), desc="zoo generate_until", disable=disable_tqdm)
        start = 0
        while start < len(order):
            end, base = start + 1, len(items[order[start]][2])
            while (end < len(order) and end - start < self.batch_size
                   and len(items[order[end]][2]) - base <= self.lockstep_tokens):
                end += 1
            batch = order[start:end]
            texts = self.generate_batch([items[i][2] for i in batch], [items[i][3] for i in batch],
                                        [items[i][4] for i in batch], [items[i][5] for i in batch])
            for i, text in zip(batch, texts):
                out[i] = text
                self.cache_hook.add_partial("generate_until", (items[i][0], items[i][1]), text)
            bar.update(len(batch))
            start = end
        bar.close()
        return out  # type: ignore[return-value]

    def _gen_settings(self, context: str, gen_kwargs: Dict[str, Any]):
        kw = dict(gen_kwargs or {})
        until = kw.pop("until", None) or []
        until = [until] if isinstance(until, str) else list(until)
        max_gen = int(kw.pop("max_gen_toks", self.max_gen_toks))
        do_sample = bool(kw.pop("do_sample", False))
        temperature = float(kw.pop("temperature", 0.0) or 0.0)
        if kw:
            log.warning("zoo: ignoring generation settings it does not implement: %s", ", ".join(sorted(kw)))
        ids = self.tok_encode(context)
        budget = max(self.max_length - max_gen, 1)
        if len(ids) > budget:
            ids = ids[-budget:]  # keep the end of the prompt, as lm-eval's HF model does
        return ids, until, max_gen, temperature if do_sample else 0.0

    def generate_batch(self, prompts: List[List[int]], untils: List[List[str]], max_gens: List[int],
                       temperatures: Optional[List[float]] = None, generator: Optional[torch.Generator] = None) -> List[str]:
        """Decode a batch of prompts of any lengths in lockstep from one model cache.

        prompts: token ids per row (non-empty); untils: stop strings per row; max_gens: token budget
        per row; temperatures: 0 = greedy. Returns the generated text per row, cut before the first
        stop string (EOS ends a row too and is not part of the text).
        """
        return [text for _, text in self.generate_tokens(prompts, untils, max_gens, temperatures, generator)]

    @torch.no_grad()
    def generate_tokens(self, prompts: List[List[int]], untils: List[List[str]], max_gens: List[int],
                        temperatures: Optional[List[float]] = None,
                        generator: Optional[torch.Generator] = None) -> List[Tuple[List[int], str]]:
        """``generate_batch`` that also returns each row's generated token ids (EOS excluded)."""
        B = len(prompts)
        temperatures = temperatures or [0.0] * B
        lens = torch.tensor([len(p) for p in prompts])
        if int(lens.min()) < 1:
            raise ZooError("generate_batch needs non-empty prompts")
        lo, hi = int(lens.min()), int(lens.max())
        table = torch.full((B, hi), self.eot_token_id, dtype=torch.long)
        for b, p in enumerate(prompts):
            table[b, :len(p)] = torch.tensor(p)
        table, lens = table.to(self.device), lens.to(self.device)
        temps = torch.tensor(temperatures, device=self.device, dtype=torch.float32)
        cache = self.model.init_cache(B, device=self.device, dtype=self._dtype)
        logits = self.model(table[:, :lo], cache=cache)[:, -1]  # [B, V]
        generated: List[List[int]] = [[] for _ in range(B)]
        texts: List[Optional[str]] = ["" if m <= 0 else None for m in max_gens]
        if all(x is not None for x in texts):
            return list(zip(generated, texts))  # type: ignore[arg-type]
        t = lo
        while True:
            token = logits.argmax(-1)
            if bool((temps > 0).any()):
                probs = torch.softmax(logits / temps.clamp_min(1e-6)[:, None], dim=-1)
                token = torch.where(temps > 0, torch.multinomial(probs, 1, generator=generator)[:, 0], token)
            if t < hi:
                token = torch.where(t < lens, table[:, t], token)
            chosen = token.tolist()
            for b in range(B):
                if t < len(prompts[b]) or texts[b] is not None:
                    continue
                if chosen[b] == self.eot_token_id:
                    texts[b] = _cut(self.tok_decode(generated[b]), untils[b])
                    continue
                generated[b].append(chosen[b])
                text = self.tok_decode(generated[b])
                cut = _cut(text, untils[b])
                if len(cut) < len(text) or len(generated[b]) >= max_gens[b]:
                    texts[b] = cut
            if all(x is not None for x in texts):
                return list(zip(generated, texts))  # type: ignore[arg-type]
            logits = self.model(token[:, None], cache=cache)[:, -1]
            t += 1


def _cut(text: str, until: List[str]) -> str:
    """``text`` up to the earliest occurrence of any stop string."""
    cuts = [text.find(s) for s in until if s]
    cuts = [c for c in cuts if c >= 0]
    return text[:min(cuts)] if cuts else text
