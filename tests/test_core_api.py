"""Every module of the package declares __all__, and every name in it exists."""

import importlib
import pkgutil

import pytest

import lipmono


def package_modules():
    names = ["lipmono"]
    for info in pkgutil.walk_packages(lipmono.__path__, prefix="lipmono."):
        # __main__ runs the command line on import.
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return names


@pytest.mark.parametrize("module_name", package_modules())
def test_all_names_import(module_name):
    module = importlib.import_module(module_name)
    assert hasattr(module, "__all__"), f"{module_name} has no __all__"
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []
    assert len(set(module.__all__)) == len(module.__all__)
