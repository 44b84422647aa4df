"""Models: the architecture registry, loading teachers in any accepted format, numeric precision."""
