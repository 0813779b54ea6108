"""``python -m zoo.eval ARGS``: lm-eval's own command line with the ``zoo`` model registered.

    python -m zoo.eval run --model zoo --model_args pretrained=runs/my-run --tasks swde,fda
    python -m zoo.eval run --model zoo --model_args pretrained=runs/my-run \\
        --include_path "$(python -c 'import zoo.eval.tasks as t; print(t.TASKS_DIR)')" --tasks recall_sample
"""
import zoo.eval  # noqa: F401  (registers the model "zoo")
from lm_eval.__main__ import cli_evaluate

if __name__ == "__main__":
    cli_evaluate()
