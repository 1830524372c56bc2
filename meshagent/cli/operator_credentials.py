"""The operator's key and certificate for the console verbs that sign commands.

``add_operator_options`` declares ``--key`` and ``--cert`` (defaults from the environment,
``MESHCTL_KEY`` and ``MESHCTL_CERT``); ``load_operator`` reads both, or raises ConfigError
when either is missing. The key stays on this machine: commands are signed here.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from meshagent.commands import OperatorCertificate, OperatorKey
from meshagent.errors import ConfigError

__all__ = ["add_operator_options", "load_operator"]


def add_operator_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", type=Path, default=os.environ.get("MESHCTL_KEY"),
                        help="operator private key file (env MESHCTL_KEY)")
    parser.add_argument("--cert", type=Path, default=os.environ.get("MESHCTL_CERT"),
                        help="operator certificate signed by the mesh root (env MESHCTL_CERT)")


def load_operator(args: argparse.Namespace) -> tuple[OperatorKey, OperatorCertificate]:
    if args.key is None or args.cert is None:
        raise ConfigError("signing needs the operator's --key and --cert "
                          "(env MESHCTL_KEY, MESHCTL_CERT)")
    return OperatorKey.load(args.key), OperatorCertificate.load(args.cert)
