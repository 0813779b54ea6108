"""The lm-eval model ``zoo``: cached generation, loglikelihood, rolling windows, registration."""
import math

import pytest
import torch
import torch.nn.functional as F
from lm_eval.api.instance import Instance

import zoo.eval  # noqa: F401  (registers "zoo")
from zoo.errors import ZooError
from zoo.eval.lm import ZooLM, _cut

from conftest import save_run, tiny_model

from zoo.spec import BUILTINS

# every built-in mixer (a new one is picked up automatically; SWA with a window the prompts overflow)
# and hybrids of them
PATTERNS = [("swa[window=4]" if name == "swa" else name) for name in sorted(BUILTINS)] + [
    "(delta swa[window=4])", "gdelta attn delta", "linear swa[window=3] delta"]


@torch.no_grad()
def reference_greedy(model, prompt, steps, eos):
    """Greedy decoding by a full forward over the whole prefix at every step (no cache)."""
    seq, out = list(prompt), []
    for _ in range(steps):
        nxt = int(model(torch.tensor([seq]))[0, -1].argmax())
        if nxt == eos:
            break
        out.append(nxt)
        seq.append(nxt)
    return out


@pytest.mark.parametrize("pattern", PATTERNS)
def test_cached_lockstep_generation_equals_full_forward_argmax(pattern, tokenizer):
    """Unequal prompts in one batch (lockstep) and the SWA ring buffer wrapping: every step matches."""
    model = tiny_model(pattern, tokenizer.vocab_size)
    lm = ZooLM(model=model, tokenizer=tokenizer, device="cpu", lockstep_tokens=100)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(1, tokenizer.vocab_size, (n,), generator=g).tolist() for n in (3, 11, 6, 17)]
    steps = 9
    got = lm.generate_tokens(prompts, [[]] * len(prompts), [steps] * len(prompts))
    for prompt, (tokens, text) in zip(prompts, got):
        want = reference_greedy(model, prompt, steps, tokenizer.eos_id)
        assert tokens == want
        assert text == tokenizer.decode(want)


def test_generate_until_stops_at_strings_and_budget(tokenizer):
    model = tiny_model("(delta swa[window=4])", tokenizer.vocab_size)
    lm = ZooLM(model=model, tokenizer=tokenizer, device="cpu")
    ctx = "Title: The Wynsab Orchard | Director:"
    free = lm.generate_until([Instance("generate_until", {}, (ctx, {"until": [], "max_gen_toks": 12}), 0)],
                             disable_tqdm=True)[0]
    assert free == tokenizer.decode(reference_greedy(model, lm.tok_encode(ctx), 12, tokenizer.eos_id))
    stop = free[len(free) // 2: len(free) // 2 + 2]
    if not stop.strip():
        pytest.skip("random model produced whitespace only")
    cut = lm.generate_until([Instance("generate_until", {}, (ctx, {"until": [stop], "max_gen_toks": 12}), 0)],
                            disable_tqdm=True)[0]
    assert cut == free[:free.find(stop)]
    three = lm.generate_until([Instance("generate_until", {}, (ctx, {"until": ["\n"], "max_gen_toks": 3}), 0)],
                              disable_tqdm=True)[0]
    first3 = tokenizer.decode(reference_greedy(model, lm.tok_encode(ctx), 3, tokenizer.eos_id))
    assert three == first3.split("\n")[0]  # three tokens at most, cut at the first newline


def test_cut_takes_earliest_stop():
    assert _cut("ab\ncd||ef", ["||", "\n"]) == "ab"
    assert _cut("abc", []) == "abc"


@pytest.mark.parametrize("pattern", ["(delta swa[window=4])", "gdelta attn"])
@torch.no_grad()
def test_loglikelihood_equals_one_full_forward(pattern, tokenizer):
    model = tiny_model(pattern, tokenizer.vocab_size)
    lm = ZooLM(model=model, tokenizer=tokenizer, device="cpu", batch_size=3)
    pairs = [("The tower is", " 38 metres"), ("Director:", " Ilsa"), ("A", " b c d e f g"),
             ("Long context " * 4, " x"), ("", "Start of a document"), ("Year:", " 2075")]
    reqs = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    got = lm.loglikelihood(reqs, disable_tqdm=True)
    for (ctx, cont), (ll, greedy) in zip(pairs, got):
        if ctx:
            ctx, cont = ctx.rstrip(), ctx[len(ctx.rstrip()):] + cont
            whole = lm.tok_encode(ctx + cont)
            n = len(whole) - len(lm.tok_encode(ctx))
        else:
            whole = [tokenizer.eos_id] + tokenizer.encode(cont)
            n = len(whole) - 1
        lp = F.log_softmax(model(torch.tensor([whole]))[0, :-1], -1)[-n:]
        target = torch.tensor(whole[-n:])
        assert ll == pytest.approx(float(lp.gather(1, target[:, None]).sum()), abs=1e-4)
        assert greedy == bool((lp.argmax(-1) == target).all())


@torch.no_grad()
def test_loglikelihood_rolling_windows(tokenizer):
    model = tiny_model("(delta swa[window=4])", tokenizer.vocab_size, max_seq_len=16)
    doc = "Substantially equivalent to Kaix-845. Intended use: monitoring in homes and clinics."
    tokens = tokenizer.encode(doc)
    assert len(tokens) > 2 * 16  # several windows
    lm = ZooLM(model=model, tokenizer=tokenizer, device="cpu", batch_size=2)
    short = ZooLM(model=model, tokenizer=tokenizer, device="cpu", max_length=256)
    got, got_short = (m.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (doc,), 0)], disable_tqdm=True)[0]
                      for m in (lm, short))
    # one window: EOS + the document in one forward
    full = [tokenizer.eos_id] + tokens
    lp = F.log_softmax(model(torch.tensor([full]))[0, :-1], -1)
    assert got_short == pytest.approx(float(lp.gather(1, torch.tensor(full[1:])[:, None]).sum()), abs=1e-4)
    # windows of 16: token j is predicted from at most the 16 positions of `full` before it
    want, L = 0.0, 16
    for start in range(0, len(tokens), L):
        end = min(start + L, len(tokens))
        lo = max(0, end - L)
        inp = full[lo:end]
        lpw = F.log_softmax(model(torch.tensor([inp]))[0], -1)
        for j in range(start, end):
            want += float(lpw[j - lo, tokens[j]])
    assert got == pytest.approx(want, abs=1e-4)
    assert math.isfinite(got) and got < 0 and got != pytest.approx(got_short)


def test_registered_and_built_from_arg_string(tmp_path, tokenizer):
    from lm_eval.api.registry import get_model, model_registry

    assert get_model("zoo") is ZooLM
    assert "vllm" in model_registry  # lm-eval's own models stay registered
    run = save_run(tmp_path, tiny_model("delta swa[window=4]", tokenizer.vocab_size), tokenizer)
    lm = ZooLM.create_from_arg_string(f"pretrained={run},batch_size=2", {"device": "cpu", "batch_size": None})
    assert lm.batch_size == 2 and lm.max_length == 64 and lm.eot_token_id == tokenizer.eos_id
    assert lm.model_dir == run / "model"
    with pytest.raises(ZooError, match="unknown model_args for zoo: colour"):
        ZooLM(pretrained=str(run), colour="red")
    if not torch.cuda.is_available():
        with pytest.raises(ZooError, match="CUDA is not available here; pass --device cpu"):
            ZooLM(pretrained=str(run), device="cuda:0")
    with pytest.raises(ZooError, match="holds no zoo model"):
        ZooLM(pretrained=str(tmp_path))
    (run / "model" / "tokenizer.json").unlink()
    with pytest.raises(ZooError, match="no tokenizer at"):
        ZooLM(pretrained=str(run))
