"""zoo: a layer zoo for hybrid linear-attention language models."""
__version__ = "0.1.0"
