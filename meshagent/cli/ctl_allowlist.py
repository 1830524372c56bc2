"""``meshctl allowlist``: show the mesh's signed allowlist, have the root sign a new one,
push it to every agent through the web service.

    meshctl allowlist show FILE [--trust mesh.trust] [--json]
    meshctl allowlist sign --root DIR/root.key --actions ping,inventory,script
                           --script PATH [--script NAME=PATH]... --out FILE
                           [--previous FILE] [--version N]
    meshctl allowlist push FILE [--server URL --pin SHA256 --token TOKEN]

A new list gets the next version above the previous one (``--previous``, or ``--out`` if
it already exists): agents only ever move to a higher version. Scripts are approved by the
SHA-256 of the file's exact bytes; the name (default: the file name) is for people.
``push`` uploads it; the service keeps it if the root signed it and it is newer than the
one held, and hands it to the mesh's leader, from which every agent gets it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from meshagent.cli.api_client import add_server_options
from meshagent.cli.ctl_keys import parse_comma_list
from meshagent.cli.ctl_revocations import push_document
from meshagent.cli.tables import print_json
from meshagent.commands.allowlist import Allowlist, build_allowlist
from meshagent.errors import ConfigError
from meshagent.identity import MeshRoot, MeshTrust
from meshagent.trustdocs import ALLOWLIST

HELP = "the mesh's allowlist of actions and approved scripts: show, sign a new version"


def parse_script(text: str) -> tuple[str, Path]:
    """``PATH`` or ``NAME=PATH``."""
    name, sep, path = text.partition("=")
    return (name, Path(path)) if sep and name else (Path(text).name, Path(text))


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    show = actions.add_parser("show", help="print an allowlist file")
    show.add_argument("file", type=Path)
    show.add_argument("--trust", type=Path, help="mesh trust file: verify the root's signature")
    show.add_argument("--json", action="store_true")
    show.set_defaults(action_run=_show)

    sign = actions.add_parser("sign", help="sign a new allowlist version with the mesh root")
    sign.add_argument("--root", required=True, type=Path, help="the mesh root key file")
    sign.add_argument("--actions", required=True, type=parse_comma_list,
                      help="comma-separated accepted actions (ping,inventory,script,power,tags)")
    sign.add_argument("--script", action="append", default=[], type=parse_script,
                      metavar="[NAME=]PATH", help="approve this script file; repeatable")
    sign.add_argument("--out", required=True, type=Path, help="allowlist file to write")
    sign.add_argument("--previous", type=Path,
                      help="the list this one replaces (default: --out if it exists)")
    sign.add_argument("--version", type=int, help="explicit version (must be higher)")
    sign.set_defaults(action_run=_sign)

    push = actions.add_parser("push", help="upload the allowlist to the web service (and so "
                                           "to every agent through the mesh's leader)")
    push.add_argument("file", type=Path)
    add_server_options(push)
    push.set_defaults(action_run=_push)


def run(args: argparse.Namespace) -> int:
    return int(args.action_run(args))


def _show(args: argparse.Namespace) -> int:
    trust = MeshTrust.load(args.trust) if args.trust else None
    allowlist = Allowlist.load(args.file, trust)
    view = allowlist.describe()
    view["verified"] = trust is not None
    if args.json:
        print_json(view)
        return 0
    print(f"allowlist version {view['version']} of mesh {view['mesh_id']} "
          f"({'signature verified' if trust else 'signature NOT checked: give --trust'})")
    print(f"actions: {', '.join(view['actions']) or '-'}")
    for script in view["scripts"]:
        print(f"script {script['sha256']}  {script['name']}")
    return 0


def _push(args: argparse.Namespace) -> int:
    allowlist = Allowlist.load(args.file)
    return push_document(args, ALLOWLIST, allowlist.to_wire(), allowlist.version)


def _sign(args: argparse.Namespace) -> int:
    root = MeshRoot.load(args.root)
    previous_path = args.previous or (args.out if args.out.exists() else None)
    previous = Allowlist.load(previous_path, root.trust) if previous_path else None
    scripts: dict[str, bytes] = {}
    for name, path in args.script:
        if name in scripts:
            raise ConfigError(f"two scripts named {name!r}: use NAME=PATH")
        try:
            scripts[name] = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror}") from exc
    allowlist = build_allowlist(root, args.actions, scripts, previous, args.version)
    allowlist.save(args.out)
    print(f"allowlist version {allowlist.version}: {len(allowlist.actions)} actions, "
          f"{len(allowlist.scripts)} scripts; written to {args.out}")
    return 0
