"""Data: the embedded corpus, tokenizers, document packing, synthetic recall tasks."""
