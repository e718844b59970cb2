"""Redactor: hiding what a request sent from error texts (pure functions, no timings)."""

from __future__ import annotations

import base64
import json
import re
import sys
from urllib.parse import quote as url_quote
from urllib.parse import quote_plus

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from g4f_autonomous import redact, wire
from g4f_autonomous.redact import (
    QUOTE_RUN,
    REDACTED,
    SECRET_MIN,
    Redactor,
    collapse,
    credential_forms,
    message_texts,
)

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


def reference(text: str, messages: list[dict], encoded: str = "", secrets: tuple[str, ...] = ()) -> str:
    """The definition, by brute force: hide every window of QUOTE_RUN characters found in a source form.

    Plain and JSON forms compare casefolded, the base64 field exactly; a
    window's characters stand for the spans of the text they were read from.
    Credentials are sources too, and are also hidden wherever they occur whole
    (casefolded), down to SECRET_MIN characters.
    """
    texts = message_texts(messages) + list(secrets)
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
        folded = [(piece, first, end) for char, first, end in reading for piece in char.casefold()]
        for secret in secrets:
            secret = secret.casefold()
            for start in range(len(folded) - len(secret) + 1) if len(secret) >= SECRET_MIN else ():
                if "".join(piece for piece, _, _ in folded[start:start + len(secret)]) == secret:
                    for _, first, end in folded[start:start + len(secret)]:
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
@example("X marks the spot X")  # only spaces are stripped at the ends, nothing else
@example("\u3000 wide \u3000")
def test_collapse_is_split_and_join(text):
    assert collapse(text) == " ".join(text.split())


# The joints the Redactor uses (\x00, \x01, a lone surrogate) are in it: a text holding one is read on its own.
CHARACTERS = list("ab ab AB \n\t\"\\é\u00a0\u2028🌃\x00\x01\ud800%+20")
ALPHABET = st.sampled_from(CHARACTERS)
TEXTS = st.lists(st.sampled_from([*CHARACTERS, "\\ud800"]), max_size=40).map("".join)  # and the joint as typed


@st.composite
def quoting_case(draw):
    """Messages, their base64 field, and an error text that may quote any source form."""
    contents = draw(st.lists(TEXTS, min_size=1, max_size=3))
    messages = [{"role": "user", "content": content} for content in contents]
    # A lone surrogate cannot be sent: the provider refuses it before any request, so no field exists.
    encoded = "" if "\ud800" in "".join(contents) else wire.encode_messages(messages)
    secrets = tuple(credential_forms(*draw(st.sampled_from([(None, None), ("al", "ab"), ("t%40k", None), (None, "pa55")]))))
    content = draw(st.sampled_from(contents))
    form = draw(st.sampled_from([
        *secrets,
        content,
        " ".join(content.split()),
        json.dumps(content),
        json.dumps(content, ensure_ascii=False),
        encoded,
        content.upper(),
        url_quote(content, errors="surrogatepass"),
        quote_plus(content, errors="surrogatepass"),
    ]))
    start = draw(st.integers(0, len(form)))
    quote = form[start:start + draw(st.integers(0, 30))]
    text = draw(st.text(ALPHABET, max_size=8)) + quote + draw(st.text(ALPHABET, max_size=8))
    return messages, encoded, secrets, text


@settings(max_examples=400, deadline=None)
@given(quoting_case())
def test_redact_matches_the_brute_force_definition(case):
    messages, encoded, secrets, text = case
    assert Redactor(messages, encoded, secrets).redact(text) == reference(text, messages, encoded, secrets)


# --- cases the definition settles, each once missed by a one-token change ----------------

def test_a_text_of_exactly_quote_run_characters_that_is_a_quote_is_hidden():
    assert Redactor(user(SECRET)).redact(SECRET[:QUOTE_RUN]) == REDACTED
    assert Redactor(user(SECRET)).redact(SECRET[-QUOTE_RUN:].upper()) == REDACTED


def test_a_shared_run_one_short_at_the_end_of_the_text_is_kept():
    assert Redactor(user("abcdefghij")).redact("zzzz abcdefghi") == "zzzz abcdefghi"


def test_whitespace_runs_in_the_text_are_read_as_one_space():
    redactor = Redactor(user(SECRET))
    assert redactor.redact("echo: my secret \n\t password  is hunter2!") == "echo: [redacted]!"


def test_a_url_encoded_quote_at_the_very_start_is_hidden():
    assert Redactor(user(SECRET)).redact(quote_plus(SECRET)) == REDACTED


def test_a_quote_found_at_a_later_place_of_its_piece_is_hidden():
    # "hello" first occurs where the quote does not: the search goes on to the next place.
    assert Redactor(user("hello there, hello world!!")).redact("hello world!!") == REDACTED
    # ... every place in turn, not only the first and the last.
    assert Redactor(user("hello there, hello world!!, hello you")).redact("hello worl") == REDACTED


def test_a_quote_at_an_overlapping_place_of_its_piece_is_hidden():
    # The piece "aaaaa" occurs at 0 and at 1 of the message; the quote is at 1: no place may be skipped.
    assert Redactor(user("aaaaaabcdefgh")).redact("aaaaabcdefgh") == REDACTED


def test_a_json_form_hides_only_the_windows_with_an_escape():
    # "lait!" is shared with the escaped form only next to "\u00e9 au ", never 10 of the user's characters alone.
    assert Redactor(user("café au lait!")).redact("caf\\u00e9 au lait!") == "[redacted]lait!"


def test_a_run_is_widened_only_over_what_the_source_shares():
    # Before the shared run the text reads "ab", the source "ba": neither side is hidden.
    assert Redactor(user("bacdefghijkl")).redact("abcdefghijkl") == "ab[redacted]"


@pytest.mark.parametrize("messages, text", [
    # A message holding the lone surrogate that joins the texts: each text is then read on its own.
    (user('tell me "café"\n now\ud800 and more'), 'x tell me "café" now\ud800 an y'),
    (user('tell me "café"\n now\ud800 and more'), 'x \\"caf\\u00e9\\" now\\ud800 and y'),
    (user('tell me "café"\n now\ud800 and more'), 'x me \\"café\\" now\ud800 a y'),
    ([*user("abcde\ud800fghij"), *user("other")], "x abcde\ud800fghij y"),
    # An ASCII message holding a control character that could join texts.
    ([*user("abcde\x00fghij klm"), *user("more")], "q abcde\x00fghij klm"),
    # A backslash then "ud800" as typed, and escaped backslashes, next to an escaped "é".
    (user("\tC:\\ud800x é"), 'd800x \\u00e9"a'),
    (user('=%\\xBé=" x\\ba%x'), 'by%=%\\\\xB\\u00e9=\\" x\\\\ba%x":B'),
    # Spaces at the ends of messages: collapsed away, as excerpt() does.
    ([*user("hello world "), *user(" other message")], "say hello world and other message here"),
    ([*user("hello world\t"), *user("\nother message")], "s hello world, other message!"),
])
def test_redact_matches_the_definition_on_texts_that_hold_the_joints(messages, text):
    expected = reference(text, messages)
    assert expected != text  # each case quotes something
    assert Redactor(messages).redact(text) == expected


# --- credentials ----------------------------------------------------------------------

def b64(text: str, encoding: str = "latin-1") -> str:
    return base64.b64encode(text.encode(encoding)).decode("ascii")


@pytest.mark.parametrize("login, password, forms", [
    ("alice", "pa%40ss", ["pa%40ss", "pa@ss", "alice:pa%40ss", "alice:pa@ss", b64("alice:pa%40ss"), b64("alice:pa@ss")]),
    # A user name alone (a token as user info): the pair with an empty password, and its Basic token.
    ("t%40k", None, ["t%40k:", "t@k:", b64("t%40k:"), b64("t@k:")]),
    (None, "hunter22", ["hunter22", ":hunter22", b64(":hunter22")]),
    # Not latin-1: aiohttp sends UTF-8.
    ("jörg", "пароль", ["пароль", "jörg:пароль", b64("jörg:пароль", "utf-8")]),
    (None, None, []),
    ("", "", []),
])
def test_credential_forms_are_the_password_the_pair_and_its_basic_token(login, password, forms):
    assert credential_forms(login, password) == sorted(forms)


def test_a_credential_of_secret_min_characters_is_hidden_whole_wherever_it_occurs():
    assert SECRET_MIN == 4
    redactor = Redactor(user("hi"), "", ["pa55"])
    assert redactor.redact("pa55") == REDACTED
    assert redactor.redact("pa55 and PA55, again pa55") == "[redacted] and [redacted], again [redacted]"
    assert Redactor(user("hi"), "", ["pa5"]).redact("pa5 pa5 pa5") == "pa5 pa5 pa5"


def test_overlapping_occurrences_of_a_credential_are_all_hidden():
    assert Redactor(user("hi"), "", ["aaaa"]).redact("x aaaaa y") == "x [redacted] y"


def test_a_short_credential_does_not_stop_the_longer_ones_being_hidden():
    redactor = Redactor(user("hi"), "", credential_forms("zed", "ab"))
    assert redactor.redact("401 for zed:ab") == "401 for [redacted]"


def test_credentials_are_hidden_without_any_message():
    assert Redactor([], "", ["hunter22"]).redact("bad: hunter22") == "bad: [redacted]"
    assert Redactor([], "", []).redact("bad: hunter22") == "bad: hunter22"


# --- the time budget, made deterministic ---------------------------------------------------

def test_an_unspent_budget_checks_everything(monkeypatch):
    # No size floor, and all the time in the world: nothing may be hidden for lack of time.
    monkeypatch.setattr(redact, "_ALWAYS_SCANNED", 0)
    monkeypatch.setattr(redact, "REDACT_SECONDS", 600.0)
    text = "an error that quotes nothing of the prompt at all"
    assert Redactor(user(SECRET)).redact(text) == text


def test_past_the_time_every_call_still_scans_its_floor(monkeypatch):
    # Time is always up; the floor is one character: the first piece's scan is done, nothing after it.
    monkeypatch.setattr(redact, "REDACT_SECONDS", -1.0)
    monkeypatch.setattr(redact, "_ALWAYS_SCANNED", 1)
    text = "quotes nothing of the prompt, long enough"
    assert Redactor(user(SECRET)).redact(text) == "q" + REDACTED


def test_the_json_forms_are_built_when_they_fit_exactly(monkeypatch):
    prompt = "0123456789abcdef" * 4096  # 2**16 characters: the cost below is exact in binary
    monkeypatch.setattr(redact, "_ALWAYS_PREPARED", 0)
    monkeypatch.setattr(redact, "_PREP_SECONDS_ASCII", redact.REDACT_SECONDS / (4 * len(prompt)))
    text = "upstream: C:\\temp\\file.txt not found, and nothing else quoted"
    assert Redactor(user(prompt)).redact(text) == text  # four JSON form costs fit the time: built, nothing quoted


def test_non_ascii_sources_are_costed_at_their_own_slower_rate(monkeypatch):
    monkeypatch.setattr(redact, "_ALWAYS_PREPARED", 0)
    monkeypatch.setattr(redact, "_PREP_SECONDS_ASCII", 0.0)
    monkeypatch.setattr(redact, "_PREP_SECONDS_OTHER", 1.0)
    text = "an error quoting nothing at all"
    assert Redactor(user("plain ascii prompt")).redact(text) == text
    assert Redactor(user("prompt with é in it")).redact(text) == REDACTED
    assert Redactor(user("prompt with é in it")).redact(text[:QUOTE_RUN]) == REDACTED


def test_a_scan_that_stops_at_a_place_counts_only_what_it_read(monkeypatch):
    # The quote's first piece is found at once, and its next place near the end: that scan read up to
    # there, not the whole source. With a floor of exactly what the first two scans read, plus a little,
    # one more piece after the quote is checked ("a" shown), and only then the rest is hidden.
    prompt = SECRET + " " + "".join(f"{index:05d}|" for index in range(2000)) + " my se"
    text = SECRET + " and then nothing quoted at all here"
    monkeypatch.setattr(redact, "REDACT_SECONDS", -1.0)
    monkeypatch.setattr(redact, "_ALWAYS_SCANNED", prompt.find("my se", 1) + len(prompt) + 3)
    assert Redactor(user(prompt)).redact(text) == "[redacted]a[redacted]"


def test_a_quote_that_starts_with_a_whitespace_run_hides_the_whole_run():
    # The run "\t " is read as one space that stands for both characters.
    assert Redactor(user("a b c d e f g h")).redact("X\t b c d e f g h") == "X[redacted]"


def test_without_time_for_the_json_forms_a_backslash_at_the_very_end_is_hidden(monkeypatch):
    prompt = "".join(f"{index:08x} " for index in range(20_000))
    monkeypatch.setattr(redact, "_ALWAYS_PREPARED", 0)
    monkeypatch.setattr(redact, "_PREP_SECONDS_ASCII", redact.REDACT_SECONDS / len(prompt) / 2)
    text = "nothing quoted here, but a path ends in C:\\"
    assert Redactor(user(prompt)).redact(text) == text[:-QUOTE_RUN] + REDACTED
