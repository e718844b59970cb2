"""Bad input is refused with an error naming the argument and what is expected,
before any network I/O; the emulator answers garbage requests with 400, never 500."""

from __future__ import annotations

import base64
import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from g4f.errors import ModelNotFoundError
from helpers import ask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from g4f_autonomous import wire
from g4f_autonomous.emulator import BASE_PATH, Emulator
from g4f_autonomous.wire import ENDPOINTS


class CountingEmulator:
    """The emulator's app behind a middleware that counts every HTTP request it sees."""

    def __init__(self) -> None:
        self.emulator = Emulator()
        self.seen = 0
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        @web.middleware
        async def count(request: web.Request, handler: Any) -> web.StreamResponse:
            self.seen += 1
            return await handler(request)

        app = self.emulator.app()
        app.middlewares.append(count)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}{BASE_PATH}"

    async def stop(self) -> None:
        await self._runner.cleanup()


@pytest.fixture
async def server():
    counting = CountingEmulator()
    await counting.start()
    try:
        yield counting
    finally:
        await counting.stop()


GOOD_MESSAGES = [{"role": "user", "content": "hi"}]


async def refused(server: CountingEmulator, error_type: type, model: Any = "llama",
                  messages: Any = GOOD_MESSAGES, **kwargs: Any) -> str:
    """The call must fail with exactly ``error_type`` and the server see nothing."""
    kwargs.setdefault("base_url", server.base_url)
    with pytest.raises(error_type) as caught:
        await ask(model, messages, **kwargs)
    assert type(caught.value) is error_type
    assert server.seen == 0
    return str(caught.value)


# --- messages ---------------------------------------------------------------

BAD_MESSAGES = {
    "not a list": ("hello", "messages must be a list of {'role': ..., 'content': ...} dicts, got str"),
    "a dict": ({"role": "user", "content": "hi"}, "messages must be a list of {'role': ..., 'content': ...} dicts, got dict"),
    "none": (None, "messages must be a list of {'role': ..., 'content': ...} dicts, got NoneType"),
    "empty": ([], "messages is empty: send at least one {'role': 'user', 'content': '...'} message"),
    "item not a dict": (["hi"], "messages[0] must be a dict with 'role' and 'content', got str"),
    "item without role": ([{"content": "hi"}], "messages[0] has no 'role': use 'system', 'user' or 'assistant'"),
    "role not a string": ([{"role": 1, "content": "hi"}], "messages[0] has no 'role': use 'system', 'user' or 'assistant'"),
    "content None": ([{"role": "user", "content": None}],
                     "messages[0].content must be a string or a list of content parts, got NoneType"),
    "content bytes": ([{"role": "user", "content": b"hi"}],
                      "messages[0].content must be a string or a list of content parts, got bytes"),
    "content object": ([{"role": "system", "content": "ok"}, {"role": "user", "content": object()}],
                       "messages[1].content must be a string or a list of content parts, got object"),
    "content part not a dict": ([{"role": "user", "content": ["hi"]}],
                                "messages[0].content[0] must be a dict with a 'type', like {'type': 'text', 'text': '...'}"),
    "text part without text": ([{"role": "user", "content": [{"type": "text", "text": None}]}],
                               "messages[0].content[0] is a text part without a 'text' string"),
}


@pytest.mark.parametrize("case", list(BAD_MESSAGES))
async def test_bad_messages_raise_value_error_naming_the_problem_before_any_request(server, case):
    messages, expected = BAD_MESSAGES[case]
    assert await refused(server, ValueError, messages=messages) == expected


async def test_ten_megabyte_message_gives_the_exact_answer(server):
    text = ("y" * 999 + " ") * 10_000  # 10,000,000 characters in 10,000 words
    items = await ask("llama", [{"role": "user", "content": text}], base_url=server.base_url)
    assert "".join(item for item in items if isinstance(item, str)) == "llama heard: " + text
    assert server.emulator.requests[0].messages == [{"role": "user", "content": text}]


# --- other arguments --------------------------------------------------------

@pytest.mark.parametrize("model", [42, ["llama"], b"llama"])
async def test_model_of_wrong_type_raises_model_not_found_naming_the_type(server, model):
    message = await refused(server, ModelNotFoundError, model=model)
    assert message == f"AutonomousAI: model must be a string such as 'llama', got {type(model).__name__}"


BAD_PROXIES = {
    "no scheme": ("127.0.0.1:8080", "proxy must be an http:// or https:// URL; it has no scheme"),
    "socks scheme": ("socks5://127.0.0.1:1080", "proxy must be an http:// or https:// URL; it has 'socks5'"),
    "port not a number": ("http://127.0.0.1:eighty", "proxy must be an http:// or https:// URL with a valid host and port"),
    "no host": ("http:///path", "proxy must be an http:// or https:// URL with a host name"),
    "spaces": ("http://127.0.0.1 :8080", "proxy must be an http:// or https:// URL without spaces or control characters"),
    "not a string": (8080, "proxy must be an http:// or https:// URL, got int"),
}


@pytest.mark.parametrize("case", list(BAD_PROXIES))
async def test_malformed_proxy_raises_value_error_naming_proxy(server, case):
    proxy, expected = BAD_PROXIES[case]
    assert await refused(server, ValueError, proxy=proxy) == expected


BAD_BASE_URLS = {
    "no scheme": ("127.0.0.1:8080/api/v1/ai", "G4F_AUTONOMOUS_BASE_URL must be an http:// or https:// URL; it has no scheme: "
                  "'127.0.0.1:8080/api/v1/ai'"),
    "spaces": ("http://127.0.0.1:8080/api v1", "G4F_AUTONOMOUS_BASE_URL must be an http:// or https:// URL "
               "without spaces or control characters: 'http://127.0.0.1:8080/api v1'"),
    "ftp scheme": ("ftp://127.0.0.1/api", "G4F_AUTONOMOUS_BASE_URL must be an http:// or https:// URL; it has 'ftp': "
                   "'ftp://127.0.0.1/api'"),
}


@pytest.mark.parametrize("case", list(BAD_BASE_URLS))
async def test_malformed_base_url_env_raises_value_error_naming_the_variable(server, case, monkeypatch):
    value, expected = BAD_BASE_URLS[case]
    monkeypatch.setenv("G4F_AUTONOMOUS_BASE_URL", value)
    assert await refused(server, ValueError, base_url=None) == expected


async def test_malformed_base_url_argument_raises_value_error_naming_base_url(server):
    message = await refused(server, ValueError, base_url="localhost")
    assert message == "base_url must be an http:// or https:// URL; it has no scheme: 'localhost'"


@pytest.mark.parametrize("timeout", ["ten", -1, True, float("nan")])
async def test_bad_timeout_raises_value_error_naming_timeout(server, timeout):
    message = await refused(server, ValueError, timeout=timeout)
    assert message == f"timeout must be a positive number of seconds, got {timeout!r}"


@pytest.mark.parametrize("name", ["timeout", "total_timeout"])
async def test_astronomic_timeouts_raise_value_error_naming_them(server, name):
    message = await refused(server, ValueError, **{name: 10**400})
    assert message == f"{name} must be at most 1e+09 seconds, got an integer of 1329 bits"


@pytest.mark.parametrize("host", ["bad..example", "a" * 64 + ".example"])
async def test_base_url_with_a_bad_host_label_raises_value_error_naming_base_url(server, host):
    message = await refused(server, ValueError, base_url=f"http://{host}/api/v1/ai")
    assert message == ("base_url must be an http:// or https:// URL with a valid host name (labels of 1 to 63 "
                       f"characters): 'http://{host}/api/v1/ai'")


@pytest.mark.parametrize("host", ["bad..example", "a" * 64 + ".example"])
async def test_proxy_with_a_bad_host_label_is_refused_without_echoing_it(server, host):
    message = await refused(server, ValueError, proxy=f"http://alice:s3cret@{host}:3128")
    assert message == "proxy must be an http:// or https:// URL with a valid host name (labels of 1 to 63 characters)"


async def test_a_huge_model_name_gives_a_short_error_still_listing_the_models(server):
    message = await refused(server, ModelNotFoundError, model="m" * 10_000_000)
    assert len(message) < 600
    assert message.startswith("AutonomousAI has no model 'mmmm")
    assert "Models: llama, qwen_coder, hermes, vision, summary. Aliases: llama-3.3-70b → llama" in message


async def test_a_huge_base_url_gives_bounded_errors(server):
    message = await refused(server, ValueError, base_url="ftp://" + "h" * 10_000_000)
    assert message.startswith("base_url must be an http:// or https:// URL; it has 'ftp': 'ftp://hhh")
    assert len(message) < 400
    with pytest.raises(Exception) as caught:  # a valid URL: the error names the endpoint, cut short
        await ask("llama", GOOD_MESSAGES, base_url=server.base_url + "/" + "p" * 10_000_000, timeout=10)
    assert server.base_url + "/ppp" in str(caught.value) and len(str(caught.value)) < 1000


async def test_headers_not_strings_raise_value_error_naming_headers(server):
    message = await refused(server, ValueError, headers={"x-retries": 3})
    assert message == "headers: names and values must be strings, got str: int"


# --- the emulator is strict but never fails on garbage ----------------------

PATHS = sorted(set(ENDPOINTS.values()))


def post(base_url: str, path: str, body: bytes) -> tuple[int, str, bytes]:
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request("POST", url.path + path, body=body, headers={"content-type": "application/json"})
        response = connection.getresponse()
        return response.status, response.getheader("content-type", ""), response.read()
    finally:
        connection.close()


def assert_400_json_or_answer(status: int, content_type: str, raw: bytes) -> None:
    if status == 200:  # the garbage happened to be a valid request
        assert content_type.startswith(("text/event-stream", "application/json"))
        return
    assert status == 400
    assert content_type.startswith("application/json")
    error = json.loads(raw)["error"]
    assert error["code"] == 400 and isinstance(error["message"], str) and error["message"]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Messages that are nearly right: right keys, any values; so the checks
# behind the envelope (roles, contents, content parts) get exercised too.
PART = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url"]) | JSON},
    optional={"text": st.text() | JSON, "image_url": JSON},
) | JSON
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant"]) | JSON},
    optional={"content": st.text() | st.lists(PART, max_size=3) | JSON},
) | JSON
MESSAGES = st.lists(MESSAGE, max_size=3) | JSON
GARBAGE_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@GARBAGE_SETTINGS
@given(path=st.sampled_from(PATHS), body=st.binary(max_size=512))
def test_emulator_answers_arbitrary_bytes_with_400_json(threaded_emulator, path, body):
    assert_400_json_or_answer(*post(threaded_emulator.base_url, path, body))


@GARBAGE_SETTINGS
@given(path=st.sampled_from(PATHS), body=JSON)
def test_emulator_answers_arbitrary_json_with_400_json(threaded_emulator, path, body):
    assert_400_json_or_answer(*post(threaded_emulator.base_url, path, json.dumps(body).encode()))


@GARBAGE_SETTINGS
@given(agent=st.sampled_from(list(ENDPOINTS)), messages=MESSAGES, stream=st.booleans())
def test_emulator_answers_well_formed_body_with_arbitrary_messages_without_500(threaded_emulator, agent, messages, stream):
    # The envelope is right, so the messages themselves are what gets checked.
    encoded = base64.b64encode(json.dumps(messages).encode()).decode()
    body = {"messages": encoded, "threadId": "t", "stream": stream, "aiAgent": agent}
    assert_400_json_or_answer(*post(threaded_emulator.base_url, ENDPOINTS[agent], json.dumps(body).encode()))


@pytest.mark.parametrize("content", [[{"type": "text", "text": 5}], [{"type": "text"}, 7], [{"text": "no type"}]])
def test_emulator_refuses_malformed_content_parts_with_400(threaded_emulator, content):
    messages = [{"role": "user", "content": content}]
    body = {"messages": base64.b64encode(json.dumps(messages).encode()).decode(), "threadId": "t",
            "stream": True, "aiAgent": "llama"}
    status, content_type, raw = post(threaded_emulator.base_url, "/chat", json.dumps(body).encode())
    with pytest.raises(ValueError) as refused:  # the provider's own rule, in its own words
        wire.check_messages(messages)
    assert (status, json.loads(raw)["error"]["message"]) == (400, str(refused.value))


def test_emulator_refuses_deeply_nested_json_with_400(threaded_emulator):
    status, _, raw = post(threaded_emulator.base_url, "/chat", b"[" * 100_000 + b"]" * 100_000)
    assert (status, json.loads(raw)["error"]["message"]) == (400, "body is not JSON")
