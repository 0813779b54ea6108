"""Kernel tests run the Triton kernels through the interpreter on CPU tensors.

TRITON_INTERPRET must be set before any kernel module is imported (triton.jit reads it
when a kernel is decorated), so it is set here, at conftest import time.
"""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")
