"""`python -m kdgen`: the kdgen command where only a Python (no installed script) is at hand."""

from kdgen.cli import main

main()
