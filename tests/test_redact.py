"""Redactor: hiding what a request sent from error texts (pure functions, no timings)."""

from __future__ import annotations

import base64
import json
import re
import sys
from urllib.parse import quote as url_quote
from urllib.parse import quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from g4f_autonomous import redact, wire
from g4f_autonomous.redact import QUOTE_RUN, REDACTED, Redactor, collapse, credential_forms, message_texts

SECRET = "my secret password is hunter2"


def user(content):
    return [{"role": "user", "content": content}]


def readings(text: str) -> list[list[tuple[str, int, int]]]:
    """The text as compared: (character, start, end) each; URL-decoded too when it has % or +; spaces merged."""
    found = [[(char, at, at + 1) for at, char in enumerate(text)]]
    if "%" in text or "+" in text:
        decoded, at = [], 0
        while at < len(text):
            end = at
            while re.match("%[0-9a-fA-F]{2}", text[end:end + 3]):
                end += 3
            if end > at:
                decoded += [(char, at, end) for char in bytes.fromhex(text[at:end].replace("%", "")).decode("utf-8", "replace")]
                at = end
            else:
                decoded.append((" " if text[at] == "+" else text[at], at, at + 1))
                at += 1
        found.append(decoded)
    merged_readings = []
    for reading in found:
        merged: list[tuple[str, int, int]] = []
        for char, start, end in reading:
            if char.isspace() and merged and merged[-1][0] == " ":
                merged[-1] = (" ", merged[-1][1], end)
            else:
                merged.append((" " if char.isspace() else char, start, end))
        merged_readings.append(merged)
    return merged_readings


def reference(text: str, messages: list[dict], encoded: str = "") -> str:
    """The definition, by brute force: hide every window of QUOTE_RUN characters found in a source form.

    Plain and JSON forms compare casefolded, the base64 field exactly; a
    window's characters stand for the spans of the text they were read from.
    """
    texts = message_texts(messages)
    plain = [" ".join(t.split()).casefold() for t in texts]
    escaped = [" ".join(json.dumps(t, ensure_ascii=flag)[1:-1].split()).casefold() for t in texts for flag in (False, True)]
    hidden = [False] * len(text)
    for reading in readings(text):
        chars = [char for char, _, _ in reading]
        for start in range(len(chars) - QUOTE_RUN + 1):
            window = "".join(chars[start:start + QUOTE_RUN])
            folded = window.casefold()
            if (
                any(folded in form for form in plain)
                or ("\\" in folded and any(folded in form for form in escaped))
                or (encoded and window in encoded)
            ):
                for _, first, end in reading[start:start + QUOTE_RUN]:
                    hidden[first:end] = [True] * (end - first)
    pieces, start = [], 0
    while start < len(text):
        end = start
        while end < len(text) and hidden[end] == hidden[start]:
            end += 1
        pieces.append(REDACTED if hidden[start] else text[start:end])
        start = end
    return "".join(pieces)


# --- exact results -----------------------------------------------------------

def test_a_quoted_message_is_hidden():
    redactor = Redactor(user(SECRET))
    assert redactor.redact(f"HTTP 400 from /chat: bad input '{SECRET}'") == "HTTP 400 from /chat: bad input '[redacted]'"


def test_a_text_quoting_nothing_comes_back_unchanged():
    redactor = Redactor(user(SECRET))
    assert redactor.redact("HTTP 500 from /chat: internal error") == "HTTP 500 from /chat: internal error"
    assert redactor.redact("short") == "short"
    assert redactor.redact("") == ""


def test_a_run_of_exactly_quote_run_characters_is_hidden_and_one_less_is_kept():
    redactor = Redactor(user("abcdefghij"))
    assert redactor.redact("x abcdefghij y") == "x [redacted] y"
    assert redactor.redact("x abcdefghiX y") == "x abcdefghiX y"  # 9 shared characters


def test_several_runs_each_become_one_marker():
    redactor = Redactor([{"role": "system", "content": "first quoted sentence"}, {"role": "user", "content": SECRET}])
    text = f"got 'first quoted sentence' then '{SECRET}' end"
    assert redactor.redact(text) == "got '[redacted]' then '[redacted]' end"


def test_whitespace_is_collapsed_as_the_excerpt_does():
    redactor = Redactor(user("hello\n\n   world\tof mine"))
    assert redactor.redact("said: hello world of mine!") == "said: [redacted]!"


def test_a_run_across_two_messages_is_not_one_quote():
    redactor = Redactor([{"role": "user", "content": "abcdefg"}, {"role": "user", "content": "hijklmn"}])
    assert redactor.redact("abcdefghijklmn") == "abcdefghijklmn"


def test_text_parts_are_sources_and_other_parts_are_not():
    content = [
        {"type": "text", "text": SECRET},
        {"type": "image_url", "image_url": {"url": "https://example.test/picture.png"}},
    ]
    redactor = Redactor(user(content))
    assert redactor.redact(f"no: {SECRET}") == "no: [redacted]"
    assert redactor.redact("no: https://example.test/picture.png") == "no: https://example.test/picture.png"


def test_any_unicode():
    redactor = Redactor(user("naïve café — 東京の夜 🌃🌃 déjà vu"))
    assert redactor.redact("error «東京の夜 🌃🌃 déjà»") == "error «[redacted]»"


def test_the_json_escaped_form_is_hidden():
    content = 'line one\nsay "café" now'
    redactor = Redactor(user(content))
    assert redactor.redact('{"detail": "line one\\nsay \\"caf\\u00e9\\" now"}') == '{"detail": "[redacted]"}'
    assert redactor.redact('{"detail": "line one\\nsay \\"café\\" now"}') == '{"detail": "[redacted]"}'


def test_the_base64_field_is_hidden_and_what_is_left_does_not_decode_to_the_prompt():
    messages = user(SECRET)
    encoded = wire.encode_messages(messages)
    quoted = encoded[4:80]
    text = f'HTTP 400 from /chat: invalid "messages": "{quoted}"'
    shown = Redactor(messages, encoded).redact(text)
    assert shown == 'HTTP 400 from /chat: invalid "messages": "[redacted]"'
    # Without the field, the quote survives and gives the prompt back.
    survived = Redactor(messages).redact(text)
    assert SECRET[:12] in base64.b64decode(quoted[:72]).decode("utf-8", "replace")
    assert quoted in survived


def test_redaction_is_idempotent_on_its_own_output():
    redactor = Redactor(user(SECRET))
    once = redactor.redact(f"bad '{SECRET}'")
    assert redactor.redact(once) == once


def test_nothing_is_read_until_a_text_is_redacted():
    class Watched(list):
        reads = 0

        def __iter__(self):
            Watched.reads += 1
            return super().__iter__()

    messages = Watched(user(SECRET))
    redactor = Redactor(messages, "")
    assert Watched.reads == 0
    assert redactor.redact(f"x {SECRET}") == "x [redacted]"
    assert Watched.reads >= 1


def test_an_echo_in_other_case_is_hidden():
    redactor = Redactor(user(SECRET))
    assert redactor.redact(f"bad '{SECRET.upper()}'") == "bad '[redacted]'"
    assert redactor.redact("bad 'My Secret Password'") == "bad '[redacted]'"


@pytest.mark.parametrize("echo", [url_quote(SECRET), quote_plus(SECRET), quote_plus(SECRET).upper()])
def test_a_url_encoded_echo_is_hidden(echo):
    assert Redactor(user(SECRET)).redact(f"GET /?q={echo} failed") == "GET /?q=[redacted] failed"


def test_url_decoding_hides_only_the_escapes_of_the_quote():
    text = "bad %22" + url_quote("naïve café déjà vu") + "%22 here"
    assert Redactor(user("naïve café déjà vu")).redact(text) == "bad %22[redacted]%22 here"


def test_a_run_across_two_messages_is_not_one_quote_even_with_a_space():
    redactor = Redactor([{"role": "user", "content": "abcde "}, {"role": "user", "content": " fghij"}])
    assert redactor.redact("abcde fghij") == "abcde fghij"


def test_many_messages_are_one_source_each_still_its_own():
    messages = [{"role": "user", "content": f"message number {index:06d}"} for index in range(20_000)]
    redactor = Redactor(messages, wire.encode_messages(messages))
    assert redactor.redact("HTTP 413: Payload Too Large") == "HTTP 413: Payload Too Large"
    assert redactor.redact("bad: message number 019999!") == "bad: [redacted]!"
    assert redactor.redact("bad: x 98 messag y") == "bad: x 98 messag y"  # only across two messages


PASSWORD = "pa%40ss"  # "pa@ss", as written in a URL


@pytest.mark.parametrize("shown", [
    "pa@ss", "pa%40ss", "PA@SS", "alice:pa@ss", "alice:pa%40ss",
    base64.b64encode(b"alice:pa@ss").decode(), "Basic " + base64.b64encode(b"alice:pa@ss").decode(),
])
def test_credentials_are_hidden_whole_however_short(shown):
    redactor = Redactor(user("hi"), "", credential_forms("alice", PASSWORD))
    hidden = redactor.redact(f"401: bad credentials {shown} for alice")
    assert "pa@ss" not in hidden and "pa%40ss" not in hidden.lower()
    assert base64.b64encode(b"alice:pa@ss").decode() not in hidden
    assert hidden.startswith("401: bad credentials ") and hidden.endswith(" for alice")


def test_a_spent_budget_hides_the_rest_of_the_text(monkeypatch):
    prompt = "".join(f"{index:08x} " for index in range(20_000))
    text = "upstream says: " + prompt[-41:-1]
    assert Redactor(user(prompt)).redact(text) == "upstream says: [redacted]"
    # Out of time at once, but every call may scan two sources' worth.
    monkeypatch.setattr(redact, "REDACT_SECONDS", 0.0)
    monkeypatch.setattr(redact, "_ALWAYS_SCANNED", len(prompt) * 2)
    shown = Redactor(user(prompt)).redact("an error that quotes nothing of the prompt at all, but is long enough")
    assert shown.startswith("an error") and shown.endswith(REDACTED) and len(shown) < 40
    monkeypatch.setattr(redact, "_ALWAYS_SCANNED", 0)
    assert Redactor(user(prompt)).redact(text) == REDACTED


def test_sources_too_large_to_prepare_in_time_hide_the_whole_text(monkeypatch):
    prompt = "".join(f"{index:08x} " for index in range(20_000))
    assert Redactor(user(prompt)).redact("an error quoting nothing at all") == "an error quoting nothing at all"
    monkeypatch.setattr(redact, "_ALWAYS_PREPARED", len(prompt) - 1)
    monkeypatch.setattr(redact, "_PREP_SECONDS_ASCII", 1.0)
    assert Redactor(user(prompt)).redact("an error quoting nothing at all") == REDACTED
    redactor = Redactor(user(prompt))
    monkeypatch.setattr(redact, "_ALWAYS_PREPARED", len(prompt))
    assert redactor.redact("an error quoting nothing at all") == "an error quoting nothing at all"


def test_without_time_for_the_json_forms_only_windows_with_a_backslash_are_hidden(monkeypatch):
    prompt = "".join(f"{index:08x} " for index in range(20_000))
    monkeypatch.setattr(redact, "_ALWAYS_PREPARED", 0)
    # The plain form fits in a call's time, the JSON forms (four times its cost) do not.
    monkeypatch.setattr(redact, "_PREP_SECONDS_ASCII", redact.REDACT_SECONDS / len(prompt) / 2)
    text = "upstream: C:\\temp\\file.txt not found, and nothing else quoted"
    shown = Redactor(user(prompt)).redact(text)
    assert shown == "ups[redacted]not found, and nothing else quoted"  # the 10-character windows of both backslashes


def test_only_one_character_lowers_to_two_and_casefolding_keeps_spans():
    assert [chr(code) for code in range(sys.maxunicode + 1) if len(chr(code).lower()) != 1] == ["\u0130"]
    redactor = Redactor(user("straße nach draußen"))
    assert redactor.redact("x STRASSE NACH DRAUSSEN y") == "x [redacted] y"
    assert redactor.redact("x straße nach draußen y") == "x [redacted] y"


# --- the definition ----------------------------------------------------------

def test_collapse_knows_every_whitespace_character():
    spaces = "".join(chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace())
    text = "a" + spaces + "b" + spaces.replace(" ", "") + "c"
    assert collapse(text) == "a b c"


@given(st.text())
def test_collapse_is_split_and_join(text):
    assert collapse(text) == " ".join(text.split())


ALPHABET = st.sampled_from(list("ab ab AB \n\t\"\\é\u00a0\u2028🌃\x00\x01%+20"))
TEXTS = st.text(ALPHABET, max_size=40)


@st.composite
def quoting_case(draw):
    """Messages, their base64 field, and an error text that may quote any source form."""
    contents = draw(st.lists(TEXTS, min_size=1, max_size=3))
    messages = [{"role": "user", "content": content} for content in contents]
    encoded = wire.encode_messages(messages)
    content = draw(st.sampled_from(contents))
    form = draw(st.sampled_from([
        content,
        " ".join(content.split()),
        json.dumps(content),
        json.dumps(content, ensure_ascii=False),
        encoded,
        content.upper(),
        url_quote(content),
        quote_plus(content),
    ]))
    start = draw(st.integers(0, len(form)))
    quote = form[start:start + draw(st.integers(0, 30))]
    text = draw(st.text(ALPHABET, max_size=8)) + quote + draw(st.text(ALPHABET, max_size=8))
    return messages, encoded, text


@settings(max_examples=400, deadline=None)
@given(quoting_case())
def test_redact_matches_the_brute_force_definition(case):
    messages, encoded, text = case
    assert Redactor(messages, encoded).redact(text) == reference(text, messages, encoded)
