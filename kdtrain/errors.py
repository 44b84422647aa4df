"""kdtrain's user error: kdgen's `UserError` under the same name (the CLI prints `error: <message>` and
exits with status 2, no traceback), also a `ValueError` for library callers that catch bad values."""

from __future__ import annotations

from kdgen import errors


class UserError(errors.UserError, ValueError):
    """Bad input (missing file, mismatched classes, ...); a ValueError for library callers."""


def first_line(e: BaseException) -> str:
    """The first non-blank line of an exception's message, for a one-line error about a foreign failure."""
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else "no details")[:200]
