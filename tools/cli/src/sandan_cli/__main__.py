"""`python -m sandan_cli`: the same as `sandan`."""

from sandan_cli.app import main

main()
