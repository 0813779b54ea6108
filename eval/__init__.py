"""Evaluation through lm-evaluation-harness: the `zoo` LM, task aliases, offline mirrors.

Importing ``zoo.eval`` registers the lm-eval model ``zoo`` lazily (``zoo.eval.lm`` — torch and
the model — loads only when lm-eval asks for it), so after ``import zoo.eval``,
``lm_eval.simple_evaluate(model="zoo", model_args="pretrained=runs/x")`` works. lm-eval 0.4.13
has no plugin entry points for models, so its console script cannot see ``zoo`` by itself:
``python -m zoo.eval <lm-eval arguments>`` is lm-eval's CLI with ``zoo`` registered, e.g.
``python -m zoo.eval run --model zoo --model_args pretrained=runs/x --tasks swde``.
The offline mirror tasks live in ``zoo.eval.tasks.TASKS_DIR`` (pass it as ``--include_path``).
"""


def _register() -> None:
    import lm_eval.models  # noqa: F401  (fills lm-eval's registry first: it skips that when non-empty)
    from lm_eval.api.registry import model_registry

    if "zoo" not in model_registry:
        model_registry.register("zoo", target="zoo.eval.lm:ZooLM")


_register()
