"""``meshctl revocations``: show the mesh's root-signed revocation list, or push it to the
web service, which hands it to the mesh's leader; the mesh spreads it to every agent.

    meshctl revocations show FILE --trust mesh.trust [--json]
    meshctl revocations push FILE [--server URL --pin SHA256 --token TOKEN]

FILE is the list ``meshagent mesh revoke`` and ``meshctl keys revoke`` maintain (default
name ``revocations`` next to the root key). The service keeps it only if the mesh's root
signed it and its version is higher than the one held; an older one is refused (409).
``push_document`` is also what ``meshctl allowlist push`` and ``keys revoke --push`` use.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from meshagent.cli.api_client import add_server_options, client_from_args
from meshagent.cli.tables import print_json
from meshagent.identity import MeshTrust, RevocationList
from meshagent.trustdocs import DOCUMENT_KINDS, REVOCATIONS, peek_document, read_document_file

HELP = "the mesh's revocation list: show it, push it to every agent through the web service"


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    show = actions.add_parser("show", help="print a revocation list file")
    show.add_argument("file", type=Path)
    show.add_argument("--trust", required=True, type=Path,
                      help="mesh trust file: the root's signature is verified")
    show.add_argument("--json", action="store_true")
    show.set_defaults(action_run=_show)

    push = actions.add_parser("push", help="upload the list to the web service (and so to "
                                           "every agent through the mesh's leader)")
    push.add_argument("file", type=Path)
    add_server_options(push)
    push.set_defaults(action_run=_push)


def run(args: argparse.Namespace) -> int:
    return int(args.action_run(args))


def push_document(args: argparse.Namespace, kind: str, wire: bytes, version: int) -> int:
    """Upload one root-signed document with the service options in ``args`` and say what
    happened (ApiError for a refusal, reported by the CLI runner)."""
    adopted = client_from_args(args).push_document(kind, wire)
    if adopted:
        print(f"{kind} version {version} adopted by the web service; the mesh's leader "
              f"spreads it to every agent")
    else:
        print(f"the web service already holds {kind} version {version}")
    return 0


def _push(args: argparse.Namespace) -> int:
    wire = read_document_file(REVOCATIONS, args.file)
    version = peek_document(DOCUMENT_KINDS[REVOCATIONS], wire)[2]
    return push_document(args, REVOCATIONS, wire, version)


def _show(args: argparse.Namespace) -> int:
    listing = RevocationList.verify(read_document_file(REVOCATIONS, args.file),
                                    MeshTrust.load(args.trust))
    view = {"mesh_id": listing.mesh_id.hex(), "version": listing.version,
            "issued": listing.issued, "node_ids": sorted(n.hex() for n in listing.node_ids),
            "serials": sorted(listing.serials)}
    if args.json:
        print_json(view)
        return 0
    print(f"revocation list version {view['version']} of mesh {view['mesh_id']} "
          f"(signature verified)")
    for node_id in view["node_ids"]:
        print(f"revoked node or operator {node_id}")
    for serial in view["serials"]:
        print(f"revoked certificate serial {serial}")
    return 0
