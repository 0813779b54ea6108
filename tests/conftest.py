"""Suite-wide setup.

The suite runs on CPU tensors; Triton kernels run through the Triton interpreter (GPU checks at
real shapes live in bench/). triton.jit reads TRITON_INTERPRET when a kernel is decorated, and any
test module may import the kernels (through zoo.layers), so it is set here, before the first test
module is collected — on a GPU host too, so that the kernels accept the tests' CPU tensors.
"""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")
