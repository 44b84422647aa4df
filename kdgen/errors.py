"""The one exception kdgen raises for bad input or an unusable environment (printed as one line, exit 2)."""


class KdgenError(Exception):
    """A problem the user can fix; its message names the problem and the fix."""
