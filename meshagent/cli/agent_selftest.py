"""``meshagent selftest``: known-answer tests and round trips of the core, where it runs.

Runs ``meshagent.core.selftest`` (NIST AES-GCM vectors shipped as package data, RFC
vectors for Ed25519, X25519 and HKDF, frames, tunnel, replay window and route table on the
C core and on the pure-Python twin), then signs and checks a document as the agent signs
its record (pycryptodome), then a
stream round trip on each event loop ``meshagent run`` can take here (asyncio's, uvloop
where it is installed, and the one ``auto``, the default, picks), and prints one line per
check. Exit status 0 when every
check passed, 1 otherwise. In a frozen executable this proves the bundled C core,
libcrypto and uvloop are the ones built for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from meshagent.core import BACKEND
from meshagent.core.selftest import CheckResult, run_selftest
from meshagent.eventloop import EVENT_LOOPS, loop_factory, loop_name, uvloop_factory
from meshagent.signing import SignatureError, Signed, SigningKey, sign, verify

HELP = "run the core's known-answer tests and round trips (exit 1 on any failure)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def run(args: argparse.Namespace) -> int:
    # The checks feed forged and replayed records on purpose; their rejection log lines
    # would read like failures.
    core_log = logging.getLogger("meshagent.core")
    level = core_log.level
    core_log.setLevel(logging.ERROR)
    try:
        loops = [name for name in EVENT_LOOPS if name != "uvloop" or uvloop_factory()]
        results = [*run_selftest(), _signing_check(),
                   *(_event_loop_check(name) for name in loops)]
    finally:
        core_log.setLevel(level)
    failed = [result for result in results if not result.passed]
    if args.json:
        print(json.dumps({"backend": BACKEND, "passed": len(results) - len(failed),
                          "failed": len(failed),
                          "checks": [vars(result) for result in results]}))
    else:
        width = max(len(result.name) for result in results)
        for result in results:
            status = "ok  " if result.passed else "FAIL"
            print(f"{status} {result.name:<{width}}  {result.detail}")
        print(f"selftest: {len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def _signing_check() -> CheckResult:
    """A key made, a document signed (pycryptodome, as the agent signs its record) and
    checked through the core. pycryptodome loads each curve's arithmetic by name on first
    use, which a frozen bundle must carry (build_tools/meshagent.spec)."""
    name = "ed25519 signing (pycryptodome)"
    try:
        key = SigningKey.generate()
        signed = sign(key, "selftest", {"check": 1})
        verify(signed, "selftest", key.public)
        forged = Signed(signed.kind, signed.body + b"\0", signed.signer, signed.signature)
        try:
            verify(forged, "selftest", key.public)
        except SignatureError:
            return CheckResult(name, True, "a key made, a document signed and checked, "
                                           "an altered one refused")
        return CheckResult(name, False, "an altered document was accepted")
    except Exception as exc:  # reported like a failed core check
        return CheckResult(name, False, f"{type(exc).__name__}: {exc}")


def _event_loop_check(choice: str) -> CheckResult:
    """A TCP round trip on the loop ``event_loop = choice`` takes (``auto``: uvloop where
    it can be imported, as ``meshagent run`` would choose)."""
    expected = choice if choice != "auto" else ("uvloop" if uvloop_factory() else "asyncio")

    async def round_trip() -> str:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readexactly(4))
            await writer.drain()
            writer.close()
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.sockets[0].getsockname()[1])
            writer.write(b"ping")
            answer = await asyncio.wait_for(reader.readexactly(4), 5)
            writer.close()
        finally:
            server.close()
        if answer != b"ping":
            raise AssertionError(f"echo returned {answer!r}")
        return loop_name(asyncio.get_running_loop())

    name = f"event loop ({choice})"
    try:
        with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
            ran_on = runner.run(round_trip())
    except Exception as exc:  # reported like a failed core check
        return CheckResult(name, False, f"{type(exc).__name__}: {exc}")
    # The module's own version: a frozen executable carries no package metadata.
    version = getattr(sys.modules.get(ran_on), "__version__", "") if ran_on == "uvloop" else ""
    return CheckResult(name, ran_on == expected, f"{ran_on} {version}".rstrip()
                       + ": stream round trip")
