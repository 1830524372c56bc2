"""Fixtures of the AMT tests: a started software device and an admin client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from amt_support import ADMIN_PASSWORD

from amt import AmtClient
from amt.device import SoftwareAmtDevice


@pytest.fixture
async def device() -> AsyncIterator[SoftwareAmtDevice]:
    async with SoftwareAmtDevice(admin_password=ADMIN_PASSWORD) as dev:
        yield dev


@pytest.fixture
async def admin(device: SoftwareAmtDevice) -> AsyncIterator[AmtClient]:
    async with AmtClient("127.0.0.1", device.port, "admin", ADMIN_PASSWORD, timeout=5) as client:
        yield client
