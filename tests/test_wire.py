"""The wire format as pure functions: no server, no event loop."""

from __future__ import annotations

import base64
import contextlib
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from g4f_autonomous import wire

# Any Unicode text but NUL and lone surrogates (which UTF-8 cannot carry):
# emoji, CJK, right-to-left scripts, control characters.
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))


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
    (b'{"messages":"W10=","threadId":"t","stream":true,"aiAgent":"llama"}', "/chat", "messages is empty"),
    (b'{"messages":"/w==","threadId":"t","stream":true,"aiAgent":"llama"}', "/chat", "not base64 of UTF-8 JSON"),
    (b'{"messages":"W10=","threadId":"t","stream":true,"aiAgent":"nope"}', "/chat", "'nope' is not served at /chat"),
])
def test_read_body_names_what_a_strict_upstream_refuses(raw, path, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        wire.read_body(path, raw)


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
