"""``meshctl keys``: operator keys — create one, have the root authorise it, revoke, list.

    meshctl keys create NAME --out FILE              (FILE 0600, FILE.pub to hand over)
    meshctl keys sign --root DIR/root.key --key FILE.pub|HEX --scopes read,run:ping
                      --ttl 30d --out FILE.cert [--name NAME]
    meshctl keys revoke --root DIR/root.key (--key FILE.pub|HEX | --id HEX | --cert FILE)...
                      [--revocations FILE] [--push [--server URL --pin SHA256 --token T]]
    meshctl keys list CERT... [--trust FILE] [--revocations FILE] [--json]

The operator keeps the private key; the root's keeper signs the public half. Revocation
goes into the mesh's one revocation list (default: ``revocations`` next to the root key,
the file ``meshagent mesh revoke`` maintains), which agents adopt by version; ``--push``
uploads it to the web service, which hands it to the mesh's leader (``meshctl revocations``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# Operator ids have the form of node ids (see commands.operator).
from meshagent.cli.agent_mesh import parse_node_id
from meshagent.cli.api_client import add_server_options
from meshagent.cli.ctl_revocations import push_document
from meshagent.cli.tables import print_json, render, short_id
from meshagent.cli.times import parse_duration, utc_time
from meshagent.commands.operator import (
    OperatorCertificate,
    OperatorKey,
    authorise_operator,
    load_public_key,
    operator_id_of,
)
from meshagent.commands.rejections import CommandRejected
from meshagent.errors import ConfigError
from meshagent.identity import REVOCATIONS_FILE, MeshRoot, MeshTrust, RevocationList
from meshagent.trustdocs import REVOCATIONS

HELP = "operator keys: create, have the mesh root sign (authorise), revoke, list"


def parse_comma_list(text: str) -> list[str]:
    """Non-empty items of a comma-separated option ("read,run:ping")."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("at least one item")
    return items


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="make an operator key pair")
    create.add_argument("name", help="operator name (a person or a service)")
    create.add_argument("--out", required=True, type=Path,
                        help="private key file to write (0600); the public key goes to OUT.pub")
    create.set_defaults(action_run=_create)

    sign = actions.add_parser("sign", help="authorise an operator key with the mesh root")
    sign.add_argument("--root", required=True, type=Path, help="the mesh root key file")
    sign.add_argument("--key", required=True, help="operator public key: a .pub file or hex")
    sign.add_argument("--scopes", required=True, type=parse_comma_list,
                      help="comma-separated: *, read, script, power, tags, run:ACTION")
    sign.add_argument("--ttl", required=True, type=parse_duration,
                      help="validity (90s, 15m, 1h, 30d)")
    sign.add_argument("--name", help="operator name (default: the name in the .pub file)")
    sign.add_argument("--out", required=True, type=Path, help="certificate file to write")
    sign.set_defaults(action_run=_sign)

    revoke = actions.add_parser("revoke", help="withdraw operators before their expiry")
    revoke.add_argument("--root", required=True, type=Path, help="the mesh root key file")
    revoke.add_argument("--key", action="append", default=[],
                        help="operator public key (.pub file or hex); repeatable")
    revoke.add_argument("--id", action="append", default=[], type=parse_node_id,
                        help="operator id (32 hex digits); repeatable")
    revoke.add_argument("--cert", action="append", default=[], type=Path,
                        help="operator certificate file; repeatable")
    revoke.add_argument("--revocations", type=Path,
                        help=f"revocation list to extend (default: {REVOCATIONS_FILE} next "
                             "to the root key)")
    revoke.add_argument("--push", action="store_true",
                        help="also upload the new list to the web service (every agent gets "
                             "it through the mesh's leader)")
    add_server_options(revoke)
    revoke.set_defaults(action_run=_revoke)

    listing = actions.add_parser("list", help="show operator certificates")
    listing.add_argument("certs", nargs="+", type=Path, metavar="CERT")
    listing.add_argument("--trust", type=Path,
                         help="mesh trust file: check each certificate against the root")
    listing.add_argument("--revocations", type=Path, help="revocation list to check against")
    listing.add_argument("--json", action="store_true", help="one JSON array")
    listing.set_defaults(action_run=_list)


def run(args: argparse.Namespace) -> int:
    return int(args.action_run(args))


def _create(args: argparse.Namespace) -> int:
    if args.out.exists():
        raise ConfigError(f"{args.out} exists; not overwriting a key")
    key = OperatorKey.generate(args.name)
    key.save(args.out)
    print(f"operator {args.name}: id {key.operator_id.hex()}\n"
          f"private key {args.out} (keep it), public key {args.out}.pub (have the root sign it)")
    return 0


def _sign(args: argparse.Namespace) -> int:
    root = MeshRoot.load(args.root)
    public, name = load_public_key(args.key)
    name = args.name or name
    if not name:
        raise ConfigError("no operator name: give --name (a hex key carries none)")
    cert = authorise_operator(root, public, name, args.scopes, args.ttl)
    cert.save(args.out)
    print(f"authorised {name} ({cert.operator_id.hex()}) on mesh {root.mesh_id.hex()}: "
          f"scopes {','.join(cert.scopes)}, until {utc_time(cert.expires)}; written to {args.out}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    ids = list(args.id)
    ids += [operator_id_of(load_public_key(spec)[0]) for spec in args.key]
    ids += [OperatorCertificate.load(path).operator_id for path in args.cert]
    if not ids:
        raise ConfigError("nothing to revoke: give --key, --id and/or --cert")
    root = MeshRoot.load(args.root)
    path = args.revocations or args.root.parent / REVOCATIONS_FILE
    previous = RevocationList.load(path, root.trust) if path.exists() else None
    revocations = root.revoke(node_ids=ids, previous=previous)
    revocations.save(path)
    print(f"revocation list version {revocations.version}: revoked "
          f"{', '.join(i.hex() for i in ids)}; written to {path}")
    if args.push:
        return push_document(args, REVOCATIONS, revocations.to_wire(), revocations.version)
    return 0


def _list(args: argparse.Namespace) -> int:
    trust = MeshTrust.load(args.trust) if args.trust else None
    revocations = RevocationList.load(args.revocations, trust) \
        if args.revocations and trust else None
    if args.revocations and trust is None:
        raise ConfigError("--revocations needs --trust to check the list's signature")
    rows = [describe_certificate(OperatorCertificate.load(path), trust, revocations)
            for path in args.certs]
    if args.json:
        print_json(rows)
        return 0
    columns = ["name", "operator_id", "scopes", "expires", "status"]
    print(render([c.upper() for c in columns],
                 [[short_id(row[c]) if c == "operator_id" else str(row[c]) for c in columns]
                  for row in rows]))
    return 0


def describe_certificate(cert: OperatorCertificate, trust: MeshTrust | None,
                         revocations: RevocationList | None) -> dict[str, Any]:
    """A JSON-friendly row; ``status`` is the verification outcome when ``trust`` is given."""
    status = "unchecked"
    if trust is not None:
        try:
            OperatorCertificate.verify(cert.signed, trust, revocations=revocations)
            status = "valid"
        except CommandRejected as rejection:
            status = rejection.reason
    return {"name": cert.name, "operator_id": cert.operator_id.hex(),
            "mesh_id": cert.mesh_id.hex(), "scopes": ",".join(cert.scopes),
            "not_before": utc_time(cert.not_before), "expires": utc_time(cert.expires),
            "serial": cert.serial, "status": status}
