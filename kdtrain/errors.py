"""kdtrain's name for the one user-error type (kdgen.errors.UserError): the CLI prints `error: <message>`
and exits with status 2, no traceback."""

from __future__ import annotations

from kdgen.errors import UserError


class KDError(UserError, ValueError):
    """Bad input (missing file, mismatched classes, ...); a ValueError for library callers."""


def first_line(e: BaseException) -> str:
    """The first non-blank line of an exception's message, for a one-line error about a foreign failure."""
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else "no details")[:200]
