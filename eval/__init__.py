"""Evaluation through lm-evaluation-harness: the `zoo` LM, task aliases, offline mirrors.

The lm-eval model ``zoo`` is registered lazily (``zoo.eval.lm`` — torch and the model — loads
only when lm-eval asks for it): in an environment where zoo is installed, lm-eval's own CLI sees
it (``lm_eval --model zoo --model_args pretrained=runs/x --tasks swde``; how: ``lm_eval_bridge``),
and ``import zoo.eval`` registers it too (e.g. running from a source tree), after which
``lm_eval.simple_evaluate(model="zoo", model_args="pretrained=runs/x")`` works.
``python -m zoo.eval <lm-eval arguments>`` is lm-eval's CLI with ``zoo`` registered by that import.
The offline mirror tasks live in ``zoo.eval.tasks.TASKS_DIR`` (pass it as ``--include_path``).
"""


def _register() -> None:
    import lm_eval.models  # noqa: F401  (fills lm-eval's registry first: it skips that when non-empty)

    from zoo.eval.lm_eval_bridge import register

    register()


_register()
