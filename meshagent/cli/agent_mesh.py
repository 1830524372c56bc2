"""``meshagent mesh``: create a mesh, enroll nodes, hand out join tokens, revoke.

    meshagent mesh init   --dir DIR
    meshagent mesh enroll --dir DIR --node-dir NDIR --roles agent,relay [--hostname H]
    meshagent mesh token  --dir DIR --roles agent --ttl 1h        (prints the token)
    meshagent mesh redeem TOKEN|- --node-dir NDIR [--hostname H] [--trust FILE]
    meshagent mesh revoke --dir DIR (--serial N | --node NODE_ID_HEX)... [--copy-to NDIR]
    meshagent mesh renew  --dir DIR --out OUTDIR [--lifetime 365d] CERTFILE...
    meshagent mesh show   [--dir DIR] [--node-dir NDIR] [--json]

DIR (the mesh directory) holds the root key (root.key, 0600), the trust file every agent
needs (mesh.trust) and the current revocation list (revocations). Keep it offline.
NDIR (a node directory, the agent's ``node.state_dir``) holds node.key (0600),
node.cert and mesh.trust.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path
from typing import Any

from meshagent.cli.times import parse_duration, utc_time
from meshagent.errors import ConfigError
from meshagent.identity import (
    CERTIFICATE_FILE,
    DEFAULT_CERT_LIFETIME_S,
    IDENTITY_FILE,
    REVOCATIONS_FILE,
    TRUST_FILE,
    CertificateError,
    MembershipCertificate,
    MeshRoot,
    MeshTrust,
    NodeCredentials,
    NodeIdentity,
    RevocationList,
    load_certificate,
    redeem_join_token,
    save_certificate,
)

HELP = "create a mesh, enroll nodes, issue and redeem join tokens, revoke certificates"

ROOT_FILE = "root.key"


def parse_roles(text: str) -> list[str]:
    roles = [role.strip() for role in text.split(",") if role.strip()]
    if not roles:
        raise argparse.ArgumentTypeError("at least one role")
    return roles


def parse_node_id(text: str) -> bytes:
    try:
        node_id = bytes.fromhex(text)
    except ValueError:
        node_id = b""
    if len(node_id) != 16:
        raise argparse.ArgumentTypeError(f"a node id is 32 hex digits: {text!r}")
    return node_id


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    init = actions.add_parser("init", help="make a new mesh: root key, mesh id, trust file")
    init.add_argument("--dir", required=True, type=Path, help="mesh directory to create")
    init.set_defaults(action_run=_init)

    enroll = actions.add_parser("enroll", help="issue a node its keys and certificate")
    enroll.add_argument("--dir", required=True, type=Path, help="mesh directory")
    enroll.add_argument("--node-dir", required=True, type=Path,
                        help="node directory; an existing node.key is kept (renewal)")
    enroll.add_argument("--roles", type=parse_roles, default=["agent"],
                        help="comma-separated roles (default: agent)")
    enroll.add_argument("--hostname", default=socket.gethostname(),
                        help="name in the certificate (default: this host's name)")
    enroll.add_argument("--lifetime", type=parse_duration, default=DEFAULT_CERT_LIFETIME_S,
                        help="certificate lifetime (default: 365d)")
    enroll.set_defaults(action_run=_enroll)

    token = actions.add_parser("token", help="issue a one-time join token (printed)")
    token.add_argument("--dir", required=True, type=Path, help="mesh directory")
    token.add_argument("--roles", type=parse_roles, default=["agent"],
                       help="roles the token grants (default: agent)")
    token.add_argument("--ttl", type=parse_duration, default=3600,
                       help="how long the token can be redeemed (default: 1h)")
    token.add_argument("--cert-lifetime", type=parse_duration,
                       default=DEFAULT_CERT_LIFETIME_S,
                       help="lifetime of the certificate it yields (default: 365d)")
    token.set_defaults(action_run=_token)

    redeem = actions.add_parser("redeem", help="join a mesh with a token, offline")
    redeem.add_argument("token", help="the token, or - to read it from standard input")
    redeem.add_argument("--node-dir", required=True, type=Path, help="node directory")
    redeem.add_argument("--hostname", default=socket.gethostname())
    redeem.add_argument("--trust", type=Path,
                        help="mesh.trust to check the token against (default: trust the "
                             "root named in the token)")
    redeem.set_defaults(action_run=_redeem)

    revoke = actions.add_parser("revoke", help="add certificates to the revocation list")
    revoke.add_argument("--dir", required=True, type=Path, help="mesh directory")
    revoke.add_argument("--serial", type=int, action="append", default=[],
                        help="certificate (or join token) serial; repeatable")
    revoke.add_argument("--node", type=parse_node_id, action="append", default=[],
                        help="node id (hex); repeatable")
    revoke.add_argument("--copy-to", type=Path, action="append", default=[],
                        metavar="NODE_DIR", help="also write the list into this node "
                        "directory, from where its agent gossips it; repeatable")
    revoke.set_defaults(action_run=_revoke)

    renew = actions.add_parser("renew", help="re-issue certificates for the same nodes "
                               "(files from `meshctl certificates export`)")
    renew.add_argument("--dir", required=True, type=Path, help="mesh directory")
    renew.add_argument("--out", required=True, type=Path,
                       help="directory for the renewed certificates (NODE_ID.cert each)")
    renew.add_argument("--lifetime", type=parse_duration, default=DEFAULT_CERT_LIFETIME_S,
                       help="lifetime of the renewed certificates (default: 365d)")
    renew.add_argument("certificates", nargs="+", type=Path, metavar="CERTFILE",
                       help="certificate files to renew (expired ones too)")
    renew.set_defaults(action_run=_renew)

    show = actions.add_parser("show", help="describe a mesh directory and/or node directory")
    show.add_argument("--dir", type=Path, help="mesh directory")
    show.add_argument("--node-dir", type=Path, help="node directory")
    show.add_argument("--json", action="store_true", help="one JSON object")
    show.set_defaults(action_run=_show)


def run(args: argparse.Namespace) -> int:
    return int(args.action_run(args))


# -- actions ----------------------------------------------------------------------------


def _init(args: argparse.Namespace) -> int:
    root_path = args.dir / ROOT_FILE
    if root_path.exists():
        raise ConfigError(f"{root_path} exists: a mesh is never re-created over its root key")
    args.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    root = MeshRoot.create()
    root.save(root_path)
    root.trust.save(args.dir / TRUST_FILE)
    print(f"mesh {root.mesh_id.hex()} created in {args.dir}")
    print(f"root key {root_path} (keep it offline); agents need {args.dir / TRUST_FILE}")
    return 0


def _enroll(args: argparse.Namespace) -> int:
    root = MeshRoot.load(args.dir / ROOT_FILE)
    key_path = args.node_dir / IDENTITY_FILE
    identity = NodeIdentity.load(key_path) if key_path.exists() else NodeIdentity.generate()
    cert = root.issue_certificate(identity.sign_public, identity.dh_public, args.roles,
                                  args.hostname, int(args.lifetime))
    NodeCredentials(identity, cert, root.trust).save(args.node_dir)
    print(f"node {cert.node_id.hex()} ({cert.hostname}) enrolled in mesh "
          f"{root.mesh_id.hex()}: serial {cert.serial}, roles {','.join(cert.roles)}, "
          f"expires {utc_time(cert.expires)}")
    return 0


def _token(args: argparse.Namespace) -> int:
    root = MeshRoot.load(args.dir / ROOT_FILE)
    token = root.issue_join_token(args.roles, int(args.ttl), int(args.cert_lifetime))
    print(f"join token {token.token_id.hex()} serial {token.serial}, roles "
          f"{','.join(token.roles)}, redeemable until {utc_time(token.expires)}; it is a secret",
          file=sys.stderr)
    print(token.encode())
    return 0


def _redeem(args: argparse.Namespace) -> int:
    text = sys.stdin.readline() if args.token == "-" else args.token
    trust = MeshTrust.load(args.trust) if args.trust else None
    key_path = args.node_dir / IDENTITY_FILE
    identity = NodeIdentity.load(key_path) if key_path.exists() else NodeIdentity.generate()
    creds = redeem_join_token(text, identity, args.hostname, trust)
    creds.save(args.node_dir)
    cert = creds.certificate
    print(f"node {cert.node_id.hex()} ({cert.hostname}) joined mesh {cert.mesh_id.hex()} "
          f"with token serial {cert.serial}, roles {','.join(cert.roles)}, "
          f"expires {utc_time(cert.expires)}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    if not args.serial and not args.node:
        raise ConfigError("nothing to revoke: give --serial and/or --node")
    root = MeshRoot.load(args.dir / ROOT_FILE)
    path = args.dir / REVOCATIONS_FILE
    previous = RevocationList.load(path, root.trust) if path.exists() else None
    revocations = root.revoke(args.serial, args.node, previous)
    revocations.save(path)
    for node_dir in args.copy_to:
        revocations.save(node_dir / REVOCATIONS_FILE)
    print(f"revocation list version {revocations.version}: {len(revocations.serials)} "
          f"serials, {len(revocations.node_ids)} nodes; written to {path}")
    return 0


def _renew(args: argparse.Namespace) -> int:
    """Each certificate again for the same keys, roles and name, valid from now. Only
    certificates this root signed (or a join token it signed) are renewed, expired ones
    included; revoked ones are not. Token-made ones come back root-signed."""
    root = MeshRoot.load(args.dir / ROOT_FILE)
    path = args.dir / REVOCATIONS_FILE
    revocations = RevocationList.load(path, root.trust) if path.exists() else None
    old = [load_certificate(file) for file in args.certificates]
    for file, certificate in zip(args.certificates, old):
        try:  # as of its start: everything but its end is checked
            MembershipCertificate.verify(certificate.to_wire(), root.trust,
                                         now=certificate.not_before, revocations=revocations)
        except CertificateError as exc:
            raise ConfigError(f"{file}: not renewed: {type(exc).__name__}: {exc}") from None
    args.out.mkdir(mode=0o700, parents=True, exist_ok=True)
    for certificate in old:
        renewed = root.issue_certificate(certificate.sign_public, certificate.dh_public,
                                         certificate.roles, certificate.hostname,
                                         int(args.lifetime))
        save_certificate(args.out / f"{renewed.node_id.hex()}.cert", renewed.to_wire())
        print(f"node {renewed.node_id.hex()} ({renewed.hostname}): serial {renewed.serial}, "
              f"expires {utc_time(renewed.expires)} (was {utc_time(certificate.expires)})")
    print(f"{len(old)} certificate(s) renewed into {args.out}; deliver them with "
          "`meshctl certificates push`")
    return 0


def _show(args: argparse.Namespace) -> int:
    if args.dir is None and args.node_dir is None:
        raise ConfigError("give --dir and/or --node-dir")
    report: dict[str, Any] = {}
    revocations = None
    if args.dir is not None:
        trust = MeshTrust.load(args.dir / TRUST_FILE)
        report["mesh"] = _describe_trust(trust, args.dir / ROOT_FILE)
        path = args.dir / REVOCATIONS_FILE
        if path.exists():
            revocations = RevocationList.load(path, trust)
            report["revocations"] = _describe_revocations(revocations)
    if args.node_dir is not None:
        creds = NodeCredentials.load(args.node_dir)
        path = args.node_dir / REVOCATIONS_FILE
        if path.exists():
            local = RevocationList.load(path, creds.trust)
            revocations = local if revocations is None else revocations.merge(local)
        report["node"] = _describe_node(creds, revocations)
        report.setdefault("mesh", _describe_trust(creds.trust, None))
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        for section, fields in report.items():
            print(f"{section}:")
            for key, value in fields.items():
                print(f"  {key}: {value}")
    return 0


def _describe_trust(trust: MeshTrust, root_path: Path | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"mesh_id": trust.mesh_id.hex(),
                              "root_public": trust.root_public.hex()}
    if root_path is not None:
        fields["root_key_present"] = root_path.exists()
    return fields


def _describe_revocations(revocations: RevocationList) -> dict[str, Any]:
    return {"version": revocations.version, "serials": sorted(revocations.serials),
            "nodes": sorted(node.hex() for node in revocations.node_ids)}


def _describe_node(creds: NodeCredentials,
                   revocations: RevocationList | None) -> dict[str, Any]:
    cert = creds.certificate
    try:
        MembershipCertificate.verify(cert, creds.trust, revocations=revocations)
        status = "valid"
    except CertificateError as exc:
        status = f"{type(exc).__name__}: {exc}"
    return {"node_id": cert.node_id.hex(), "hostname": cert.hostname,
            "roles": list(cert.roles), "serial": cert.serial,
            "not_before": utc_time(cert.not_before), "expires": utc_time(cert.expires),
            "joined_with_token": cert.token_id.hex() if cert.token_id else None,
            "dh_public": cert.dh_public.hex(), "status": status,
            "files": [IDENTITY_FILE, CERTIFICATE_FILE, TRUST_FILE]}
