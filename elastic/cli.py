"""`python -m elastic COMMAND ...`: a thin command line over the package.

The commands live in elastic.commands; this module builds the parser from
them and runs one. User errors (ElasticError) print one line and exit 2.
"""
from __future__ import annotations

import sys
from typing import Callable

from elastic.argtypes import OneLineParser
from elastic.commands import COMMANDS as _COMMANDS
from elastic.commands.sweep import add_sweep, run_sweep
from elastic.errors import ElasticError


def _run_sweep(args) -> None:
    run_sweep(args, main)       # one-worker jobs run in this process, through main


COMMANDS: dict[str, tuple[Callable, Callable, str]] = {
    **_COMMANDS, "sweep": (add_sweep, _run_sweep, "run a grid of configurations, resumably")}


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m elastic", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name, (add, _, help_text) in COMMANDS.items():
        add(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    from elastic.results import code_commit
    code_commit()            # the commit of the code this process runs, whatever the checkout does later
    try:
        COMMANDS[args.command][1](args)
    except ElasticError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished rows and checkpoints are kept", file=sys.stderr)
        return 130
    return 0
