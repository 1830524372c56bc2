"""Fuzz the frame decoders (atheris): random bytes, whole and in random pieces.

Every input goes through ``decode_frames``, a streaming ``FrameDecoder`` fed in pieces
whose sizes the fuzzer chooses, and a tunnel's ``open_frames``, on the C core and on the
pure-Python twin. The only acceptable failures are the core's typed errors (``CoreError``
subclasses), and both backends must give the same frames or the same error class: anything
else raises and atheris reports the input that did it.

    .venv/bin/python fuzz/fuzz_frame_decoder.py -max_total_time=60 .fuzz/corpus
    (or: make fuzz, FUZZ_SECONDS=30 make fuzz)

Coverage guidance comes from the instrumented Python layers; the C core is exercised (and
its answers checked against the twin) but not instrumented. When the first corpus directory
is empty it is seeded with a few valid encodings.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports(include=["meshagent"]):
    from meshagent.core import CoreError, Frame, cbackend, pyref

BACKENDS = (cbackend, pyref)
KEY = bytes(range(32))


def outcome(call: Callable[[], object]) -> object:
    """What a call returned, or the class of the typed error it raised."""
    try:
        return call()
    except CoreError as exc:
        return type(exc)


def agree(calls: list[Callable[[], object]], what: str) -> object:
    results = [outcome(call) for call in calls]
    if any(result != results[0] for result in results[1:]):
        raise AssertionError(f"{what}: backends disagree: {results!r}")
    return results[0]


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    cuts = [provider.ConsumeIntInRange(1, 64) for _ in range(provider.ConsumeIntInRange(0, 8))]
    stream = provider.ConsumeBytes(provider.remaining_bytes())

    agree([lambda b=b: b.decode_frames(stream) for b in BACKENDS], "decode_frames")

    decoders = [backend.FrameDecoder() for backend in BACKENDS]
    position = 0
    for size in cuts + [len(stream)]:
        piece = stream[position:position + size]
        position += size
        result = agree([lambda d=d, p=piece: d.feed(p) for d in decoders], "FrameDecoder.feed")
        if isinstance(result, type):  # a typed error ends this stream
            break

    tunnels = [backend.Tunnel(KEY, KEY) for backend in BACKENDS]
    agree([lambda t=t: t.open_frames(stream) for t in tunnels], "Tunnel.open_frames")


def seed(corpus: pathlib.Path) -> None:
    """Valid inputs to start from: one frame, a batch, a sealed record."""
    frames = [Frame(type=1 + n, src=bytes([n]) * 16, dst=bytes([n + 1]) * 16, seq=n,
                    payload=bytes([n]) * (n * 7)) for n in range(4)]
    samples = {
        "one_frame": cbackend.encode_frames(frames[:1]),
        "batch": cbackend.encode_frames(frames),
        "sealed": bytes(cbackend.Tunnel(KEY, KEY).seal_frames(frames)),
    }
    for name, sample in samples.items():
        (corpus / name).write_bytes(bytes(9) + sample)  # 9 bytes feed the piece sizes


def main() -> None:
    corpora = [pathlib.Path(arg) for arg in sys.argv[1:] if not arg.startswith("-")]
    if corpora and corpora[0].is_dir() and not any(corpora[0].iterdir()):
        seed(corpora[0])
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
