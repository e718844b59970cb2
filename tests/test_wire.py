"""The wire format as pure functions: no server, no event loop."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from g4f_autonomous import wire

# Any Unicode text but NUL and lone surrogates (which UTF-8 cannot carry):
# emoji, CJK, right-to-left scripts, control characters.
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


def assert_unchained(error: BaseException) -> None:
    """A traceback of ``error`` shows no other exception (which could hold the caller's data)."""
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def decode_messages(encoded: str) -> list:
    return json.loads(base64.b64decode(encoded, validate=True).decode("utf-8"))


# --- messages encoding -------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), TEXT), min_size=1, max_size=4))
def test_encode_messages_round_trips_any_unicode(pairs):
    messages = [{"role": role, "content": content} for role, content in pairs]
    assert decode_messages(wire.encode_messages(messages)) == messages


@contextlib.contextmanager
def encode_slice(size: int):
    """wire.ENCODE_SLICE set for a block (hypothesis runs a test many times: no function-scoped patch)."""
    saved, wire.ENCODE_SLICE = wire.ENCODE_SLICE, size
    try:
        yield
    finally:
        wire.ENCODE_SLICE = saved


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["system", "user"]), TEXT), min_size=1, max_size=4),
       st.integers(min_value=1, max_value=9))
def test_encode_messages_in_slices_is_the_json_of_the_whole(pairs, slice_size):
    # Long texts are encoded piece by piece (so that no one step is long): the result must not show it.
    messages = [{"role": role, "content": content} for role, content in pairs]
    whole = json.dumps(messages, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    with encode_slice(slice_size):
        assert wire.encode_messages(messages) == base64.b64encode(whole).decode("ascii")


@pytest.mark.parametrize("text", ["naïve café", "你好，世界", "مرحبا بالعالم", "שלום", "👩‍👩‍👧 🚀🔥", "tab\tbell\x07esc\x1b\x7f"])
def test_encode_messages_is_base64_of_utf8_json_without_escapes(text):
    encoded = wire.encode_messages([{"role": "user", "content": text}])
    raw = base64.b64decode(encoded, validate=True)
    # Non-ASCII text travels as UTF-8 bytes, not as \\u escapes.
    assert raw.decode("utf-8") == json.dumps([{"role": "user", "content": text}], ensure_ascii=False, separators=(",", ":"))
    assert encoded.isascii()


# --- body and headers -----------------------------------------------------------

def test_build_body_has_exactly_the_four_upstream_keys():
    messages = [{"role": "user", "content": "hi"}]
    body = json.loads(wire.build_body("hermes", wire.encode_messages(messages), "thread-1", True))
    assert body == {"messages": wire.encode_messages(messages), "threadId": "thread-1", "stream": True, "aiAgent": "hermes"}


def test_build_body_carries_stream_false_as_a_json_boolean():
    body = json.loads(wire.build_body("llama", wire.encode_messages([{"role": "user", "content": "hi"}]), "t", False))
    assert body["stream"] is False


def test_build_headers_are_a_browsers():
    headers = wire.build_headers()
    assert headers["accept"] == "*/*"
    assert headers["content-type"] == "application/json"
    assert headers["origin"] == "https://www.autonomous.ai"
    assert headers["referer"] == "https://www.autonomous.ai/"
    assert headers["country-code"]
    assert "/" in headers["time-zone"]
    assert headers["user-agent"].startswith("Mozilla/5.0 (")
    assert "Mobile" not in headers["user-agent"]
    assert not {"authorization", "cookie"} & set(headers)


def test_build_headers_takes_caller_overrides_lower_cased():
    headers = wire.build_headers({"Country-Code": "DE"})
    assert headers["country-code"] == "DE"
    assert "Country-Code" not in headers


# --- endpoints and base URL -------------------------------------------------------

@pytest.mark.parametrize("model, path", [
    ("llama", "/chat"), ("qwen_coder", "/chat"), ("hermes", "/chat-hermes"),
    ("vision", "/chat-vision"), ("summary", "/summary"),
])
def test_endpoint_url_appends_the_models_path(model, path):
    assert wire.endpoint_url("http://127.0.0.1:1/api/v1/ai", model) == "http://127.0.0.1:1/api/v1/ai" + path


def test_resolve_base_url_prefers_the_argument_over_the_env(monkeypatch):
    monkeypatch.setenv(wire.BASE_URL_ENV, "http://127.0.0.1:2/env")
    assert wire.resolve_base_url("http://127.0.0.1:1/arg/") == "http://127.0.0.1:1/arg"
    assert wire.resolve_base_url("http://127.0.0.1:1/AX//") == "http://127.0.0.1:1/AX"  # slashes only


def test_resolve_base_url_uses_the_env_without_an_argument(monkeypatch):
    monkeypatch.setenv(wire.BASE_URL_ENV, "http://127.0.0.1:2/env/")
    assert wire.resolve_base_url(None) == "http://127.0.0.1:2/env"


def test_resolve_base_url_falls_back_to_the_public_service(monkeypatch):
    monkeypatch.delenv(wire.BASE_URL_ENV, raising=False)
    assert wire.resolve_base_url() == "https://chatgpt.autonomous.ai/api/v1/ai"


def test_resolve_base_url_ignores_an_empty_env(monkeypatch):
    monkeypatch.setenv(wire.BASE_URL_ENV, "")
    assert wire.resolve_base_url("") == wire.DEFAULT_BASE_URL


def test_resolve_base_url_refuses_a_non_http_url():
    with pytest.raises(ValueError, match="base_url must be an http:// or https:// URL; it has 'ftp'"):
        wire.resolve_base_url("ftp://127.0.0.1/x")


# --- messages checking and images -------------------------------------------------

def test_check_messages_keeps_only_role_and_content():
    messages = [{"role": "user", "content": "hi", "id": "m1", "metadata": {"x": 1}}]
    assert wire.check_messages(messages) == [{"role": "user", "content": "hi"}]


def test_check_messages_accepts_content_parts():
    parts = [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:,"}}]
    assert wire.check_messages([{"role": "user", "content": parts}]) == [{"role": "user", "content": parts}]


def test_attach_images_appends_image_url_parts_to_the_last_user_message():
    messages = [
        {"role": "user", "content": "first"},
        {"role": "user", "content": "what is this?"},
        {"role": "assistant", "content": "an answer"},
    ]
    attached = wire.attach_images(messages, ["data:image/png;base64,AAAA"])
    assert attached == [
        {"role": "user", "content": "first"},
        {"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ]},
        {"role": "assistant", "content": "an answer"},
    ]
    assert messages[1] == {"role": "user", "content": "what is this?"}  # the caller's list is untouched


# --- answer side ----------------------------------------------------------------

def test_read_chunk_takes_text_and_finish_reason_from_the_first_choice():
    chunk = wire.read_chunk({"choices": [{"delta": {"content": "hi"}, "finish_reason": "length"}]})
    assert (chunk.text, chunk.finish_reason, chunk.usage) == ("hi", "length", None)


def test_read_chunk_accepts_a_top_level_finish_reason():
    chunk = wire.read_chunk({"choices": [{"delta": {}}], "finish_reason": "stop"})
    assert (chunk.text, chunk.finish_reason) == ("", "stop")


def test_read_chunk_reads_a_whole_non_stream_answer_and_usage():
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    payload = {"choices": [{"message": {"role": "assistant", "content": "whole"}, "finish_reason": "stop"}], "usage": usage}
    chunk = wire.read_chunk(payload)
    assert (chunk.text, chunk.finish_reason, chunk.usage) == ("whole", "stop", usage)


# --- the request as the upstream reads it -----------------------------------------

@settings(max_examples=100, deadline=None)
@given(TEXT, st.text(), st.booleans(), st.sampled_from(sorted(wire.ENDPOINTS)))
def test_read_body_is_the_inverse_of_build_body(content, thread_id, stream, model):
    messages = [{"role": "user", "content": content}]
    body = wire.build_body(model, wire.encode_messages(messages), thread_id, stream)
    read, read_messages = wire.read_body(wire.ENDPOINTS[model], body)
    assert read == {"messages": wire.encode_messages(messages), "threadId": thread_id, "stream": stream, "aiAgent": model}
    assert read_messages == messages


@pytest.mark.parametrize("thread_id", ["\ud800", "a\udfffb", "é", "\x00\"\\"])
def test_build_body_is_json_for_any_thread_id(thread_id):
    # A lone surrogate cannot be UTF-8: it goes out as the JSON escape that reads back as itself, and the body stays ASCII.
    body = wire.build_body("llama", "QQ==", thread_id, True)
    assert json.loads(body)["threadId"] == thread_id and body.isascii()


@pytest.mark.parametrize("raw, path, reason", [
    (b"[]", "/chat", "body must be a JSON object"),
    (b'{"messages":"W10=","threadId":"t","stream":1,"aiAgent":"llama"}', "/chat", "field 'stream' must be bool"),
    (b'{"messages":"W10=","threadId":"t","stream":true,"aiAgent":"llama"}', "/chat",
     "messages is empty: send at least one {'role': 'user', 'content': '...'} message"),
    (b'{"messages":"/w==","threadId":"t","stream":true,"aiAgent":"llama"}', "/chat", "messages is not base64 of UTF-8 JSON"),
    (b'{"messages":"W10=","threadId":"t","stream":true,"aiAgent":"nope"}', "/chat", "aiAgent 'nope' is not served at /chat"),
])
def test_read_body_names_what_a_strict_upstream_refuses(raw, path, reason):
    with pytest.raises(ValueError) as refused:
        wire.read_body(path, raw)
    assert str(refused.value) == reason


# --- one set of control characters ----------------------------------------------------------

@pytest.mark.parametrize("character", ["\x00", "\r", "\x1b", "\x7f", "\x85", "\x9b"])
def test_control_characters_c0_del_and_c1_are_refused_in_headers_and_urls(character):
    with pytest.raises(ValueError, match="control character"):
        wire.build_headers({"x-note": f"a{character}b"})
    with pytest.raises(ValueError, match="control characters"):
        wire.resolve_base_url(f"https://example.org/a{character}b")
    with pytest.raises(ValueError, match="not a data:image/ URI"):
        wire.media_urls([f"https://example.org/a{character}.png"], to_data_uri=lambda data, name: "")


@pytest.mark.parametrize("character", ["\t", " ", "\xa0", "é", "\u2028"])
def test_other_characters_pass_in_a_header_value(character):
    assert wire.build_headers({"x-note": f"a{character}b"})["x-note"] == f"a{character}b"


# --- messages: what is refused, in the caller's terms -------------------------------

@pytest.mark.parametrize("messages, message", [
    ((), "messages must be a list of {'role': ..., 'content': ...} dicts, got tuple"),
    ([], "messages is empty: send at least one {'role': 'user', 'content': '...'} message"),
    ([{"role": "user", "content": "hi"}, "hi"], "messages[1] must be a dict with 'role' and 'content', got str"),
    ([{"role": "", "content": "hi"}], "messages[0] has no 'role': use 'system', 'user' or 'assistant'"),
    ([{"role": "user", "content": 5}], "messages[0].content must be a string or a list of content parts, got int"),
    ([{"role": "user", "content": [{"type": "text", "text": "a"}, {"text": "b"}]}],
     "messages[0].content[1] must be a dict with a 'type', like {'type': 'text', 'text': '...'}"),
    ([{"role": "user", "content": [{"type": 3}]}],
     "messages[0].content[0] must be a dict with a 'type', like {'type': 'text', 'text': '...'}"),
    ([{"role": "user", "content": [{"type": "text"}]}], "messages[0].content[0] is a text part without a 'text' string"),
])
def test_check_messages_names_the_first_problem(messages, message):
    with pytest.raises(ValueError) as refused:
        wire.check_messages(messages)
    assert str(refused.value) == message


def test_check_messages_takes_any_mapping_and_parts_of_any_type():
    from types import MappingProxyType

    parts = [{"type": "image_url", "image_url": {"url": "https://example.org/a.png"}}, {"type": "text", "text": ""}]
    messages = [MappingProxyType({"role": "user", "content": parts, "name": "x"})]
    assert wire.check_messages(messages) == [{"role": "user", "content": parts}]
    assert type(wire.check_messages(messages)[0]) is dict


def test_encode_messages_names_the_message_that_cannot_be_sent():
    looped: dict = {"type": "x"}
    looped["self"] = looped
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    cases = [
        ([{"role": "user", "content": "ok"}, {"role": "user", "content": "a\ud800"}],
         "messages[1] contains a lone surrogate that UTF-8 cannot encode"),
        ([{"role": "user", "content": [{"type": "x", "v": object()}]}],
         "messages[0] holds what JSON cannot (Object of type object is not JSON serializable)"),
        ([{"role": "user", "content": "ok"}, {"role": "user", "content": [looped]}],
         "messages[1] holds what JSON cannot (Circular reference detected)"),
        ([{"role": "user", "content": [{"type": "x", "v": deep}]}], "messages[0] is nested too deeply"),
    ]
    for messages, message in cases:
        with pytest.raises(ValueError) as refused:
            wire.encode_messages(messages)
        assert str(refused.value) == message
        assert_unchained(refused.value)


@pytest.mark.parametrize("message, sent", [
    ({"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "d"}}]},
     {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "d"}}]}),
    ({"role": "user", "content": "x", "name": "n"}, {"role": "user", "content": "x"}),
    ({"content": "no role"}, {"role": None, "content": "no role"}),  # unchecked, as the emulator's tests send
])
def test_encode_messages_sends_role_and_content(message, sent):
    with encode_slice(1):
        assert decode_messages(wire.encode_messages([message])) == [sent]


# --- images ----------------------------------------------------------------------------

IMAGE = "data:image/png;base64,AAAA"


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def test_attach_images_without_images_leaves_the_messages_as_they_are():
    messages = [{"role": "user", "content": "hi"}]
    assert wire.attach_images(messages, []) is messages


def test_attach_images_without_a_user_message_adds_one():
    messages = [{"role": "system", "content": "be brief"}]
    attached = wire.attach_images(messages, [IMAGE, "https://example.org/b.png"])
    assert attached == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": ""}, image_part(IMAGE), image_part("https://example.org/b.png")]},
    ]
    assert messages == [{"role": "system", "content": "be brief"}]


def test_attach_images_to_the_last_message_when_it_is_the_users():
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    attached = wire.attach_images(messages, [IMAGE])
    assert attached == [*messages[:2], {"role": "user", "content": [{"type": "text", "text": "c"}, image_part(IMAGE)]}]


def test_attach_images_to_a_first_user_message_with_parts():
    parts = [{"type": "text", "text": "compare"}]
    messages = [{"role": "user", "content": parts}, {"role": "assistant", "content": "ok"}]
    attached = wire.attach_images(messages, [IMAGE])
    assert attached[0] == {"role": "user", "content": [{"type": "text", "text": "compare"}, image_part(IMAGE)]}
    assert parts == [{"type": "text", "text": "compare"}]


def as_data_uri(data, filename):
    return f"data:image/png;base64,{len(data)}:{filename}"


def test_media_urls_turns_data_into_data_uris_and_passes_urls_on():
    media = ([b"abc", ("data:image/gif;base64,R0", None), (b"de", "cat.png"), ["http://example.org/a.png", "a.png"],
              "https://example.org/b.png"])
    assert wire.media_urls(media, as_data_uri) == [
        "data:image/png;base64,3:None", "data:image/gif;base64,R0", "data:image/png;base64,2:cat.png",
        "http://example.org/a.png", "https://example.org/b.png",
    ]


@pytest.mark.parametrize("media, message", [
    ("data:image/png;base64,AAAA", "media must be a list of (data, filename) pairs or of image data, got str"),
    ([b"ok", (b"a", "a.png", "extra")], "media[1] must be image data or a (data, filename) pair with a filename string"),
    ([(b"a", 5)], "media[0] must be image data or a (data, filename) pair with a filename string"),
    (["ftp://example.org/a.png"], "media[0] is a string but not a data:image/ URI or an http(s) URL"),
    (["data:text/plain,hi"], "media[0] is a string but not a data:image/ URI or an http(s) URL"),
])
def test_media_urls_names_what_is_not_an_image(media, message):
    with pytest.raises(ValueError) as refused:
        wire.media_urls(media, as_data_uri)
    assert str(refused.value) == message


@pytest.mark.parametrize("to_data_uri, message", [
    (lambda data, filename: Path("/nonexistent/image.png").read_bytes(), "media[0] is not an image g4f can read (FileNotFoundError)"),
    (lambda data, filename: b"data:image/png", "media[0] is not an image g4f can read"),
    (lambda data, filename: "image/png;base64,AAAA", "media[0] is not an image g4f can read"),
])
def test_media_urls_names_data_g4f_cannot_read(to_data_uri, message):
    with pytest.raises(ValueError) as refused:
        wire.media_urls([b"not an image"], to_data_uri)
    assert str(refused.value) == message
    assert_unchained(refused.value)


# --- the request as the upstream reads it: more refusals ----------------------------------

def body_of(**fields) -> bytes:
    return json.dumps({"messages": "W3sicm9sZSI6InVzZXIiLCJjb250ZW50IjoiaGkifV0=", "threadId": "t", "stream": True,
                       "aiAgent": "llama", **fields}).encode()


@pytest.mark.parametrize("raw, reason", [
    (b"{", "body is not JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "body is not JSON"),
    (b'{"threadId":"t","stream":true,"aiAgent":"llama"}', "missing field 'messages'"),
    (body_of(threadId=7), "field 'threadId' must be str"),
    (body_of(aiAgent=None), "field 'aiAgent' must be str"),
    (body_of(messages="W10=\n"), "messages is not valid base64"),
    (body_of(messages="W10"), "messages is not valid base64"),
    (body_of(messages=base64.b64encode(b"[" * 100_000).decode()), "messages is not base64 of UTF-8 JSON"),
    (body_of(messages=base64.b64encode(b'[{"role":"user"}]').decode()),
     "messages[0].content must be a string or a list of content parts, got NoneType"),
])
def test_read_body_refuses_exactly_what_a_strict_upstream_would(raw, reason):
    with pytest.raises(ValueError) as refused:
        wire.read_body("/chat", raw)
    assert str(refused.value) == reason


def test_read_body_returns_the_body_and_its_messages():
    body, messages = wire.read_body("/chat", body_of(threadId="t-1"))
    assert body["threadId"] == "t-1" and messages == [{"role": "user", "content": "hi"}]


# --- headers -----------------------------------------------------------------------------

def test_build_headers_strips_names_and_keeps_tabs_in_values():
    headers = wire.build_headers({" X-Note ": "a\tb", "x-other": ""})
    assert headers["x-note"] == "a\tb" and headers["x-other"] == ""
    assert headers == {**wire.build_headers(), "x-note": "a\tb", "x-other": ""}


@pytest.mark.parametrize("extra, message", [
    ([("x-note", "a")], "headers must be a dict of strings, got list"),
    ({5: "a"}, "headers: names and values must be strings, got int: str"),
    ({"x-note\r\n": "a"}, "headers: 'x-note' contains CR, LF or another control character"),
    ({"x" * 50 + "\n": "a"}, f"headers: {'x' * 40!r} contains CR, LF or another control character"),
    ({"host:evil": "a"}, "headers: 'host:evil' is not a header name (letters, digits and !#$%&'*+-.^_`|~)"),
    ({"y" * 50 + " z": "a"}, f"headers: {'y' * 40!r} is not a header name (letters, digits and !#$%&'*+-.^_`|~)"),
    ({"Proxy-Authorization": "Basic x"},
     "headers: 'proxy-authorization' cannot be set: it controls how the request is framed or routed "
     "(use the proxy argument for a proxy)"),
])
def test_build_headers_names_what_is_refused(extra, message):
    with pytest.raises(ValueError) as refused:
        wire.build_headers(extra)
    assert str(refused.value) == message


@pytest.mark.parametrize("name", ["Host", "content-length", "Transfer-Encoding", "connection", "keep-alive", "te",
                                  "trailer", "upgrade", "expect", "proxy-connection"])
def test_build_headers_refuses_framing_and_routing_headers(name):
    with pytest.raises(ValueError, match=f"'{name.lower()}' cannot be set"):
        wire.build_headers({name: "x"})


# --- URLs --------------------------------------------------------------------------------

def test_configured_base_url_says_where_it_came_from(monkeypatch):
    monkeypatch.delenv(wire.BASE_URL_ENV, raising=False)
    assert wire.configured_base_url() == (wire.DEFAULT_BASE_URL, "default")
    monkeypatch.setenv(wire.BASE_URL_ENV, "")
    assert wire.configured_base_url() == (wire.DEFAULT_BASE_URL, "default")
    monkeypatch.setenv(wire.BASE_URL_ENV, "not a url")
    assert wire.configured_base_url() == ("not a url", wire.BASE_URL_ENV)
    assert wire.configured_base_url(7) == (7, "base_url")


def test_a_bad_base_url_from_the_env_is_named_by_the_variable(monkeypatch):
    monkeypatch.setenv(wire.BASE_URL_ENV, "ftp://127.0.0.1/x")
    with pytest.raises(ValueError) as refused:
        wire.resolve_base_url()
    assert str(refused.value) == (
        "G4F_AUTONOMOUS_BASE_URL must be an http:// or https:// URL; it has 'ftp': 'ftp://127.0.0.1/x'")


@pytest.mark.parametrize("proxy, expected", [
    (None, None), ("", None), ("http://127.0.0.1:3128", "http://127.0.0.1:3128"),
    ("HTTPS://user:secret@proxy.example:8443/", "HTTPS://user:secret@proxy.example:8443/"),
])
def test_check_proxy_takes_an_http_url_or_nothing(proxy, expected):
    assert wire.check_proxy(proxy) == expected


@pytest.mark.parametrize("proxy, message", [
    ("socks5://user:secret@host:1080", "proxy must be an http:// or https:// URL; it has 'socks5'"),
    ("http://user:secret@host:x", "proxy must be an http:// or https:// URL with a valid host and port"),
    (5, "proxy must be an http:// or https:// URL, got int"),
])
def test_a_bad_proxy_is_named_without_its_value(proxy, message):
    with pytest.raises(ValueError) as refused:
        wire.check_proxy(proxy)
    assert str(refused.value) == message


@pytest.mark.parametrize("url, message", [
    (5, "base_url must be an http:// or https:// URL, got int"),
    ("http://host/a b", "base_url must be an http:// or https:// URL without spaces or control characters: "
                        "'http://host/a b'"),
    ("127.0.0.1:8080", "base_url must be an http:// or https:// URL; it has no scheme: '127.0.0.1:8080'"),
    ("1http://x", "base_url must be an http:// or https:// URL; it has no scheme: '1http://x'"),
    ("ws://host/a?next=http://b", "base_url must be an http:// or https:// URL; it has 'ws': 'ws://host/a?next=http://b'"),
    ("http://host:port/", "base_url must be an http:// or https:// URL with a valid host and port: 'http://host:port/'"),
    ("http://[::1/", "base_url must be an http:// or https:// URL with a valid host and port: '<unparsable URL>'"),
    ("http:///path", "base_url must be an http:// or https:// URL with a host name: 'http:///path'"),
    ("http://bad..example/", "base_url must be an http:// or https:// URL with a valid host name "
                             "(labels of 1 to 63 characters): 'http://bad..example/'"),
    ("http://u:pw@host:x/", "base_url must be an http:// or https:// URL with a valid host and port: 'http://***@host:x/'"),
])
def test_resolve_base_url_names_what_is_wrong(url, message):
    with pytest.raises(ValueError) as refused:
        wire.resolve_base_url(url)
    assert str(refused.value) == message
    assert_unchained(refused.value)


@pytest.mark.parametrize("url, shown", [
    ("https://host/a?b=c", "https://host/a?b=c"),
    ("https://user:secret@host:8443/a", "https://***@host:8443/a"),
    ("https://user@host/", "https://***@host/"),
    ("https://:secret@host/", "https://***@host/"),
    ("http://us@r:p@ss@host/x", "http://***@host/x"),
    ("http://[::1/", "<unparsable URL>"),
])
def test_redact_url_hides_user_and_password(url, shown):
    assert wire.redact_url(url) == shown


@pytest.mark.parametrize("value, shown", [
    ("x" * 200, repr("x" * 200)[:200] + "…"),
    ("x" * 201, repr("x" * 200) + "… (201 characters)"),
    ("x" * 198, repr("x" * 198)),
    (list(range(60)), repr(list(range(60)))[:200] + "…"),
    (7, "7"),
])
def test_bounded_quotes_at_most_200_characters(value, shown):
    assert wire.bounded(value) == shown


# --- answer side: what an event contributes ---------------------------------------------------

@pytest.mark.parametrize("payload, expected", [
    ([{"choices": []}], None),
    ({"error": {"message": "busy"}, "choices": [{"error": "other"}]}, wire.Chunk(error={"message": "busy"})),
    ({"choices": [{"error": {"message": "busy"}, "delta": {}}]}, wire.Chunk(error={"message": "busy"})),
    ({"error": "", "choices": [{"error": 0}]}, wire.Chunk()),
    ({"choices": [{"delta": {"role": "assistant"}}]}, wire.Chunk(role="assistant")),
    ({"choices": [{"delta": {"role": "assistant", "content": "hi"}}]}, wire.Chunk(text="hi")),
    ({"choices": [{"delta": {"role": "", "content": ""}}]}, wire.Chunk()),
    ({"choices": [{"delta": {"role": 5, "content": 5}}]}, wire.Chunk()),
    ({"choices": [{"delta": {}, "message": {"content": "whole"}}]}, wire.Chunk(text="whole")),
    ({"choices": [{"delta": {"content": "a\ud800b\udfff"}}]}, wire.Chunk(text="a\ufffdb\ufffd")),
    ({"choices": [{"delta": {"content": "жé"}}]}, wire.Chunk(text="жé")),
    ({"choices": ["text"], "finish_reason": "stop"}, wire.Chunk(finish_reason="stop")),
    ({"choices": {"0": {}}}, wire.Chunk()),
    ({"choices": [{"finish_reason": "length"}], "finish_reason": "stop"}, wire.Chunk(finish_reason="length")),
    ({"choices": [{"finish_reason": ""}], "finish_reason": "stop"}, wire.Chunk(finish_reason="stop")),
    ({"finish_reason": "x" * 64}, wire.Chunk(finish_reason="x" * 64)),
    ({"finish_reason": "x" * 65}, wire.Chunk()),
    ({"finish_reason": "s"}, wire.Chunk(finish_reason="s")),
    ({"finish_reason": "stop\x1b"}, wire.Chunk()),
    ({"finish_reason": 1}, wire.Chunk()),
    ({"usage": {"prompt_tokens": 0, "completion_tokens": 2**53 - 1, "total_tokens": 2**53}},
     wire.Chunk(usage={"prompt_tokens": 0, "completion_tokens": 2**53 - 1})),
    ({"usage": {"prompt_tokens": -1, "completion_tokens": True, "total_tokens": 1.0}}, wire.Chunk()),
    ({"usage": [1, 2, 3]}, wire.Chunk()),
])
def test_read_chunk_keeps_only_what_the_provider_passes_on(payload, expected):
    assert wire.read_chunk(payload) == expected


# --- counting JSON values before parsing --------------------------------------------------------

@pytest.mark.parametrize("character", ["[", "{", ",", ":"])
def test_each_opening_or_separating_character_adds_a_value(character):
    assert wire.json_values_over(character * 3, 2)
    assert not wire.json_values_over(character * 3, 3)


@pytest.mark.parametrize("text, limit, over", [
    ('["a,b", 1]', 2, False),  # 3 such characters, one of them in a string: 2 values
    ('["a,b", 1]', 1, True),
    ('"a,b"', 0, False),  # a string is no value
    ('"a," "b,"', 0, True),  # strings side by side: no JSON, counted high
    ('"a," "b"', 1, False),  # at most ``limit`` such characters anywhere: never over
    ('{"k,": "v:"}', 2, False),
    ('{"k,": "v:", "w": ["x"]}', 4, True),
])
def test_json_values_are_counted_outside_strings(text, limit, over):
    assert wire.json_values_over(text, limit) is over


# --- what a body looks like -------------------------------------------------------------------------

@pytest.mark.parametrize("content_type, body, html", [
    ("text/html; charset=utf-8", "{}", True),
    ("", " \r\n<!DOCTYPE html><html>", True),
    ("application/octet-stream", "<HTML><body>", True),
    ("text/plain", "error: <html> not here", False),
    ("", "<htm", False),
])
def test_looks_like_html(content_type, body, html):
    assert wire.looks_like_html(content_type, body) is html


@pytest.mark.parametrize("body", [
    "<title>Just a moment...</title>", "<title>Attention Required! | Cloudflare</title>", '<div id="cf-please-wait">',
    '<div id="cf-spinner-please-wait">', '<p id="cf-cloudflare-status">', "https://challenges.cloudflare.com/turnstile",
    "window._cf_chl_opt = {}",
])
def test_each_cloudflare_challenge_is_recognised(body):
    assert wire.is_cloudflare_challenge(f"<html>{body}</html>")


def test_an_ordinary_page_is_no_challenge():
    assert not wire.is_cloudflare_challenge("<html><title>Moment</title>cloudflare</html>")


@pytest.mark.parametrize("content_type, head, json_like", [
    ("application/json; charset=utf-8", b"oops", True), ("text/plain", b" \n{", True), ("", b"[1]", True),
    ("text/plain", b"ok {", False), ("", b"", False),
])
def test_looks_like_json(content_type, head, json_like):
    assert wire.looks_like_json(content_type, head) is json_like


@pytest.mark.parametrize("head, events", [
    (b"data: {}", True), (b"\xef\xbb\xbf\r\n event: x", True), (b"id: 1", True), (b"retry: 5", True),
    (b": keep-alive", True), (b"\t\ndata:", True), (b"{}", False), (b"datum: x", False), (b"", False),
    (b"Xdata: {}", False),
])
def test_looks_like_events(head, events):
    assert wire.looks_like_events(head) is events
