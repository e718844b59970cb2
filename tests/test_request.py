"""request.build_request: one checked request from g4f's arguments, without any I/O."""

from __future__ import annotations

import base64
import gc
import json
import tracemalloc

import pytest

from g4f_autonomous import wire
from g4f_autonomous.request import build_request, endpoint_for, headers_for, positive_seconds, thread_id_of

MESSAGES = [{"role": "user", "content": "hi"}]
BASE = "http://127.0.0.1:9/api/v1/ai"


def test_body_carries_the_model_thread_stream_flag_and_encoded_messages():
    request = build_request(model="hermes", messages=MESSAGES, base_url=BASE, stream=False,
                            conversation={"thread_id": "thread-7"})
    body = json.loads(request.body)
    assert body == {"messages": wire.encode_messages(MESSAGES), "threadId": "thread-7", "stream": False,
                    "aiAgent": "hermes"}
    assert json.loads(base64.b64decode(body["messages"])) == MESSAGES
    assert (request.endpoint, request.thread_id) == (BASE + "/chat-hermes", "thread-7")


def test_each_call_gets_a_fresh_thread_without_a_conversation():
    first, second = (build_request(model="llama", messages=MESSAGES, base_url=BASE) for _ in range(2))
    assert first.thread_id != second.thread_id


def test_proxy_credentials_for_plain_http_go_into_this_requests_headers_only():
    with_proxy = build_request(model="llama", messages=MESSAGES, base_url=BASE, proxy="http://u:p@127.0.0.1:3128")
    assert with_proxy.proxy == "http://127.0.0.1:3128"
    assert with_proxy.headers["Proxy-Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    # The headers without a proxy are shared between calls: they must not have caught the credentials.
    without = build_request(model="llama", messages=MESSAGES, base_url=BASE)
    assert "Proxy-Authorization" not in without.headers
    assert without.headers == wire.build_headers()


def test_proxy_credentials_for_https_go_to_the_connect_request():
    request = build_request(model="llama", messages=MESSAGES, base_url="https://example.invalid/api",
                            proxy="http://u:p@127.0.0.1:3128")
    assert request.proxy_headers == {"Proxy-Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
    assert "Proxy-Authorization" not in request.headers


def test_headers_without_extras_are_shared_and_bad_ones_still_fail():
    assert headers_for(None) is headers_for({})
    assert headers_for({"x-a": "1"})["x-a"] == "1"
    with pytest.raises(ValueError, match="names and values must be strings"):
        headers_for({"x-a": ["unhashable"]})
    with pytest.raises(ValueError, match="'host' cannot be set"):
        headers_for({"Host": "internal.example"})


@pytest.mark.alone
def test_callers_header_values_do_not_outlive_the_call():
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(10):
            build_request(model="llama", messages=MESSAGES, base_url=BASE, headers={"x-big": f"{index}" * 200_000})
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 200_000  # one value is 200 kB; a cache kept all ten


def test_credentials_of_the_base_url_and_proxy_are_hidden_in_quotes():
    request = build_request(model="llama", messages=MESSAGES, base_url="http://bob:b%40se-pw@127.0.0.1:9/api",
                            proxy="http://alice:pr0xy@127.0.0.1:3128")
    echoed = ("authorization: Basic " + base64.b64encode(b"bob:b@se-pw").decode()
              + " proxy-authorization: Basic " + base64.b64encode(b"alice:pr0xy").decode() + " b@se-pw PR0XY")
    shown = request.origin.quote(echoed)
    assert shown == "authorization: Basic [redacted] proxy-authorization: Basic [redacted] [redacted] [redacted]"


def test_endpoint_prefers_the_argument_then_the_environment_value(monkeypatch):
    monkeypatch.setenv(wire.BASE_URL_ENV, "http://127.0.0.1:8/env")
    assert endpoint_for(BASE, "vision") == (BASE + "/chat-vision", BASE + "/chat-vision")
    assert endpoint_for(None, "summary")[0] == "http://127.0.0.1:8/env/summary"
    assert endpoint_for("http://u:p@127.0.0.1:9/x", "llama") == (
        "http://u:p@127.0.0.1:9/x/chat", "http://***@127.0.0.1:9/x/chat")


@pytest.mark.parametrize("value, expected", [(None, 7.0), (0, 7.0), (2, 2.0), (0.5, 0.5)])
def test_positive_seconds(value, expected):
    assert positive_seconds("timeout", value, 7.0) == expected


@pytest.mark.parametrize("value", [-1, True, "3", float("nan"), float("inf")])
def test_positive_seconds_refuses_what_is_not_a_positive_number(value):
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
        positive_seconds("timeout", value, 7.0)


@pytest.mark.parametrize("conversation, expected", [
    (None, None), ({"thread_id": "t"}, "t"), ({"thread_id": ""}, None), ({"thread_id": 5}, None),
    (type("Conversation", (), {"thread_id": "obj"})(), "obj"),
    (object(), None),  # another provider's conversation, without a thread
])
def test_thread_id_of(conversation, expected):
    assert thread_id_of(conversation) == expected


def test_new_threads_are_random_version_4_uuids():
    import uuid

    ids = {build_request(model="llama", messages=MESSAGES, base_url=BASE).thread_id for _ in range(200)}
    assert len(ids) == 200
    assert all(uuid.UUID(value).version == 4 and str(uuid.UUID(value)) == value for value in ids)


@pytest.mark.parametrize("thread_id", ["plain", 'quo"te', "back\\slash", "line\nbreak", "ünïcode"])
def test_body_is_the_json_of_its_four_fields_for_any_thread_id(thread_id):
    body = wire.build_body("llama", "QUJD", thread_id, True)
    assert json.loads(body) == {"messages": "QUJD", "threadId": thread_id, "stream": True, "aiAgent": "llama"}
    assert body.isascii()


def test_a_proxy_user_name_alone_leaves_the_url_for_the_header():
    # A token given as the user name, no password: it must leave the URL aiohttp quotes in its errors.
    request = build_request(model="llama", messages=MESSAGES, base_url=BASE, proxy="http://s3cr3t-token@127.0.0.1:3128")
    assert request.proxy == "http://127.0.0.1:3128"
    assert request.headers["Proxy-Authorization"] == "Basic " + base64.b64encode(b"s3cr3t-token:").decode()


def test_images_without_a_user_message_come_in_a_user_message_of_their_own():
    request = build_request(model="vision", messages=[{"role": "system", "content": "be brief"}], base_url=BASE,
                            media=["https://example.invalid/cat.png"])
    assert json.loads(base64.b64decode(json.loads(request.body)["messages"])) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": ""},
                                     {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}}]},
    ]


def test_without_a_base_url_the_request_goes_to_the_public_service(monkeypatch):
    # Built only: nothing is sent.
    monkeypatch.delenv(wire.BASE_URL_ENV, raising=False)
    request = build_request(model="hermes", messages=MESSAGES, proxy="http://u:p@127.0.0.1:3128")
    assert request.endpoint == "https://chatgpt.autonomous.ai/api/v1/ai/chat-hermes"
    assert request.origin.endpoint == request.endpoint
    assert request.proxy_headers == {"Proxy-Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
    assert request.headers is headers_for(None)
    assert (request.seconds, request.total_timeout, json.loads(request.body)["stream"]) == (120.0, None, True)
    assert build_request(model="llama", messages=MESSAGES).proxy_headers is None


@pytest.mark.parametrize("value, shown", [
    (1e10, "1e+10"), (10**10, "10000000000"), (10**150, str(10**150)), (10**300, "an integer of 997 bits"),
    (2**599, str(2**599)), (2**600, "an integer of 601 bits"),  # up to 600 bits an integer is shown whole
])
def test_seconds_past_the_limit_are_refused_naming_the_limit(value, shown):
    with pytest.raises(ValueError) as caught:
        positive_seconds("total_timeout", value, None)
    assert str(caught.value) == f"total_timeout must be at most 1e+09 seconds, got {shown}"


def test_seconds_at_the_limit_are_taken():
    assert positive_seconds("timeout", 10**9, None) == 1e9
    assert positive_seconds("timeout", 0.0, None) is None


@pytest.mark.parametrize("proxy, credentials", [
    ("http://a%40b:p%3Aw@127.0.0.1:3128", "a@b:p:w".encode("latin-1")),  # percent-encoded, as URLs carry them
    ("http://j%C3%BCrgen:s%C3%A9same@127.0.0.1:3128", "jürgen:sésame".encode("latin-1")),  # what aiohttp sends
    ("http://u:%E2%82%AC@127.0.0.1:3128", "u:€".encode()),  # no Latin-1 form: UTF-8
    ("http://u:p@ss@127.0.0.1:3128", b"u:p@ss"),  # an "@" left unencoded: the host is after the last one
])
def test_proxy_credentials_are_decoded_then_encoded_as_aiohttp_would(proxy, credentials):
    request = build_request(model="llama", messages=MESSAGES, base_url=BASE, proxy=proxy)
    assert request.proxy == "http://127.0.0.1:3128"
    assert request.headers["Proxy-Authorization"] == "Basic " + base64.b64encode(credentials).decode()


def test_a_long_base_url_is_named_shortened_in_errors():
    base_url = "http://127.0.0.1:9/" + "a" * 300
    request = build_request(model="llama", messages=MESSAGES, base_url=base_url)
    assert request.endpoint == base_url + "/chat"
    assert request.origin.endpoint == (base_url + "/chat")[:wire.QUOTED_LIMIT] + "…"
    at_the_limit = "http://127.0.0.1:9/" + "a" * (wire.QUOTED_LIMIT - len("http://127.0.0.1:9//chat"))
    assert build_request(model="llama", messages=MESSAGES, base_url=at_the_limit).origin.endpoint == (
        at_the_limit + "/chat")


@pytest.mark.parametrize("base_url", [b"http://127.0.0.1:9/api", 5, ["http://127.0.0.1:9/api"]])
def test_a_base_url_that_is_not_a_string_is_a_value_error_naming_it(base_url):
    with pytest.raises(ValueError, match="base_url"):
        build_request(model="llama", messages=MESSAGES, base_url=base_url)


def test_an_empty_base_url_means_the_configured_one(monkeypatch):
    monkeypatch.setenv(wire.BASE_URL_ENV, "http://127.0.0.1:8/env")
    assert build_request(model="llama", messages=MESSAGES, base_url="").endpoint == "http://127.0.0.1:8/env/chat"
    assert build_request(model="llama", messages=MESSAGES).endpoint == "http://127.0.0.1:8/env/chat"
