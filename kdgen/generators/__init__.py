"""Built-in generators; importing this package registers each one."""

from . import images, leaves, noise, photos, shaders  # noqa: F401
