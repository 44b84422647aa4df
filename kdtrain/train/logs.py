"""Run logs: a tqdm progress bar, metrics.csv, TensorBoard events, config.yaml and summary.json.

Only the process that owns the run folder (rank 0) logs; the others get a silent RunLog.
"""

from __future__ import annotations

import csv
from pathlib import Path

import yaml
from tqdm import tqdm

from kdgen import contract

CSV_FIELDS = ["kind", "step", "epoch", "loss", "kd_loss", "ce_loss", "lr", "samples_per_s", "student_top1",
              "teacher_top1", "agreement", "skipped", "wall_s", "holdout_agreement", "holdout_kl"]


class RunLog:
    def __init__(self, out: Path | None, total_steps: int, start_step: int, tensorboard: bool = True,
                 progress: bool = True):
        self.out = out
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                        disable=out is None or not progress, smoothing=0.1)
        self.tb = None
        if out is None:
            return
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tb"), purge_step=start_step or None)
        self.csv_path = out / "metrics.csv"
        _truncate_csv(self.csv_path, start_step)  # a resumed run drops rows the killed run logged after its checkpoint
        new = not self.csv_path.exists()
        self.csv_file = open(self.csv_path, "a", newline="")
        self.csv = csv.DictWriter(self.csv_file, CSV_FIELDS, extrasaction="ignore")
        if new:
            self.csv.writeheader()

    def progress(self, steps: int, postfix: dict) -> None:
        self.bar.update(steps)
        self.bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in postfix.items()},
                             refresh=False)

    def row(self, kind: str, step: int, **values) -> None:
        if self.out is None:
            return
        self.csv.writerow({"kind": kind, "step": step, **{k: _fmt(v) for k, v in values.items()}})
        self.csv_file.flush()
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and k not in ("epoch",) and v is not None:
                    self.tb.add_scalar(f"{kind}/{k}", v, step)

    def message(self, text: str) -> None:
        if self.out is not None:
            self.bar.write(text)

    def close(self) -> None:
        self.bar.close()
        if self.out is None:
            return
        self.csv_file.close()
        if self.tb is not None:
            self.tb.close()


def _fmt(v):
    return f"{v:.6g}" if isinstance(v, float) else v


def _truncate_csv(path: Path, start_step: int) -> None:
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    keep = [r for r in rows if int(r["step"]) <= start_step]
    if len(keep) != len(rows):
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore")
            w.writeheader()
            w.writerows(keep)


def write_json(path: Path, obj: dict) -> None:
    contract.write_json(path, obj, indent=1)


def write_yaml(path: Path, obj: dict) -> None:
    contract.atomic_write(path, lambda tmp: tmp.write_text(yaml.safe_dump(obj, sort_keys=False)))
