"""A teacher the project did not make: a user's own nn.Module, trained with plain torch, shipped as
files a user would have (docs/RESULTS.md, "Teachers the project did not train").

    python bench/custom_teacher.py --data fashion-mnist --epochs 3 --out runs/custom/fmnist

writes the same trained network three ways, each in a folder of its own (kdtrain reads a model's
sidecar JSON from the model file's stem, teacher.json):
  pt2/teacher.pt2  torch.export program with a dynamic batch, and pt2/teacher.json (input spec, classes)
  ts/teacher.ts    TorchScript (torch.jit.script), and ts/teacher.json
  pt/teacher.pt    a kdtrain checkpoint whose arch is this file's factory: load it with
                   --teacher-arch bench/custom_teacher.py:make (kdtrain never imports code a file names)
and prints its test top-1. `make` is the factory `--teacher-arch bench/custom_teacher.py:make` calls.
The network is deliberately unlike kdtrain's registry: VGG-like blocks with two convolutions each,
BatchNorm after every convolution, a max-pool, dropout before the head.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.a = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(cout)
        self.b = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn_b = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = F.relu(self.bn_a(self.a(x)))
        return F.max_pool2d(F.relu(self.bn_b(self.b(x))), 2)


class PairNet(nn.Module):
    """Three blocks of two 3x3 convolutions (16, 32, 64 channels), global average pool, dropout, linear."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.blocks = nn.Sequential(Block(in_channels, 16), Block(16, 32), Block(32, 64))
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.blocks(x).mean(dim=(2, 3))
        return self.head(self.drop(x))


def make(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    return PairNet(num_classes, in_channels)


def train(data: str, epochs: int, seed: int) -> tuple[nn.Module, object, float]:
    """Plain torch: SGD with momentum, cosine schedule, random 2-pixel shifts; no kdtrain training code."""
    from kdtrain.data.datasets import load_labelled

    torch.manual_seed(seed)
    tr, te = load_labelled(data, True), load_labelled(data, False)
    spec = tr.spec
    mean, std = torch.tensor(spec.mean).view(1, -1, 1, 1), torch.tensor(spec.std).view(1, -1, 1, 1)

    def tensors(ds):
        xs, ys = zip(*(ds[i] for i in range(len(ds))))
        return torch.stack(xs).float().div(255), torch.tensor(ys)

    x, y = tensors(tr.dataset)
    xt, yt = tensors(te.dataset)
    print(f"{data}: {len(x):,} training and {len(xt):,} test images", flush=True)
    model = make(tr.num_classes, spec.channels)
    batch = 128
    steps = epochs * (len(x) // batch)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    start, step = time.time(), 0
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(len(x) // batch):
            idx = order[i * batch:(i + 1) * batch]
            xb = F.pad(x[idx], (2, 2, 2, 2))
            dx, dy = torch.randint(0, 5, (2,), generator=g).tolist()
            xb = xb[..., dy:dy + spec.height, dx:dx + spec.width]
            loss = F.cross_entropy(model((xb - mean) / std), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        print(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, {step / (time.time() - start):.1f} steps/s",
              flush=True)
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model((xt[i:i + 512] - mean) / std).argmax(1) for i in range(0, len(xt), 512)])
    return model, tr, float((pred == yt).float().mean())


def write_formats(model: nn.Module, labelled, out: Path) -> None:
    """The trained network as .pt2, TorchScript and a kdtrain checkpoint, each in a folder of its own
    (a sidecar JSON is named after its file's stem)."""
    from kdtrain.models.teachers import model_checkpoint, save_model

    side = {"spec": labelled.spec.to_dict(), "class_names": labelled.class_names}
    x = torch.zeros(2, labelled.spec.channels, labelled.spec.height, labelled.spec.width)
    for fmt in ("pt2", "ts", "pt"):
        (out / fmt).mkdir(parents=True, exist_ok=True)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, out / "pt2" / "teacher.pt2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice
        torch.jit.script(model).save(str(out / "ts" / "teacher.ts"))
    for fmt in ("pt2", "ts"):
        (out / fmt / "teacher.json").write_text(json.dumps(side))
    save_model(out / "pt" / "teacher.pt", model_checkpoint(model, "bench/custom_teacher.py:make", labelled.spec,
                                                           labelled.num_classes, labelled.class_names))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fashion-mnist", help="kdtrain's --data name (fashion-mnist, digits, ...)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, labelled, top1 = train(args.data, args.epochs, args.seed)
    out = Path(args.out)
    write_formats(model, labelled, out)
    (out / "teacher_top1.json").write_text(json.dumps({"data": args.data, "epochs": args.epochs, "top1": top1}))
    print(f"teacher test top-1 {100 * top1:.1f}%; files in {out}/pt2, {out}/ts, {out}/pt")


if __name__ == "__main__":
    main()
