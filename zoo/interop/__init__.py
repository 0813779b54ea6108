"""Checkpoint interchange with other libraries (today: flash-linear-attention, ``zoo.interop.fla``)."""
