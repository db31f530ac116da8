"""A dispatch mode that logs the tensors ops write, for tests that bound memory without timing."""

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class AllocationLog(TorchDispatchMode):
    """Bytes of every tensor an op writes (views excluded), forward and backward: ``largest``
    (one tensor) and ``total``."""

    def __init__(self):
        super().__init__()
        self.largest = 0
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            for t in out if isinstance(out, (tuple, list)) else (out,):
                # A sparse tensor's numel is its dense size; its parts are logged as they are made.
                if isinstance(t, torch.Tensor) and t.layout == torch.strided:
                    size = t.numel() * t.element_size()
                    self.largest = max(self.largest, size)
                    self.total += size
        return out
