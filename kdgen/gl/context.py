"""Open a headless OpenGL context through EGL, or fail with one line that names the fix."""

from __future__ import annotations

import logging

from kdgen.errors import UserError

log = logging.getLogger(__name__)

MISSING = ("cannot open a headless OpenGL context through EGL ({why}); install the system packages "
           "libegl1 libegl-mesa0 libgl1-mesa-dri (Debian/Ubuntu) or an NVIDIA driver with EGL")


def create_context():
    """A standalone moderngl context (GL 3.3 or newer). Call it in the process that renders, never
    before forking: a forked GL context hangs."""
    try:
        import moderngl
    except ImportError as err:
        raise UserError(f"the Python package moderngl is missing ({err}); pip install moderngl") from None
    try:
        ctx = moderngl.create_standalone_context(backend="egl", require=330)
    except Exception as err:  # glcontext raises plain Exceptions with the loader's message
        why = " ".join(str(err).split()) or type(err).__name__
        raise UserError(MISSING.format(why=why)) from None
    log.info("GL context: %s, %s", ctx.info.get("GL_RENDERER"), ctx.info.get("GL_VERSION"))
    return ctx
