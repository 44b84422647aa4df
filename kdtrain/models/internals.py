"""What refine and score read inside a teacher, whatever its format: the tensors entering its BatchNorm
layers (with their running statistics) and its penultimate features (the input of its classifier head).

Both are read with forward hooks. An eager model is hooked on its own modules. An exported program
(.pt2) keeps every batch-norm op in its graph with the running statistics as inputs, but no BatchNorm
modules: identity "taps" are inserted in its graph before each batch-norm op and before the last
linear op, and hooked instead. A TorchScript model allows no hooks at all: its graph is first
converted to the same kind of graph by torch's TorchScript converter, then tapped. So refine and
score see one interface, `Internals`, for every format.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from kdtrain.errors import UserError, first_line

aten = torch.ops.aten
# Batch-norm ops as they appear in exported graphs: input first, running mean and var 4th and 5th.
BN_OPS = {aten.batch_norm.default, aten._native_batch_norm_legit_no_training.default,
          aten._native_batch_norm_legit.default, aten.native_batch_norm.default,
          aten._native_batch_norm_legit_functional.default, aten.cudnn_batch_norm.default}
# Classifier-head ops and the argument that is their input features.
HEAD_OPS = {aten.linear.default: 0, aten.addmm.default: 1, aten.mm.default: 0}
NO_BN = ("it has no BatchNorm layers (none in its graph: deployment exports often fold them into the "
         "convolutions)")


class Tap(nn.Module):
    """Identity: a forward hook on it sees the tensor passing through a point of a graph."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class BatchNormTap(Tap):
    """Sits before a batch-norm op of a graph, carrying its running statistics as a BatchNorm module does."""

    def __init__(self, running_mean: torch.Tensor, running_var: torch.Tensor):
        super().__init__()
        self.register_buffer("running_mean", running_mean, persistent=False)
        self.register_buffer("running_var", running_var, persistent=False)


@dataclass
class Internals:
    """`model`: what to run (the teacher's own model, tapped where it is a graph). A forward hook on each of
    `bn_layers` sees a BatchNorm layer's input, and the layer has `running_mean` and `running_var`; one on
    `head` sees the penultimate features as its input. `no_bn`, `no_head`: why either is missing."""

    model: nn.Module
    bn_layers: list[nn.Module]
    head: nn.Module | None
    no_bn: str = ""
    no_head: str = ""


def internals_of(model: nn.Module, sample: torch.Tensor) -> Internals:
    """The internals of an eager model, an exported program's module or a TorchScript module.
    `sample`: a small batch at the model's input (normalised), to convert and check a TorchScript graph."""
    model = getattr(model, "_orig_mod", model)  # torch.compile's wrapper: its hooks are the model's
    if isinstance(model, torch.jit.ScriptModule):
        return _tap_graph(_from_torchscript(model, sample))
    if isinstance(model, torch.fx.GraphModule):
        return _tap_graph(model)
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
              and m.track_running_stats and m.running_mean is not None]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return Internals(model, layers, linears[-1] if linears else None, "" if layers else NO_BN,
                     "" if linears else "it has no nn.Linear classifier head")


def _tap_graph(gm: torch.fx.GraphModule) -> Internals:
    """Insert taps into `gm` in place (once): before each batch-norm op and before the last linear op."""
    taps = [m for m in gm.children() if isinstance(m, Tap)]
    if not taps:
        graph = gm.graph
        nodes = [n for n in graph.nodes if n.op == "call_function"]
        for i, node in enumerate(n for n in nodes if n.target in BN_OPS):
            mean, var = (node.args[3], node.args[4]) if len(node.args) > 4 else (None, None)
            if not (_is_tensor_attr(gm, mean) and _is_tensor_attr(gm, var)):
                continue  # no running statistics (track_running_stats=False)
            _insert(gm, node, 0, f"kd_bn_tap_{i}", BatchNormTap(_attr(gm, mean.target), _attr(gm, var.target)))
        heads = [n for n in nodes if n.target in HEAD_OPS]
        if heads:
            _insert(gm, heads[-1], HEAD_OPS[heads[-1].target], "kd_head_tap", Tap())
        gm.recompile()
        taps = [m for m in gm.children() if isinstance(m, Tap)]
    layers = [m for m in taps if isinstance(m, BatchNormTap)]
    head = next((m for m in taps if not isinstance(m, BatchNormTap)), None)
    return Internals(gm, layers, head, "" if layers else NO_BN,
                     "" if head else "its graph has no linear (or addmm) classifier head")


def _insert(gm: torch.fx.GraphModule, node: torch.fx.Node, arg: int, name: str, tap: Tap) -> None:
    """Route argument `arg` of `node` through a new call of `tap` (a submodule `name` of gm)."""
    gm.add_submodule(name, tap)
    with gm.graph.inserting_before(node):
        tapped = gm.graph.call_module(name, (node.args[arg],))
    node.update_arg(arg, tapped)


def _is_tensor_attr(gm, node) -> bool:
    return isinstance(node, torch.fx.Node) and node.op == "get_attr" and isinstance(_attr(gm, node.target),
                                                                                     torch.Tensor)


def _attr(gm, target: str):
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


@contextmanager
def _quiet():
    """Silence the converter's warnings and log lines (notes on constants, unused buffers and dimensions
    specialised to the sample's): our output stays ours."""
    loggers = [logging.getLogger(name) for name in ("torch._export", "torch.export", "torch.fx.experimental")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def _from_torchscript(model: torch.jit.ScriptModule, sample: torch.Tensor) -> torch.fx.GraphModule:
    """The TorchScript model as an exported graph, by torch's converter; checked to give the same logits."""
    fix = "export the teacher with torch.export (a .pt2), or give a kdtrain checkpoint or a state_dict"
    try:
        from torch._export.converter import TS2EPConverter
    except ImportError:
        raise UserError(f"cannot look inside a TorchScript teacher: this torch has no TorchScript converter; {fix}") \
            from None
    try:
        with _quiet(), torch.no_grad():
            gm = TS2EPConverter(model, (sample,)).convert().module()
            other = torch.cat([sample, sample[:1]])  # another batch size: the graph must not be fixed to one
            same = all(torch.allclose(gm(x), model(x), rtol=1e-4, atol=1e-4) for x in (sample, other))
    except Exception as e:  # noqa: BLE001 - whatever the converter cannot handle: one line
        raise UserError(f"cannot look inside this TorchScript teacher: torch's converter failed "
                      f"({type(e).__name__}: {first_line(e)}); {fix}") from None
    if not same:
        raise UserError("cannot look inside this TorchScript teacher: its converted graph computes other logits; "
                        f"{fix}")
    for p in gm.parameters():
        p.requires_grad_(False)
    return gm
