"""kdtrain's user error: kdgen's `UserError` under the same name (the CLI prints `error: <message>` and
exits with status 2, no traceback), also a `ValueError` for library callers that catch bad values."""

from __future__ import annotations

from kdgen import errors


class UserError(errors.UserError, ValueError):
    """Bad input (missing file, mismatched classes, ...); a ValueError for library callers."""
