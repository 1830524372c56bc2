"""``meshagent server``: set up and run the web service.

    meshagent server init     --dir DIR [--name HOST]... [--admin-password PW] [--force]
    meshagent server add-mesh --dir DIR TRUST_FILE [--name NAME] [--console-cert FILE]
    meshagent server run      --dir DIR [--db URL] [--listen HOST:PORT]
    meshagent server show     --dir DIR

``init`` makes the TLS certificate (prints the SHA-256 pin agents and ``meshctl`` need),
the console operator key (prints its public key for ``meshctl keys`` to authorise), and
the admin password (printed once, stored hashed). ``--db`` is ``sqlite:///path`` (default
``sqlite:///DIR/service.db``) or ``postgresql://user:pw@host:port/dbname``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path

from meshagent.commands import OperatorCertificate
from meshagent.errors import ConfigError
from meshagent.identity import MeshTrust
from meshagent.server.settings import CONSOLE_KEY_FILE, ServerDirectory

HELP = "set up and run the web service (HTTPS, leaders' uplinks, REST API, console page)"

DEFAULT_PORT = 8443


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = actions.add_parser("init", help="make the service directory")
    init.add_argument("--dir", type=Path, required=True)
    init.add_argument("--name", action="append", default=None,
                      help="DNS name or IP address for the certificate (repeatable; "
                           "default localhost and 127.0.0.1)")
    init.add_argument("--admin-password", default=os.environ.get("MESHAGENT_ADMIN_PASSWORD"),
                      help="console password (env MESHAGENT_ADMIN_PASSWORD; default: generated)")
    init.add_argument("--force", action="store_true", help="replace an existing directory")

    add = actions.add_parser("add-mesh", help="serve a mesh (its trust file)")
    add.add_argument("--dir", type=Path, required=True)
    add.add_argument("trust", type=Path, help="the mesh's trust file (mesh.trust)")
    add.add_argument("--name", help="display name (default: the mesh id)")
    add.add_argument("--console-cert", type=Path,
                     help="operator certificate the mesh root issued for the console key")

    run = actions.add_parser("run", help="run the service")
    run.add_argument("--dir", type=Path, required=True)
    run.add_argument("--db", help="database URL (default sqlite:///DIR/service.db)")
    run.add_argument("--listen", default=f"0.0.0.0:{DEFAULT_PORT}", help="HOST:PORT")

    show = actions.add_parser("show", help="print the pin, console key and meshes")
    show.add_argument("--dir", type=Path, required=True)
    show.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    return {"init": _init, "add-mesh": _add_mesh, "run": _run, "show": _show}[args.action](args)


def _init(args: argparse.Namespace) -> int:
    names = args.name or ["localhost", "127.0.0.1"]
    directory, password = ServerDirectory.init(args.dir, names, args.admin_password,
                                               args.force)
    print(f"service directory: {args.dir}")
    print(f"certificate pin (SHA-256): {directory.cert_pin.hex()}")
    print(f"console operator public key: {directory.console_key().public.hex()} "
          f"({args.dir / CONSOLE_KEY_FILE}.pub)")
    if not args.admin_password:
        print(f"admin password (shown once): {password}")
    return 0


def _add_mesh(args: argparse.Namespace) -> int:
    directory = ServerDirectory.load(args.dir)
    trust = MeshTrust.load(args.trust)
    cert = None
    if args.console_cert:
        cert = OperatorCertificate.load(args.console_cert).to_wire()
    directory.add_mesh(trust, args.name or trust.mesh_id.hex()[:12], cert)
    print(f"serving mesh {trust.mesh_id.hex()}" + (" (console may sign)" if cert else ""))
    return 0


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--listen: expected HOST:PORT, got {text!r}")
    return host or "0.0.0.0", int(port)


def _run(args: argparse.Namespace) -> int:
    from meshagent.server.app import WebService

    host, port = _listen(args.listen)
    db_url = args.db or f"sqlite://{args.dir.resolve()}/service.db"
    service = WebService.from_directory(args.dir, db_url, host, port)
    print(f"web service on https://{host}:{port}/ (pin {service.cert_sha256.hex()})", flush=True)
    try:
        asyncio.run(service.run_forever())
    except KeyboardInterrupt:
        pass
    return 0


def _show(args: argparse.Namespace) -> int:
    directory = ServerDirectory.load(args.dir)
    info = {"pin": directory.cert_pin.hex(),
            "console_operator": directory.console_key().public.hex(),
            "meshes": [{"mesh": m["mesh"], "name": m["name"],
                        "console_can_sign": bool(m.get("console_cert"))}
                       for m in directory.meshes]}
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        print(f"pin: {info['pin']}\nconsole operator: {info['console_operator']}")
        for mesh in info["meshes"]:
            print(f"mesh {mesh['mesh']} {mesh['name']}"
                  + (" (console may sign)" if mesh["console_can_sign"] else ""))
    return 0
