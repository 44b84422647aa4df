"""One exception for bad input: the CLI prints `error: <message>` and exits with status 2, no traceback."""

from __future__ import annotations

import click


class KDError(click.ClickException, ValueError):
    """Bad input (missing file, mismatched classes, ...). A ValueError for library callers, a clean
    one-line error for the CLI (click shows it via `show()` and exits with `exit_code`)."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=True)
