"""TorchScript refusal: every gnnagg module names the supported alternative when scripted.

gnnagg's operators decide their work from the graph at run time (groupings cached per index,
tree schedules, degree-dependent runs, masks built from the edges) in Python that TorchScript
cannot compile, and ``torch.jit.script`` is deprecated in favour of ``torch.compile``. Rather
than crash deep inside the scripting of some helper, ``torch.jit.script`` raises
``NotImplementedError`` (a ``RuntimeError``) at the first gnnagg module it meets, naming
``torch.compile``.

This module imports nothing from the package.
"""

from __future__ import annotations

__all__ = ["NoTorchScript"]


class NoTorchScript:
    """Mixin for ``nn.Module`` classes: ``torch.jit.script`` raises a clear error.

    ``torch.jit.script`` calls ``__prepare_scriptable__`` on a module and on each of its
    submodules before compiling anything, so a model holding a gnnagg module anywhere is
    refused with this message too.
    """

    def __prepare_scriptable__(self):
        name = type(self).__name__
        raise NotImplementedError(
            f"{name} does not support TorchScript (torch.jit.script): its work depends on the "
            "graph at run time, in Python that TorchScript cannot compile. Use "
            f"torch.compile(model) instead (the deprecated torch.jit.script's successor), or "
            "run the model eagerly; see the 'torch.compile' section of the gnnagg guarantees"
        )
