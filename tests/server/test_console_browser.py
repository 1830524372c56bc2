"""The console page in a real headless Chromium (Debian's ``chromium``), driven by
Playwright: log in, see the nodes a leader reported, run a command on one, and see its
result and audit entry arrive live (server-sent events, no reload)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from meshagent.log import get_logger
from tests.polling import wait_for

from .conftest import ADMIN_PASSWORD, Harness

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("MESHAGENT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
LAUNCH_TIMEOUT_MS = 60_000  # a loaded CI machine starts Chromium slowly

log = get_logger(__name__)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The page does not depend on the back end: SQLite only here."""
    return f"sqlite://{tmp_path}/service.db"


async def test_console_shows_nodes_runs_a_command_and_updates_live(
        harness: Harness, tmp_path: Path) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip("Chromium not installed (Debian package chromium)")
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)  # a loaded CI machine starts Chromium slowly

    leader = harness.leader(term=1, answer=True)
    await leader.connected()
    await wait_for(lambda: _node_count(harness, len(harness.mesh.nodes)))

    async with playwright_api.async_playwright() as pw:
        browser = await _launch_chromium(pw, playwright_api.Error)
        try:
            context = await browser.new_context(ignore_https_errors=True,
                                                viewport={"width": 1400, "height": 1100})
            page = await context.new_page()
            page.set_default_timeout(20_000)
            await page.goto(harness.url)

            await expect(page.locator("#login-view")).to_be_visible()
            await page.fill("#password", "not the password")
            await page.click("#login-form button")
            await expect(page.locator("#login-error")).to_contain_text("wrong password")
            await page.fill("#password", ADMIN_PASSWORD)
            await page.click("#login-form button")

            await expect(page.locator("#login-view")).to_be_hidden()
            rows = page.locator("#nodes tbody tr")
            await expect(rows).to_have_count(len(harness.mesh.nodes))
            await expect(page.locator("#nodes")).to_contain_text("node-002")
            await expect(page.locator("#meshes")).to_contain_text("connected")
            await expect(page.locator("#live")).to_have_text("live")

            target = harness.mesh.nodes[2].node_id.hex()
            ends = time.strftime("%Y-%m-%d", time.gmtime(harness.mesh.nodes[2].cert.expires))
            await expect(page.locator(f"#nodes tr[data-node='{target}']")).to_contain_text(ends)
            await page.check(f"#nodes tr[data-node='{target}'] input[type=checkbox]")
            await page.fill("#cmd-action", "ping")
            await page.click("#command-form button")
            await expect(page.locator("#cmd-status")).to_contain_text("for 1 node(s)")

            command_row = page.locator("#commands tbody tr").first
            await expect(command_row).to_contain_text("done")
            await expect(command_row).to_contain_text('ok: {"pong":true}')
            await expect(page.locator("#audit")).to_contain_text("command_done")
            await expect(page.locator("#audit")).to_contain_text("console:admin@")

            # A state change reported by the leader appears without a reload.
            assert leader.uplink is not None
            from meshagent.uplink import NodeReport

            await leader.uplink.report([NodeReport(bytes.fromhex(target), "asleep", 1.0)])
            await expect(page.locator(f"#nodes tr[data-node='{target}']")).to_contain_text(
                "asleep")
            await page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
        finally:
            await browser.close()


async def _launch_chromium(pw: Any, launch_error: type[Exception]) -> Any:
    """Start Chromium; once more if it dies while starting. On a loaded machine Chromium
    now and then crashes before its DevTools pipe is up, which says nothing about the
    page. Only the launch is retried, and logged with Chromium's own output; every check
    of the page runs once."""
    try:
        return await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                        timeout=LAUNCH_TIMEOUT_MS)
    except launch_error as exc:
        log.warning("chromium_launch_failed_retrying", error=str(exc)[:4000])
    return await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                    timeout=LAUNCH_TIMEOUT_MS)


async def _node_count(harness: Harness, count: int) -> bool:
    from meshagent.server.db import NodeFilter

    return len(await harness.service.db.nodes(NodeFilter())) == count
