"""`python -m funade` is the `funade` command."""

from funade.cli import main

main()
