"""Evaluation on real labelled test data: student top-1, teacher top-1 and teacher-student agreement."""

from __future__ import annotations

import torch

from kdtrain.data.datasets import LabelledSet
from kdtrain.data.spec import InputSpec
from kdtrain.data.stream import labelled_batches
from kdtrain.models import precision
from kdtrain.models.teachers import Teacher


class Evaluator:
    """Holds the test batches (uint8, adapted to the spec once) and the teacher's predictions (computed
    once: the teacher does not change)."""

    def __init__(self, data: LabelledSet, spec: InputSpec, device: torch.device, batch_size: int = 256,
                 limit: int | None = None, amp_dtype: torch.dtype | None = None, channels_last: bool = False):
        self.batches = list(labelled_batches(data.dataset, spec, batch_size, limit))
        self.device, self.amp_dtype, self.channels_last = device, amp_dtype, channels_last
        self.mean = torch.tensor(spec.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(spec.std, device=device).view(1, -1, 1, 1)
        self.teacher_pred: list[torch.Tensor] | None = None

    def _autocast(self):
        return precision.autocast(self.device, self.amp_dtype)

    @torch.no_grad()
    def __call__(self, student: torch.nn.Module, teacher: Teacher | None = None) -> dict:
        n = s_ok = t_ok = agree = 0
        preds = []
        for i, (x, y) in enumerate(self.batches):
            x, y = x.to(self.device).float().div_(255), y.to(self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                s = student((x - self.mean) / self.std).argmax(1)
                t = None
                if teacher is not None:
                    t = self.teacher_pred[i] if self.teacher_pred is not None else teacher(x).argmax(1)
                    preds.append(t)
            n += len(y)
            s_ok += int((s == y).sum())
            if t is not None:
                t_ok += int((t == y).sum())
                agree += int((t == s).sum())
        if teacher is not None:
            self.teacher_pred = preds
        has_t = teacher is not None
        return {"student_top1": s_ok / max(1, n), "teacher_top1": t_ok / max(1, n) if has_t else None,
                "agreement": agree / max(1, n) if has_t else None, "eval_samples": n}
