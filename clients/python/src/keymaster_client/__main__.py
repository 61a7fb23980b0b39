"""`python -m keymaster_client`: the `keymaster` command."""

from keymaster_client.cli import run

run()
