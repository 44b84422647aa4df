"""Built-in generators; importing this package registers each one."""

from . import images, leaves, noise, shaders  # noqa: F401
