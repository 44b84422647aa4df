"""`kdtrain student`: one command from a teacher file to a deployable student (kdtrain.pipeline.student)."""

from __future__ import annotations

import click

from kdgen.clitools import command_line
from kdgen.settings import dataclass_options


def student_cmd(**kw):
    """From a teacher file to a deployable student: surrogate images (a pool and the teacher-guided selection
    from it), refinement, distillation with the online attack, export (OUT/student/student.pt2). Run the same
    command again to continue an interrupted run."""
    from kdtrain.pipeline.student import StudentConfig, make_student

    make_student(StudentConfig(**kw), command=command_line(), echo=click.echo)


def register(group) -> None:
    """Add `student` to the `kdtrain` click group."""
    from kdtrain.pipeline.student import StudentConfig

    group.command("student", help=student_cmd.__doc__)(dataclass_options(StudentConfig)(student_cmd))
