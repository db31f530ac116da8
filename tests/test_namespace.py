"""No package attribute hides a submodule of the same name: ``gnnagg.<pkg>.<name>`` is the
module whenever ``gnnagg/<pkg>/<name>.py`` exists, so every documented dotted spelling of a
module (and of what it holds) resolves."""

import importlib
import pkgutil
import types

import gnnagg


def _packages():
    yield gnnagg
    for info in pkgutil.walk_packages(gnnagg.__path__, "gnnagg."):
        if info.ispkg:
            yield importlib.import_module(info.name)


def test_no_package_attribute_shadows_a_submodule():
    shadowed = []
    for package in _packages():
        for info in pkgutil.iter_modules(package.__path__):
            attribute = getattr(package, info.name, None)
            if attribute is not None and not isinstance(attribute, types.ModuleType):
                shadowed.append(f"{package.__name__}.{info.name}")
    assert shadowed == []


def test_every_exported_name_exists():
    for package in _packages():
        for name in getattr(package, "__all__", ()):
            assert hasattr(package, name), f"{package.__name__}.{name}"
