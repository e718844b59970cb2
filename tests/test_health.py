"""AutonomousAI.get_health, the probe g4f's health routes call, and `g4f-autonomous check`.

The probe is one GET of the base URL: it reports, it never raises. The API
server's and the GUI's health routes are tested in test_api_server.py and
test_gui.py; here are the probe's verdicts and the command line.
"""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc

import pytest
from aiohttp import web
from helpers import closed_port_url
from ticker import LoopTicker

from g4f_autonomous import AutonomousAI, cli, provider
from g4f_autonomous.emulator import CLOUDFLARE_PAGE, gzip_bomb


@pytest.fixture
async def odd_server() -> str:
    """A real server answering GET with the pages a troubled upstream shows."""

    def page(text: str, status: int, content_type: str = "text/html"):
        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=text, status=status, content_type=content_type)
        return handler

    def packed(body: bytes, status: int) -> object:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, status=status, headers={"content-encoding": "gzip"})
        return handler

    def packed_plain(body: bytes, status: int) -> object:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, status=status, content_type="text/plain")
        return handler

    def packed_as(encoding: str) -> object:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=b"(*\xb5/", headers={"content-encoding": encoding})
        return handler

    async def seen_headers(request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get("user-agent", ""), status=200 if "Mozilla" in request.headers.get(
            "user-agent", "") else 403)

    async def silent(request: web.Request) -> web.Response:
        await asyncio.sleep(0.6)  # twice the probe's timeout in the test; the teardown waits for it
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/cloudflare-gzip", packed(gzip.compress(CLOUDFLARE_PAGE.encode()), 200))
    app.router.add_get("/bomb", packed(gzip_bomb(256), 200))
    app.router.add_get("/cloudflare-403", page(CLOUDFLARE_PAGE, 403))
    app.router.add_get("/cloudflare-200", page(CLOUDFLARE_PAGE, 200))
    app.router.add_get("/down", page("upstream is down", 503, "text/plain"))
    app.router.add_get("/missing", page("not here", 404, "text/plain"))
    app.router.add_get("/status-499", page("odd", 499, "text/plain"))
    app.router.add_get("/status-500", page("odd", 500, "text/plain"))
    app.router.add_get("/latin-1", packed_plain("café, not UTF-8".encode("latin-1"), 200))
    app.router.add_get("/zstd", packed_as("zstd"))
    app.router.add_get("/headers", seen_headers)
    app.router.add_get("/silent", silent)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_health_of_running_emulator_is_ok(emulator):
    health = await AutonomousAI.get_health(base_url=emulator.base_url)
    assert health == {"url": emulator.base_url, "status": 200, "ok": True}


async def test_health_reads_base_url_from_environment(emulator, monkeypatch):
    monkeypatch.setenv("G4F_AUTONOMOUS_BASE_URL", emulator.base_url)
    health = await AutonomousAI.get_health()
    assert health == {"url": emulator.base_url, "status": 200, "ok": True}


async def test_health_accepts_the_api_key_g4f_passes(emulator):
    # g4f's routes call provider.get_health(api_key=...).
    health = await AutonomousAI.get_health(api_key="from-g4f", base_url=emulator.base_url)
    assert health["ok"] is True


async def test_health_sends_no_chat_request(emulator):
    await AutonomousAI.get_health(base_url=emulator.base_url)
    assert emulator.requests == []


async def test_health_of_closed_port_is_not_ok_with_error():
    url = closed_port_url()
    health = await AutonomousAI.get_health(base_url=url)
    assert health["ok"] is False
    assert health["status"] == 0
    assert health["url"] == url
    assert "ClientConnectorError" in health["error"]
    assert "refused" in health["error"].lower()


async def test_health_of_cloudflare_challenge_is_not_ok(odd_server):
    health = await AutonomousAI.get_health(base_url=odd_server + "/cloudflare-403")
    assert health == {"url": odd_server + "/cloudflare-403", "status": 403, "ok": False,
                      "error": "Cloudflare challenge page"}


async def test_health_of_challenge_served_with_200_is_not_ok(odd_server):
    health = await AutonomousAI.get_health(base_url=odd_server + "/cloudflare-200")
    assert (health["ok"], health["status"], health["error"]) == (False, 200, "Cloudflare challenge page")


async def test_health_decodes_a_compressed_page(odd_server):
    health = await AutonomousAI.get_health(base_url=odd_server + "/cloudflare-gzip")
    assert health == {"url": odd_server + "/cloudflare-gzip", "status": 200, "ok": False,
                      "error": "Cloudflare challenge page"}


@pytest.mark.alone
async def test_health_of_a_gzip_bomb_is_read_in_bounded_slices(odd_server):
    # 256 MiB of zeros in 256 KiB: aiohttp inflated each read whole, megabytes at a time.
    tracemalloc.start()
    try:
        async with LoopTicker() as ticker:
            health = await AutonomousAI.get_health(base_url=odd_server + "/bomb")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert health == {"url": odd_server + "/bomb", "status": 200, "ok": True}
    assert peak < 8 * 2**20
    assert ticker.longest_work < 0.5


async def test_health_of_server_error_is_not_ok(odd_server):
    health = await AutonomousAI.get_health(base_url=odd_server + "/down")
    assert (health["ok"], health["status"], health["error"]) == (False, 503, "HTTP 503")


async def test_health_counts_a_404_as_reachable(odd_server):
    # The upstream's base URL is an API prefix, not a page: any answer below 500 means it is up.
    health = await AutonomousAI.get_health(base_url=odd_server + "/missing")
    assert health == {"url": odd_server + "/missing", "status": 404, "ok": True}


async def test_health_reports_a_bad_base_url_instead_of_raising():
    health = await AutonomousAI.get_health(base_url="ftp://127.0.0.1/api")
    assert health["ok"] is False
    assert health["status"] == 0
    assert "ValueError" in health["error"]


async def test_health_hides_credentials_in_the_url(emulator):
    with_password = emulator.base_url.replace("http://", "http://user:secret@")
    health = await AutonomousAI.get_health(base_url=with_password)
    assert "secret" not in health["url"]
    assert health["url"] == emulator.base_url.replace("http://", "http://***@")


def test_check_command_prints_reachable_and_exits_0(threaded_emulator, capsys):
    status = cli.main(["check", "--base-url", threaded_emulator.base_url])
    assert status == 0
    assert capsys.readouterr().out == f"{threaded_emulator.base_url}: reachable, HTTP 200\n"


def test_check_command_uses_environment_base_url(emulator_env, capsys):
    assert cli.main(["check"]) == 0
    assert capsys.readouterr().out == f"{emulator_env.base_url}: reachable, HTTP 200\n"


def test_check_command_prints_unreachable_and_exits_1(capsys):
    url = closed_port_url()
    status = cli.main(["check", "--base-url", url])
    assert status == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{url}: unreachable, HTTP 0 (ClientConnectorError: ")
    assert out.endswith(")\n")


@pytest.mark.parametrize("status, ok", [(499, True), (500, False)])
async def test_health_counts_statuses_from_500_as_down(odd_server, status, ok):
    health = await AutonomousAI.get_health(base_url=f"{odd_server}/status-{status}")
    expected = {"url": f"{odd_server}/status-{status}", "status": status, "ok": ok}
    assert health == (expected if ok else {**expected, "error": "HTTP 500"})


async def test_health_of_a_page_that_is_not_utf8_is_ok(odd_server):
    health = await AutonomousAI.get_health(base_url=odd_server + "/latin-1")
    assert health == {"url": odd_server + "/latin-1", "status": 200, "ok": True}


async def test_health_of_a_page_it_cannot_decode_names_the_encoding(odd_server):
    health = await AutonomousAI.get_health(base_url=odd_server + "/zstd")
    assert health["ok"] is False
    assert health["error"].startswith(f"ResponseError: {odd_server}/zstd: answer has content-encoding 'zstd'")


async def test_health_asks_as_the_browser_the_upstream_expects(odd_server):
    # Cloudflare in front of the service turns away clients that do not look like a browser.
    health = await AutonomousAI.get_health(base_url=odd_server + "/headers")
    assert health == {"url": odd_server + "/headers", "status": 200, "ok": True}


async def test_health_of_a_silent_server_ends_at_its_timeout(odd_server, monkeypatch):
    monkeypatch.setattr(provider, "HEALTH_TIMEOUT", 0.3)
    health = await asyncio.wait_for(AutonomousAI.get_health(base_url=odd_server + "/silent"), 10)
    assert (health["status"], health["ok"]) == (0, False)
    assert "Timeout" in health["error"]


async def test_health_of_a_bad_url_names_the_url_given(monkeypatch):
    health = await AutonomousAI.get_health(base_url="ftp://user:pw@example.invalid/x")
    assert health["url"] == "ftp://***@example.invalid/x"
    assert "base_url" in health["error"] and "pw" not in health["error"]
