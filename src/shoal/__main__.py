"""`python -m shoal` is the `shoal` command."""

from shoal.main import cli

cli()
