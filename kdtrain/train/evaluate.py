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


class HoldoutEvaluator:
    """Teacher-student agreement and KL(teacher || student) at T=1 on the held-out surrogate samples
    (uint8, prepared as training prepares them before augmentation); the teacher's logits are computed once."""

    def __init__(self, images: torch.Tensor, spec: InputSpec, device: torch.device, batch_size: int = 256,
                 match_stats: bool = False, amp_dtype: torch.dtype | None = None, channels_last: bool = False):
        from kdtrain.data.augment import match_stats as rescale

        self.batches = []
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].float().div_(255)
            self.batches.append(rescale(x, spec.mean, spec.std) if match_stats else x)
        self.device, self.amp_dtype, self.channels_last = device, amp_dtype, channels_last
        self.mean = torch.tensor(spec.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(spec.std, device=device).view(1, -1, 1, 1)
        self.teacher_logits: list[torch.Tensor] | None = None

    def __len__(self) -> int:
        return sum(len(x) for x in self.batches)

    @torch.no_grad()
    def __call__(self, student: torch.nn.Module, teacher: Teacher) -> dict:
        import torch.nn.functional as F

        first = self.teacher_logits is None
        logits = [] if first else self.teacher_logits
        n = agree = 0
        kl = 0.0
        for i, x in enumerate(self.batches):
            x = x.to(self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with precision.autocast(self.device, self.amp_dtype):
                if first:
                    logits.append(teacher(x).float())
                s = student((x - self.mean) / self.std).float()
            t = logits[i]
            n += len(x)
            agree += int((s.argmax(1) == t.argmax(1)).sum())
            kl += float(F.kl_div(F.log_softmax(s, 1), F.log_softmax(t, 1), reduction="sum", log_target=True))
        self.teacher_logits = logits
        return {"holdout_agreement": agree / max(1, n), "holdout_kl": kl / max(1, n), "holdout_samples": n}
