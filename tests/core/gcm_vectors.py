"""Loaders of the AES-GCM known-answer files in tests/data (NIST .rsp, Wycheproof JSON)."""

from __future__ import annotations

import json
import pathlib

from meshagent.core.selftest import GcmVector

DATA = pathlib.Path(__file__).resolve().parent.parent / "data"


def parse_rsp(path: pathlib.Path) -> list[GcmVector]:
    """Every ``Count`` block of a NIST CAVP GCM .rsp file (encrypt or decrypt)."""
    vectors: list[GcmVector] = []
    block: dict[str, str] = {}
    section = ""

    def flush() -> None:
        if "Key" in block:
            failed = "FAIL" in block
            vectors.append(GcmVector(
                name=f"{path.stem}[{section}]#{block['Count']}",
                key=bytes.fromhex(block["Key"]), nonce=bytes.fromhex(block["IV"]),
                aad=bytes.fromhex(block["AAD"]), ciphertext=bytes.fromhex(block["CT"]),
                tag=bytes.fromhex(block["Tag"]),
                plaintext=None if failed else bytes.fromhex(block["PT"])))
        block.clear()

    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            flush()
            section = line.strip("[]").replace(" ", "") if line.startswith("[Keylen") else \
                f"{section},{line.strip('[]').replace(' ', '')}"
        elif line.startswith("Count"):
            flush()
            block["Count"] = line.split("=", 1)[1].strip()
        elif line == "FAIL":
            block["FAIL"] = ""
        elif "=" in line and not line.startswith("#"):
            name, value = (part.strip() for part in line.split("=", 1))
            block[name] = value
    flush()
    return vectors


def load_wycheproof(path: pathlib.Path) -> tuple[int, list[tuple[GcmVector, str]]]:
    """(numberOfTests declared by the file, [(vector, result)]); result is valid/invalid."""
    document = json.loads(path.read_text())
    loaded = []
    for group in document["testGroups"]:
        for test in group["tests"]:
            vector = GcmVector(
                name=f"wycheproof#{test['tcId']}", key=bytes.fromhex(test["key"]),
                nonce=bytes.fromhex(test["iv"]), aad=bytes.fromhex(test["aad"]),
                ciphertext=bytes.fromhex(test["ct"]), tag=bytes.fromhex(test["tag"]),
                plaintext=bytes.fromhex(test["msg"]))
            loaded.append((vector, test["result"]))
    return document["numberOfTests"], loaded


NIST_FILES = sorted((DATA / "nist_gcm").glob("*.rsp"))
NIST_VECTORS = [vector for path in NIST_FILES for vector in parse_rsp(path)]
WYCHEPROOF_DECLARED, WYCHEPROOF_VECTORS = load_wycheproof(
    DATA / "wycheproof" / "aes_gcm_test.json")
