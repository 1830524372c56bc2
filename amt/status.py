"""AMT method return codes (PT_STATUS), as the Intel AMT SDK's status code definitions name them.

AMT methods return one of these in ``ReturnValue``; the client raises
``ReturnValueError`` with the name for any non-zero value and the software device returns
them by name from here, so both sides agree on the numbers.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["PtStatus", "pt_status_name"]


class PtStatus(IntEnum):
    SUCCESS = 0x0
    INTERNAL_ERROR = 0x1
    NOT_READY = 0x2
    INVALID_PT_MODE = 0x3
    INVALID_MESSAGE_LENGTH = 0x4
    UNSUPPORTED_ISVS_VERSION = 0x7
    APPLICATION_NOT_REGISTERED = 0x8
    INVALID_REGISTRATION_DATA = 0x9
    APPLICATION_DOES_NOT_EXIST = 0xA
    NOT_ENOUGH_STORAGE = 0xB
    INVALID_NAME = 0xC
    BLOCK_DOES_NOT_EXIST = 0xD
    INVALID_BYTE_OFFSET = 0xE
    INVALID_BYTE_COUNT = 0xF
    NOT_PERMITTED = 0x10
    NOT_OWNER = 0x11
    BLOCK_LOCKED_BY_OTHER = 0x12
    BLOCK_NOT_LOCKED = 0x13
    INVALID_GROUP_PERMISSIONS = 0x14
    GROUP_DOES_NOT_EXIST = 0x15
    INVALID_MEMBER_COUNT = 0x16
    MAX_LIMIT_REACHED = 0x17
    INVALID_AUTH_TYPE = 0x18
    INVALID_INDEX = 0x23
    INVALID_PARAMETER = 0x24
    FLASH_WRITE_LIMIT_EXCEEDED = 0x26
    INVALID_HANDLE = 0x805
    INVALID_PASSWORD = 0x806
    INVALID_REALM = 0x807
    STORAGE_ACL_ENTRY_IN_USE = 0x808
    DUPLICATE = 0x80A
    NOT_FOUND = 0x814


def pt_status_name(code: int) -> str:
    """``PT_STATUS_<NAME>`` for a known code, ``PT_STATUS_UNKNOWN_<code>`` otherwise."""
    try:
        return "PT_STATUS_" + PtStatus(code).name
    except ValueError:
        return f"PT_STATUS_UNKNOWN_{code}"
