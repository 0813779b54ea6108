"""Suite-wide setup.

Triton kernels run through the interpreter on CPU tensors when no GPU is present. triton.jit
reads TRITON_INTERPRET when a kernel is decorated, and any test module may import the kernels
(through zoo.layers), so it is set here, before the first test module is collected.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
