"""The one user-error type of both packages: library code raises it, only the CLI layer (kdgen.clitools)
turns it into one line and exit status 2."""


class UserError(Exception):
    """A problem the user can fix; its message names the problem and the fix."""


def worker_message(err: UserError) -> str:
    """The user's message of an error re-raised from a DataLoader worker: torch re-raises the same class
    with the worker's whole traceback as its message, whose last line is `module.Class: message`."""
    last = str(err).strip().splitlines()[-1] if str(err).strip() else ""
    prefix = f"{type(err).__module__}.{type(err).__qualname__}: "
    return last[len(prefix):] if last.startswith(prefix) else str(err)
