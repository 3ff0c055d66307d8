"""What the three commands (stvsr-export, stvsr-run, stvsr-bench) share on the command line."""
from __future__ import annotations

import click

from stvsr import __version__


def version_option(prog: str):
    """``--version``: print ``PROG <version>`` and exit."""
    return click.version_option(__version__, "--version", prog_name=prog, message="%(prog)s %(version)s")
