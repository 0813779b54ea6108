"""``python3 bench/gpu/zoo_cli.py ARGS`` is ``zoo ARGS`` (e.g. ``train RECIPE key=value``) from a checkout
that is not installed, as on the GPU machine: bench/_repo.py maps ./kernels to ``zoo.kernels`` first.

``python cli.py`` needs the install there (``zoo.kernels`` comes from pyproject's package-dir).
Lightning's DDP launcher re-runs this file with the same arguments for the other ranks.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _repo import import_zoo  # noqa: E402

import_zoo()
from zoo.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
