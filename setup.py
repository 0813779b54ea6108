"""Build hook: also install the lm-eval bridge at the top of site-packages (why: eval/lm_eval_bridge.py).

Everything else about the package is in pyproject.toml.
"""
import os

from setuptools import setup
from setuptools.command.build_py import build_py

BRIDGE_SOURCE = os.path.join("eval", "lm_eval_bridge.py")
BRIDGE_MODULE = "_zoo_lm_eval"
PTH_FILE = "zoo-lm-eval.pth"


class BuildPyWithLmEvalBridge(build_py):
    """build_py, plus ``_zoo_lm_eval.py`` (a copy of the bridge) and ``zoo-lm-eval.pth`` that imports it."""

    def run(self):
        super().run()
        # An editable (PEP 660) build throws build_lib away; setuptools packs the files it finds
        # in the install command's install_lib into the editable wheel as they are.
        top = self.get_finalized_command("install").install_lib if self.editable_mode else self.build_lib
        self.mkpath(top)
        self.copy_file(BRIDGE_SOURCE, os.path.join(top, BRIDGE_MODULE + ".py"), preserve_mode=False)
        with open(os.path.join(top, PTH_FILE), "w", encoding="utf-8") as pth:
            pth.write(f"import {BRIDGE_MODULE}; {BRIDGE_MODULE}.install()\n")


setup(cmdclass={"build_py": BuildPyWithLmEvalBridge})
