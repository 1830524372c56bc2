"""Which event loop runs the agent, and the one place where loops differ for our code.

``meshagent run`` runs on asyncio's own loop unless the configuration asks for uvloop
(``runtime.event_loop = "uvloop"``, Linux and macOS, the ``uvloop`` extra). uvloop
spends about half the CPU per event, which is what a mass join is made of, but a seed
on uvloop answered fewer of a hundred simultaneous joins in time on a loaded machine
(BENCHMARKS.md has both figures), so it is a choice, not the default.

    factory = loop_factory("uvloop")    # uvloop.new_event_loop; None for asyncio's
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())

The loops differ in one way that matters here: asyncio drops a write to a stream that
is closing, uvloop raises RuntimeError. Every stream write that can race with a peer
going away (sessions, handshakes, the control socket) goes through
``write_unless_closing``, so both loops behave like asyncio's.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
from collections.abc import Callable

from meshagent.errors import ConfigError

__all__ = ["EVENT_LOOPS", "loop_factory", "loop_name", "uvloop_factory",
           "write_unless_closing", "cancel_and_wait"]

EVENT_LOOPS = ("asyncio", "uvloop")


def uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None where uvloop is not installed (or is Windows)."""
    if sys.platform == "win32":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    return uvloop.new_event_loop


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory for ``asyncio.Runner`` (None: asyncio's default loop);
    ConfigError for an unknown choice or for uvloop where it cannot be imported."""
    if choice not in EVENT_LOOPS:
        raise ConfigError(f"event_loop must be one of {', '.join(EVENT_LOOPS)}, not {choice!r}")
    if choice == "asyncio":
        return None
    factory = uvloop_factory()
    if factory is None:
        raise ConfigError("event_loop = \"uvloop\" but uvloop cannot be imported here")
    return factory


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: what ``meshagent status`` reports."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def write_unless_closing(writer: asyncio.StreamWriter, data: bytes) -> bool:
    """Write ``data`` unless the stream is closing (its peer went away, or we closed it);
    False if it was. The bytes would be lost either way; this keeps uvloop from raising
    where asyncio silently drops them."""
    if writer.is_closing():
        return False
    writer.write(data)
    return True


async def cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    """Stop a component's background task and wait until it has ended (its cancellation
    is not an error for the caller). ``None``: nothing was started."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
