"""Architectures from the user's own code, named only by a flag: `path/to/file.py:factory` or
`package.module:factory` imports that code and calls the factory. A data file (checkpoint, sidecar)
may name registered architectures only (kdtrain.models.registry), never code to import.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

from torch import nn

from kdtrain.errors import UserError, first_line
from kdtrain.models.registry import create_model

# Factory arguments passed where the factory names them (timm spells the channels in_chans).
FACTORY_ARGS = ("num_classes", "in_channels", "in_chans")


def is_code(arch: str) -> bool:
    """Whether `arch` names user code (`where:factory`) rather than a registered or library model."""
    return ":" in arch and not arch.startswith(("tv:", "timm:"))


def build_model(arch: str, num_classes: int, in_channels: int) -> nn.Module:
    """The model `arch` names, user code included: only for a name the user gave on the command line."""
    return _from_factory(arch, num_classes, in_channels) if is_code(arch) else create_model(arch, num_classes,
                                                                                          in_channels)


def _from_factory(arch: str, num_classes: int, in_channels: int) -> nn.Module:
    where, _, name = arch.rpartition(":")
    if not where or not name.isidentifier():
        raise UserError(f"--teacher-arch {arch}: expected path/to/file.py:factory or package.module:factory")
    module = _import(arch, where)
    factory = getattr(module, name, None)
    if not callable(factory):
        raise UserError(f"--teacher-arch {arch}: {where} has no function {name!r}")
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    values = {"num_classes": num_classes, "in_channels": in_channels, "in_chans": in_channels}
    try:
        model = factory(**{k: values[k] for k in FACTORY_ARGS if k in params})
    except Exception as e:  # noqa: BLE001 - the user's code: whatever it raises, one line
        raise UserError(f"--teacher-arch {arch}: {name}() raised {type(e).__name__}: {first_line(e)}") from None
    if not isinstance(model, nn.Module):
        raise UserError(f"--teacher-arch {arch}: {name}() returned {type(model).__name__}, not a torch nn.Module")
    return model


def _import(arch: str, where: str):
    """Import `where`: a .py file (under a name of its own, so two files may share a stem) or a module."""
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise UserError(f"--teacher-arch {arch}: no file {where}")
            name = "kdtrain_arch_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses and pickling look modules up here
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
            return module
        return importlib.import_module(where)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a syntax error, a failing import, anything the user's code raises
        raise UserError(f"--teacher-arch {arch}: importing {where} failed ({type(e).__name__}: {first_line(e)})") \
            from None
