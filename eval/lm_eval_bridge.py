"""Lets lm-eval's own CLI see the model ``zoo``: ``lm_eval --model zoo --model_args pretrained=RUN``.

lm-eval 0.4.13 resolves ``--model NAME`` against its model registry only, which it fills on
first use by importing its own model table ``lm_eval.models``; it has no plugin hook. (lm-eval's
main branch has since added the entry-point group ``lm_eval.models``; pyproject.toml declares
``zoo`` there as well, for versions that read it.)

So installing zoo (``pip install .`` or ``pip install -e .``) also puts a copy of this file at
the top of site-packages as ``_zoo_lm_eval.py``, plus ``zoo-lm-eval.pth`` whose one line
``import _zoo_lm_eval; _zoo_lm_eval.install()`` Python's ``site`` runs at every interpreter start
of that environment (setup.py writes both; ``pip uninstall zoo`` removes them). That line
imports nothing but ``sys`` — not zoo, lm-eval or torch, so startup stays as fast as before and
a zoo checkout on ``sys.path`` still wins over the installed one — and puts a meta-path finder
first that never finds anything: when ``lm_eval.models`` is looked up, it registers zoo's models
through lm-eval's public ``model_registry.register(name, target="module:Class")``, a lazy
placeholder, so ``zoo.eval.lm`` (torch and the model) loads only when a run asks for ``zoo``.
No lm-eval file is touched. The installed copy does not follow edits of this file: reinstall.
"""
import sys

#: lm-eval model name -> "module:Class", as in pyproject.toml's [project.entry-points."lm_eval.models"].
MODELS = {"zoo": "zoo.eval.lm:ZooLM"}


def register() -> None:
    """Register ``MODELS`` with lm-eval's model registry, lazily; names it already has stay as they are."""
    from lm_eval.api.registry import model_registry

    for name, target in MODELS.items():
        if name not in model_registry:
            model_registry.register(name, target=target)


class RegisterWithLmEval:
    """Meta-path finder that finds nothing; looking up ``lm_eval.models`` runs ``register()``.

    lm-eval imports ``lm_eval.models`` the first time its registry is asked for a model, and
    registers its own models there only under names still free, so ``zoo`` is in place before
    any name is resolved and lm-eval's models are all still registered.
    """

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        if fullname == "lm_eval.models":
            try:
                register()
            except Exception as err:  # runs inside every lm-eval user's import: warn, never break it
                import warnings

                warnings.warn(f"zoo could not register its lm-eval model: {err!r}", stacklevel=2)
        return None


def install() -> None:
    """Put the finder first on ``sys.meta_path``, once (the .pth line calls this at startup)."""
    if not any(getattr(f, "__name__", None) == RegisterWithLmEval.__name__ for f in sys.meta_path):
        sys.meta_path.insert(0, RegisterWithLmEval)
