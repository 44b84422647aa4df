"""Synthesis against the teacher: the boundary attack and BatchNorm refinement, offline and as batch hooks."""
