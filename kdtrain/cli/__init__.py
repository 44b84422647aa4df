"""The `kdtrain` command line: thin click shells over the library's plain functions."""
