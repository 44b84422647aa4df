"""Shared CLI plumbing for kdgen and kdtrain: one-line errors, sizes, launcher-provided ranks."""

from __future__ import annotations

import os
import shlex
import sys

import click

from kdgen.contract import readable_name
from kdgen.errors import UserError


class OneLineErrorGroup(click.Group):
    """A click group whose bad-input errors print as one line (`error: ...`) with exit status 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as err:
            click.echo(err.ctx.get_help())
            sys.exit(0)
        except click.ClickException as err:
            msg = err.format_message()
            if msg.startswith("Got unexpected extra argument") and ".tar" in msg:  # the shell expanded a glob
                msg += "; quote shard patterns so the shell passes them as typed, e.g. --shards 'data/x-*.tar'"
            click.echo(f"error: {msg}", err=True)
            sys.exit(2)
        except UserError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("interrupted: complete work is kept; rerun the same command to resume", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


class SizeType(click.ParamType):
    """`32` -> (32, 32); `64x48` -> (64, 48) as (width, height). Range is checked by the caller."""

    name = "SIZE"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        text = str(value).lower()
        parts = text.split("x")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            self.fail(f"{value!r} is not a size; use N or WxH, e.g. 32 or 64x48", param, ctx)
        if len(nums) == 1:
            return (nums[0], nums[0])
        if len(nums) == 2:
            return (nums[0], nums[1])
        self.fail(f"{value!r} is not a size; use N or WxH, e.g. 32 or 64x48", param, ctx)


def torchrun_rank() -> tuple[int, int, int]:
    """(rank, local rank, world size) that torchrun sets (RANK, LOCAL_RANK, WORLD_SIZE), else (0, 0, 1):
    the one place that reads them."""
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)), int(env.get("WORLD_SIZE", 1))


def launcher_rank() -> tuple[int, int]:
    """(rank, world size) from torchrun (RANK/WORLD_SIZE) or a Slurm array, else (0, 1)."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        rank, _, world = torchrun_rank()
        return rank, world
    if "SLURM_ARRAY_TASK_ID" in os.environ and "SLURM_ARRAY_TASK_COUNT" in os.environ:
        first = int(os.environ.get("SLURM_ARRAY_TASK_MIN", 0))
        return int(os.environ["SLURM_ARRAY_TASK_ID"]) - first, int(os.environ["SLURM_ARRAY_TASK_COUNT"])
    return 0, 1


def command_line() -> str:
    """The command as typed, for manifests and run configs (`python -m kdtrain` and torchrun name the package)."""
    prog = os.path.basename(sys.argv[0])
    if prog == "__main__.py":
        prog = os.path.basename(os.path.dirname(os.path.abspath(sys.argv[0])))
    return " ".join([prog] + [shlex.quote(readable_name(a)) for a in sys.argv[1:]])
