"""Redactor: hiding what a request sent from error texts (pure functions, no timings)."""

from __future__ import annotations

import base64
import json
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from g4f_autonomous import wire
from g4f_autonomous.redact import QUOTE_RUN, REDACTED, Redactor, collapse, message_texts

SECRET = "my secret password is hunter2"


def user(content):
    return [{"role": "user", "content": content}]


def reference(text: str, messages: list[dict], encoded: str = "") -> str:
    """The definition, by brute force: hide every window of QUOTE_RUN characters found in a source form."""
    texts = message_texts(messages)
    plain = [" ".join(t.split()) for t in texts]
    escaped = [" ".join(json.dumps(t, ensure_ascii=flag)[1:-1].split()) for t in texts for flag in (False, True)]
    hidden = [False] * len(text)
    for start in range(len(text) - QUOTE_RUN + 1):
        window = text[start:start + QUOTE_RUN]
        if (
            any(window in form for form in plain)
            or ("\\" in window and any(window in form for form in escaped))
            or (encoded and window in encoded)
        ):
            hidden[start:start + QUOTE_RUN] = [True] * QUOTE_RUN
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


# --- the definition ----------------------------------------------------------

def test_collapse_knows_every_whitespace_character():
    spaces = "".join(chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace())
    text = "a" + spaces + "b" + spaces.replace(" ", "") + "c"
    assert collapse(text) == "a b c"


@given(st.text())
def test_collapse_is_split_and_join(text):
    assert collapse(text) == " ".join(text.split())


ALPHABET = st.sampled_from(list("ab ab \n\t\"\\é\u00a0\u2028🌃\x01"))
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
