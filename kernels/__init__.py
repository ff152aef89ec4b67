"""Triton kernels for kanswap, installed as ``kanswap.kernels``.

Nothing here imports triton at module import time: each kernel module imports it lazily so that
``import kanswap`` works on machines without triton or a GPU.
"""
