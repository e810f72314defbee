"""`python -m funade` is the `funade` command."""

from funade.entry import run

run()
