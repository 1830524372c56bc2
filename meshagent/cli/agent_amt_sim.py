"""``meshagent amt-sim``: run a software Intel AMT device until interrupted.

Prints one line ``amt-sim listening on URL realm=... [cert_sha256=...]`` once it serves, so
scripts (and tests) can wait for it. The admin password comes from ``--admin-password`` or
the ``MESHAGENT_AMT_ADMIN_PASSWORD`` environment variable; with an existing ``--state`` file
the stored admin account is used and the password is not needed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from amt import namespaces as ns
from meshagent.errors import ConfigError

if TYPE_CHECKING:
    from amt.device import SoftwareAmtDevice

HELP = "run a software Intel AMT device (WS-Management, digest auth, 3PDS)"

PASSWORD_ENV = "MESHAGENT_AMT_ADMIN_PASSWORD"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=None,
                        help="port (default 16992, or 16993 with --tls; 0 picks a free one)")
    parser.add_argument("--admin-user", default="admin")
    parser.add_argument("--admin-password", default=None,
                        help=f"admin password (or set {PASSWORD_ENV})")
    parser.add_argument("--state", type=Path, default=None,
                        help="JSON file holding the device's state across restarts")
    parser.add_argument("--hostname", default="amt-sim", help="AMT host name of a new device")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a self-signed cert")
    parser.add_argument("--tls-dir", type=Path, default=Path(".amt-sim-tls"),
                        help="where the self-signed certificate and key are kept")


async def _serve(device: SoftwareAmtDevice) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await device.start()
    pin = f" cert_sha256={device.tls.sha256.hex()}" if device.tls else ""
    print(f"amt-sim listening on {device.url} realm={device.realm}{pin}", flush=True)
    try:
        await stop.wait()
    finally:
        await device.stop()


def run(args: argparse.Namespace) -> int:
    # The device (aiohttp's server) loads only for this verb: every `meshagent` command
    # builds its parser from all the verbs, and `meshagent run` must stay small.
    from amt.device import SoftwareAmtDevice, TlsCertificate

    password = args.admin_password or os.environ.get(PASSWORD_ENV, "")
    if not password and not (args.state and args.state.exists()):
        raise ConfigError(f"--admin-password (or {PASSWORD_ENV}) is required for a new device")
    tls = TlsCertificate.generate(args.tls_dir) if args.tls else None
    port = args.port if args.port is not None else (ns.TLS_PORT if args.tls else ns.HTTP_PORT)
    device = SoftwareAmtDevice(admin_user=args.admin_user, admin_password=password,
                               host=args.host, port=port, state_path=args.state, tls=tls,
                               hostname=args.hostname)
    asyncio.run(_serve(device))
    return 0
