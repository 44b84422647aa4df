"""Whole workflows composed of the other sub-packages' stages (`kdtrain student`: teacher -> deployable student)."""
