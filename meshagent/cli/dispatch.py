"""Builds an argparse program from the verb modules of one front end.

Verb modules are listed explicitly in ``VERBS`` by their front end (``main.py``,
``meshctl.py``) so that a frozen executable, which cannot scan its package directory,
carries them all.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from meshagent import __version__
from meshagent.errors import MeshError


def build_parser(prog: str, description: str, modules: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"{prog} {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv for debug)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in modules:
        module = importlib.import_module(name)
        verb = name.rsplit(".", 1)[1].split("_", 1)[1].replace("_", "-")
        sub = verbs.add_parser(verb, help=module.HELP, description=module.HELP)
        module.configure(sub)
        sub.set_defaults(run=module.run)
    return parser


def run_program(prog: str, description: str, modules: Sequence[str],
                argv: Sequence[str] | None = None) -> int:
    parser = build_parser(prog, description, modules)
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(message)s")
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except MeshError as exc:
        print(f"{prog}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
