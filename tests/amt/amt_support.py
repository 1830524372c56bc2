"""Helpers of the AMT tests: fixture files and a transport that replays them."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "amt"
ADMIN_PASSWORD = "Adm1n!pass"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / f"{name}.xml").read_bytes()


class FixtureTransport:
    """Answers each request with the next queued fixture file (status 200 unless a fault)."""

    def __init__(self, *names: str) -> None:
        self.queue = list(names)
        self.requests: list[bytes] = []

    async def post(self, envelope: bytes) -> tuple[int, bytes]:
        self.requests.append(envelope)
        name = self.queue.pop(0)
        return (400 if name.startswith("fault_") else 200), fixture_bytes(name)

    async def close(self) -> None:
        pass
