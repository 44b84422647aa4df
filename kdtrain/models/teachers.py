"""Teachers: load a frozen classifier from any of the formats we accept, with the input spec it expects.

Accepted files: our checkpoint (dict with arch, state_dict, num_classes, class_names, spec), a
torch.export program (.pt2), a TorchScript archive, or a bare state_dict plus an architecture name.
For the last three the spec (and optionally class names) comes from arguments or from a JSON file
beside the model (`teacher.pt2` -> `teacher.json`).
"""

from __future__ import annotations

import functools
import io
import json
import os
import pickle
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from kdtrain.data.spec import InputSpec, adapt
from kdtrain.errors import UserError, first_line
from kdtrain.models.custom import build_model, is_code
from kdtrain.models.internals import Internals, internals_of
from kdtrain.models.precision import autocast
from kdtrain.models.registry import create_model


class Teacher:
    """A frozen classifier in eval mode that takes [0,1] images at its spec and returns logits."""

    def __init__(self, model: nn.Module, spec: InputSpec, num_classes: int, class_names: list[str] | None = None,
                 arch: str | None = None, data: str | None = None):
        try:
            model.eval()
        except NotImplementedError:  # an exported program: its mode was fixed when it was exported
            pass
        self.model = model
        for p in model.parameters():
            p.requires_grad_(False)
        self.spec = spec
        self.num_classes = int(num_classes)
        self.class_names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        self.arch, self.data = arch, data  # data: what it was trained on (kdtrain checkpoints), for --eval
        self._mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
        self._std = torch.tensor(spec.std).view(1, -1, 1, 1)
        self.amp_dtype: torch.dtype | None = None  # autocast dtype of every forward (kdtrain.models.precision)
        self._internals: Internals | None = None

    @property
    def device(self) -> torch.device:
        return self._mean.device

    def to(self, device) -> Teacher:
        self.model.to(device)
        self._mean, self._std = self._mean.to(device), self._std.to(device)
        return self

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        return (x01 - self._mean.to(x01.dtype)) / self._std.to(x01.dtype)

    def set_precision(self, dtype: torch.dtype | None) -> Teacher:
        """Run every forward (and the attack's input gradients) under autocast to `dtype`; None: float32."""
        self.amp_dtype = dtype
        return self

    def __call__(self, x01: torch.Tensor) -> torch.Tensor:
        """Logits, in the autocast dtype if one is set: callers take them to float32 before softmax or loss."""
        with autocast(self.device, self.amp_dtype):
            return self.model(self.normalize(x01))

    def adapt(self, x01: torch.Tensor) -> torch.Tensor:
        return adapt(x01, self.spec)

    def internals(self) -> Internals:
        """What refine and score read inside the teacher, whatever its format (kdtrain.models.internals).
        A TorchScript teacher runs as its converted graph from then on (checked to give the same logits)."""
        if self._internals is None:
            sample = torch.rand(2, self.spec.channels, self.spec.height, self.spec.width,
                                generator=torch.Generator().manual_seed(0)).to(self.device)
            self._internals = internals_of(self.model, self.normalize(sample))
            if isinstance(self.model, torch.jit.ScriptModule):
                self.model = self._internals.model
        return self._internals

    def features(self, x01: torch.Tensor) -> torch.Tensor:
        """Pooled features (N, D): the input of the model's classifier head (its last linear layer or op)."""
        return self.logits_and_features(x01)[1]

    def logits_and_features(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits (as __call__ gives them) and the pooled features, from one forward."""
        head = self.internals().head
        if head is None:
            raise UserError(f"teacher features need a model with a linear classifier head, but "
                          f"{self.internals().no_head}")
        captured = []
        handle = head.register_forward_hook(lambda _m, inp, _out: captured.append(inp[0]))
        try:
            logits = self(x01)
        finally:
            handle.remove()
        return logits, torch.flatten(captured[-1], 1).float()


def model_checkpoint(model: nn.Module, arch: str, spec: InputSpec, num_classes: int, class_names: list[str],
                     **extra) -> dict:
    """The dict saved as teacher.pt / student.pt: everything needed to use the model again."""
    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    return dict(format="kdtrain-model-v1", arch=arch, state_dict=state, num_classes=int(num_classes),
                class_names=list(class_names), spec=spec.to_dict(), **extra)


def _unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile
    return getattr(model, "module", model)  # DDP


def save_model(path: str | os.PathLike, ckpt: dict) -> None:
    """Write atomically: a kill mid-write leaves the previous file (or none), never a truncated one."""
    from kdgen.contract import atomic_write

    atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


def load_teacher(path: str | os.PathLike, device: str | torch.device = "cpu", arch: str | None = None,
                 spec: InputSpec | str | dict | None = None, num_classes: int | None = None,
                 class_names: list[str] | None = None) -> Teacher:
    """Load a frozen teacher from any accepted format (see the module docstring).

    `arch` comes from the caller (--teacher-arch) and may name user code (kdtrain.models.custom); an
    architecture read from a file (the sidecar, a checkpoint) may only name a registered model."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"teacher file not found: {path}")
    side = _sidecar(path)
    spec = _as_spec(spec if spec is not None else side.get("spec", side if "channels" in side else None))
    class_names = class_names or side.get("class_names")
    num_classes = num_classes or side.get("num_classes") or (len(class_names) if class_names else None)
    kind = _sniff(path)
    try:
        if kind == "export":
            check_export_archive(path)
            with _tensors_only():
                program = torch.export.load(str(path))
            _check_dynamic_batch(program, path)
            model = program.module()
        elif kind == "torchscript":
            with warnings.catch_warnings():  # torch's deprecation notice is not ours to print
                warnings.filterwarnings("ignore", message=".*torch.jit.load.* is deprecated", category=FutureWarning)
                model = torch.jit.load(str(path), map_location="cpu")
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except UserError:
        raise
    except pickle.UnpicklingError as e:  # said without torch's advice to turn weights_only off
        if "global" in str(e).lower():
            raise UserError(f"{path} holds Python objects besides tensors, which kdtrain never unpickles; "
                          f"{ACCEPTED}") from None
        raise UserError(f"cannot read teacher {path}: not a readable torch.save file (corrupt or another format); "
                      f"{ACCEPTED}") from None
    except Exception as e:  # corrupt/unreadable: one line, not a traceback
        raise UserError(f"cannot read teacher {path} ({type(e).__name__}: {first_line(e)}); {ACCEPTED}") from None
    if kind == "pickle":
        if isinstance(obj, dict) and "state_dict" in obj and "arch" in obj and "spec" in obj:
            return _from_checkpoint(obj, path, device, arch)
        state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
        if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise UserError(f"{path} is neither a kdtrain checkpoint nor a state_dict; {ACCEPTED}")
        if spec is None:
            raise UserError(f"input spec of {path} unknown: pass --teacher-spec CxHxW[/mean/std] or write "
                          f"{path.with_suffix('.json').name} beside it")
        if not arch and not side.get("arch"):
            raise UserError(f"{path} is a bare state_dict: give the architecture (--teacher-arch or 'arch' in "
                          f"{path.with_suffix('.json').name})")
        num_classes = num_classes or _classes_from_state(state)
        model = build_model(arch, num_classes, spec.channels) if arch else \
            _file_arch(side["arch"], num_classes, spec.channels, path.with_suffix(".json"))
        _load_state(model, state, path)
    if spec is None:
        raise UserError(f"input spec of {path} unknown: pass --teacher-spec CxHxW[/mean/std] or write "
                      f"{path.with_suffix('.json').name} beside it")
    num_classes = _check_output(model, spec, path, num_classes, class_names)
    return Teacher(model, spec, num_classes, class_names, arch or side.get("arch")).to(device)


def _from_checkpoint(obj: dict, path: Path, device, arch: str | None = None) -> Teacher:
    """A kdtrain checkpoint; `arch` (--teacher-arch) builds the model when given, so that a checkpoint of a
    user's own architecture loads once the user names its code on the command line."""
    spec = _as_spec(obj["spec"])
    num_classes, names = _check_classes(obj.get("num_classes"), obj.get("class_names"), path)
    if num_classes is None:
        raise UserError(f"{path}: a kdtrain checkpoint without num_classes; re-save it with model_checkpoint()")
    if not isinstance(obj["state_dict"], dict):
        raise UserError(f"{path}: its state_dict is a {type(obj['state_dict']).__name__}, not a dict of tensors")
    model = build_model(arch, num_classes, spec.channels) if arch else \
        _file_arch(obj["arch"], num_classes, spec.channels, path)
    _load_state(model, obj["state_dict"], path)
    data = obj.get("data") if isinstance(obj.get("data"), str) else None
    return Teacher(model, spec, num_classes, names, arch or obj["arch"], data).to(device)


def _file_arch(arch, num_classes: int, channels: int, source: Path) -> nn.Module:
    """The model an architecture name read from a file names: a registered one, never code to import."""
    if not isinstance(arch, str):
        raise UserError(f"{source}: 'arch' must be a model name, got {type(arch).__name__}")
    if is_code(arch):
        raise UserError(f"{source} names the architecture {arch!r}, which is code to import; kdtrain imports code "
                      f"only when told on the command line: pass --teacher-arch {arch}")
    return create_model(arch, num_classes, channels)


def _check_output(model: nn.Module, spec: InputSpec, path: Path, num_classes, class_names) -> int:
    """Run a batch of 2 images at the spec: the model must give 2 x classes logits, as many as its class
    names (and its stated class count). Returns the class count."""
    x = torch.zeros(2, spec.channels, spec.height, spec.width)
    shape = f"{spec.channels}x{spec.height}x{spec.width}"
    try:
        model.eval()  # a train-mode forward would move BatchNorm statistics
    except NotImplementedError:  # an exported program: its mode was fixed when it was exported
        pass
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as e:  # noqa: BLE001 - a model that cannot take its own spec: one line
        raise UserError(f"teacher {path} fails on images of {shape} ({type(e).__name__}: {first_line(e)}); check its "
                      f"input spec (--teacher-spec or {path.with_suffix('.json').name})") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2:
        what = f"a tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"teacher {path} returns {what} for 2 images; a teacher must return N x classes logits "
                      f"(wrap it so that its forward returns the logits alone)")
    k = int(out.shape[1])
    if class_names and len(class_names) != k:
        raise UserError(f"teacher {path} returns {k} logits per image but has {len(class_names)} class names; "
                      f"give one name per logit in {path.with_suffix('.json').name}")
    if num_classes is not None and int(num_classes) != k:
        raise UserError(f"teacher {path} returns {k} logits per image but is said to have {num_classes} classes; "
                      f"fix num_classes in {path.with_suffix('.json').name}")
    return k


def _load_state(model: nn.Module, state: dict, path: Path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"weights in {path} do not fit the architecture: {str(e).splitlines()[0][:200]}") from None


def _classes_from_state(state: dict) -> int:
    """The classifier's output count: rows of the last 2-D weight in the state_dict."""
    mats = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
    if not mats:
        raise UserError("cannot infer the number of classes from the state_dict; give num_classes")
    return int(mats[-1].shape[0])


def _sniff(path: Path) -> str:
    """'export' (.pt2), 'torchscript' (zip with code/), or 'pickle' (torch.save). Anything else (a text
    file, random bytes) is refused here, before a loader sees it."""
    is_zip = zipfile.is_zipfile(path)
    if path.suffix == ".pt2":
        if not is_zip:
            raise UserError(f"cannot read teacher {path}: not a .pt2 archive (not a zip file); {ACCEPTED}")
        return "export"
    if is_zip:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if any("/code/" in n for n in names) or any(n.endswith("constants.pkl") for n in names):
            return "torchscript"
        return "pickle"
    with open(path, "rb") as f:
        head = f.read(2)
    if head[:1] != b"\x80":  # torch.save's legacy format is a pickle: protocol opcode first
        raise UserError(f"cannot read teacher {path}: not a model file (neither a zip archive nor a torch.save "
                      f"pickle); {ACCEPTED}")
    return "pickle"


ACCEPTED = ("accepted: a kdtrain checkpoint or a state_dict saved with torch.save (tensors only), a .pt2 from "
            "torch.export.save, or TorchScript from torch.jit.save")
# Members of a .pt2 archive that hold no code and no pickle (beside the sample inputs, checked apart).
_PT2_PLAIN = ("archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id")


def check_export_archive(path: Path) -> None:
    """Refuse a .pt2 archive that would make torch.export.load unpickle or run anything.

    torch.export.load unpickles (with weights_only=False) every weight or constant whose config says
    use_pickle, and legacy weight files; it unpickles custom and opaque objects; it loads compiled
    AOTInductor libraries; and it falls back to a full unpickle when the sample inputs fail a weights-only
    load. A plain export holds none of these: JSON configs, raw tensor bytes, the graph as JSON, and
    sample inputs that are tensors only. So the zip is read first, without loading anything."""
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if not n.endswith("/")]
        root = names[0].split("/", 1)[0] + "/" if names else ""

        def refuse(why: str):
            raise UserError(f"refusing teacher {path}: {why}; kdtrain loads .pt2 archives of plain tensors only "
                          f"(re-export it with torch.export.save from a model with tensor weights)")

        for name in names:
            rel = name[len(root):] if name.startswith(root) else None
            if rel is None:
                refuse(f"member {name} lies outside the archive's folder")
            if rel in _PT2_PLAIN or rel.startswith("extra/") or (rel.startswith("models/") and rel.endswith(".json")):
                continue
            if rel.startswith("data/sample_inputs/") and rel.endswith(".pt"):
                try:  # must load as tensors only, or torch would retry with a full unpickle
                    torch.load(io.BytesIO(z.read(name)), map_location="cpu", weights_only=True)
                except Exception:  # noqa: BLE001 - whatever the reason, torch's retry would unpickle it
                    refuse(f"its sample inputs {rel} are a pickle of more than tensors")
                continue
            if rel.startswith(("data/weights/", "data/constants/")):
                if rel.endswith(".pt"):
                    refuse(f"{rel} is a pickled (legacy) weight file")
                if rel.endswith(".json"):
                    _check_payload_config(rel, z.read(name), refuse)
                continue
            refuse(f"it holds {rel}, which is not part of a plain export (compiled code or an unknown format)")
        if not any(n[len(root):] == "archive_format" for n in names):
            refuse("it has no archive_format entry (an old or foreign format, read by a full unpickle)")


def _check_payload_config(rel: str, data: bytes, refuse) -> None:
    try:
        entries = json.loads(data)["config"]
        items = list(entries.items())
    except (ValueError, KeyError, TypeError, AttributeError):
        refuse(f"{rel} is not a weights/constants config")
    for fqn, meta in items:
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            refuse(f"{rel} asks to unpickle {fqn!r} (use_pickle), which can run code")
        if not str(meta.get("path_name", "")).startswith(("weight_", "tensor_")):
            refuse(f"{rel} stores {fqn!r} as {meta.get('path_name')!r}, an object rather than a tensor")


@contextmanager
def _tensors_only():
    """While torch.export.load runs, every torch.load it makes is weights-only: a second line of defence
    behind check_export_archive (torch retries failed weights-only loads with a full unpickle)."""
    plain = torch.load
    torch.load = functools.partial(_weights_only_load, plain)
    try:
        yield
    finally:
        torch.load = plain


def _weights_only_load(load, *args, **kwargs):
    kwargs["weights_only"] = True
    return load(*args, **kwargs)


def _check_dynamic_batch(program, path: Path) -> None:
    """An export traced with a fixed batch size fails on every other batch size (a guard assertion)."""
    inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        val = node.meta.get("val") if node.op == "placeholder" and node.name in inputs else None
        if isinstance(val, torch.Tensor) and val.ndim and isinstance(val.shape[0], int):
            dim = "{0: torch.export.Dim('batch')}"
            raise UserError(f"{path} was exported with a fixed batch size of {val.shape[0]}; export it with a dynamic "
                          f"batch: torch.export.export(model, (x,), dynamic_shapes=({dim},))")


# Limits on what a file may ask of us (documented in docs/FORMAT.md); sizes: kdtrain.data.spec.MAX_SIDE.
MAX_CLASSES = 100_000
MAX_SIDECAR_BYTES = 16 << 20


def _sidecar(path: Path) -> dict:
    """The JSON file beside a model (`teacher.pt2` -> `teacher.json`), checked: an object whose class
    count, class names and architecture name are sane (its spec is checked by InputSpec)."""
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}
    if side.stat().st_size > MAX_SIDECAR_BYTES:
        raise UserError(f"{side} is larger than {MAX_SIDECAR_BYTES >> 20} MiB; a teacher's JSON holds its spec, "
                      f"class names and architecture only")
    try:
        d = json.loads(side.read_text())
    except RecursionError:
        raise UserError(f"cannot read {side}: its JSON is nested too deeply") from None
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {side}: {first_line(e)}") from None
    if not isinstance(d, dict):
        raise UserError(f"{side} holds a JSON {type(d).__name__}; expected an object with \"spec\" (or \"channels\", "
                      f"\"size\", \"mean\", \"std\"), and optionally \"class_names\", \"num_classes\", \"arch\"")
    d["num_classes"], d["class_names"] = _check_classes(d.get("num_classes"), d.get("class_names"), side)
    return d


def _check_classes(num_classes, class_names, source: Path) -> tuple[int | None, list[str] | None]:
    """A class count (1 .. MAX_CLASSES) and one string name per class, as read from a file."""
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or not 1 <= num_classes <= MAX_CLASSES):
        raise UserError(f"{source}: num_classes must be a whole number from 1 to {MAX_CLASSES:,}, "
                      f"got {repr(num_classes)[:40]}")
    if class_names is not None:
        if not isinstance(class_names, list) or not all(isinstance(n, str) for n in class_names):
            raise UserError(f"{source}: class_names must be a list of strings")
        if not 1 <= len(class_names) <= MAX_CLASSES:
            raise UserError(f"{source} has {len(class_names):,} class names; give 1 to {MAX_CLASSES:,}")
        if num_classes is not None and len(class_names) != num_classes:
            raise UserError(f"{source} has {len(class_names)} class names for num_classes {num_classes}; "
                          f"give one name per class")
    if num_classes is None and class_names:
        num_classes = len(class_names)
    return num_classes, class_names


def _as_spec(spec) -> InputSpec | None:
    if spec is None or isinstance(spec, InputSpec):
        return spec
    if isinstance(spec, str):
        return InputSpec.parse(spec)
    return InputSpec.from_dict(spec)
