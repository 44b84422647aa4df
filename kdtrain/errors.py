"""kdtrain's name for the one user-error type (kdgen.errors.UserError): the CLI prints `error: <message>`
and exits with status 2, no traceback."""

from __future__ import annotations

from kdgen.errors import UserError


class KDError(UserError, ValueError):
    """Bad input (missing file, mismatched classes, ...); a ValueError for library callers."""
