"""The error builder (g4f_autonomous/errors.py): pure functions, so each is checked for its exact text and type.

The end-to-end wording (the emulator's faults through the provider) is in
test_faults.py and test_hostile.py; redaction itself in test_redact.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
from types import SimpleNamespace

import aiohttp
import pytest
from g4f.errors import CloudflareError, RateLimitError, ResponseError, ResponseStatusError
from g4f.errors import TimeoutError as G4FTimeoutError
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from g4f_autonomous import errors
from g4f_autonomous.errors import Origin
from g4f_autonomous.redact import Redactor

ENDPOINT = "https://upstream.example/api/v1/ai/chat"
PLAIN = Origin(ENDPOINT)
SECRET = "the vault code is kumquat"
# Hides one phrase, as the provider's Redactor hides the user's messages.
HIDING = Origin(ENDPOINT, lambda text: text.replace(SECRET, "[redacted]"))


def exact(error: BaseException, error_type: type, text: str) -> None:
    assert type(error) is error_type
    assert str(error) == text


# --- excerpt and quote --------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("short", "short"),
    ("  line one\n\tline two \r\n", "line one line two"),
    ("", ""),
    (" \n ", ""),
    ("x" * 200, "x" * 200),
    ("x" * 201, "x" * 200 + "…"),
    ("word " * 100, "word " * 40 + "…"),
    ("a" * 5000, "a" * 200 + "…"),
])
def test_excerpt_collapses_whitespace_and_keeps_at_most_200_characters(text, expected):
    assert errors.excerpt(text) == expected


def test_excerpt_reads_no_further_than_eight_times_the_excerpt():
    # A body of 1,600 spaces and then text quotes nothing: the text is past what is read.
    assert errors.excerpt(" " * 1600 + "hidden") == ""
    assert errors.excerpt(" " * 1599 + "shown") == "s"


def test_quote_without_a_redact_function_is_the_excerpt():
    assert PLAIN.quote(f"  he said:\n{SECRET}  ") == f"he said: {SECRET}"


def test_quote_redacts_the_excerpt_not_the_raw_text():
    seen: list[str] = []

    def redact(text: str) -> str:
        seen.append(text)
        return text.replace(SECRET, "[redacted]")

    # The newline inside the secret is collapsed first, so the redact function finds it.
    assert Origin(ENDPOINT, redact).quote("echo: the vault\n  code is kumquat!") == "echo: [redacted]!"
    assert seen == [f"echo: {SECRET}!"]


def test_quote_with_the_providers_redactor_hides_a_run_of_the_message():
    origin = Origin(ENDPOINT, Redactor([{"role": "user", "content": f"please remember: {SECRET}"}]).redact)
    # The whole shared run goes, ": " included.
    assert origin.quote(f'{{"error": "bad input: {SECRET}"}}') == '{"error": "bad input[redacted]"}'


def test_quote_shows_control_characters_as_replacement_characters():
    assert PLAIN.quote("\x1b[2J\x00wiped\x7f\x9b") == "\ufffd[2J\ufffdwiped\ufffd\ufffd"


def test_quote_replaces_control_characters_after_redacting():
    # A message holding a control character is still found in its echo, then the rest is made harmless.
    origin = Origin(ENDPOINT, lambda text: text.replace("pin\x1b1234", "[redacted]"))
    assert origin.quote("my pin\x1b1234\x1b[0m") == "my [redacted]\ufffd[0m"


# --- cause ------------------------------------------------------------------------

def connector_error(os_error: OSError, kind: type = aiohttp.ClientConnectorError) -> aiohttp.ClientConnectorError:
    key = SimpleNamespace(host="upstream.example", port=443, ssl=True, is_ssl=True)
    return kind(key, os_error)


@pytest.mark.parametrize("error, expected", [
    # asyncio words a refused connect "Connect call failed (...)"; the errno says it better.
    (connector_error(ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")),
     "ClientConnectorError: Connection refused"),
    (connector_error(socket.gaierror(-2, "Name or service not known")),
     "ClientConnectorError: Name or service not known"),
    (connector_error(OSError(113, "No route to host")), "ClientConnectorError: No route to host"),
    (connector_error(ConnectionRefusedError(111, "x"), aiohttp.ClientProxyConnectionError),
     "ClientProxyConnectionError: Connection refused"),
    (aiohttp.ClientResponseError(None, (), status=407, message="Proxy Authentication Required"),
     "ClientResponseError: 407, Proxy Authentication Required"),
    (aiohttp.ClientHttpProxyError(None, (), status=407, message="Proxy Authentication Required"),
     "ClientHttpProxyError: 407, Proxy Authentication Required"),
    (aiohttp.ClientPayloadError("Response payload is not completed"),
     "ClientPayloadError: Response payload is not completed"),
    (aiohttp.ServerDisconnectedError(), "ServerDisconnectedError: Server disconnected"),
    (asyncio.TimeoutError(), "TimeoutError"),
    # told by what it carries: a status without a message is no HTTP answer's error
    (type("StatusOnly", (Exception,), {"status": 502})("went wrong"), "StatusOnly: went wrong"),
    (type("MessageOnly", (Exception,), {"message": "Gone"})("went wrong"), "MessageOnly: went wrong"),
    (ValueError("ValueError"), "ValueError"),
])
def test_cause_names_the_error_type_and_its_short_reason(error, expected):
    assert errors.cause(error) == expected


def test_cause_of_a_response_error_leaves_out_the_url_and_its_credentials():
    url = URL("https://alice:pw@upstream.example/x")
    error = aiohttp.ClientResponseError(aiohttp.RequestInfo(url, "POST", CIMultiDictProxy(CIMultiDict()), url), (),
                                        status=502, message="Bad Gateway")
    assert errors.cause(error) == "ClientResponseError: 502, Bad Gateway"


# --- reaching the service and reading from it -----------------------------------

def test_unreachable_names_the_endpoint_and_the_cause():
    error = errors.unreachable(PLAIN, connector_error(ConnectionRefusedError(111, "x")))
    exact(error, ResponseError, f"cannot reach {ENDPOINT}: ClientConnectorError: Connection refused")


def test_unreachable_redacts_a_cause_that_echoes_the_message():
    error = errors.unreachable(HIDING, aiohttp.ClientResponseError(None, (), status=400, message=f"bad: {SECRET}"))
    exact(error, ResponseError, f"cannot reach {ENDPOINT}: ClientResponseError: 400, bad: [redacted]")


def test_broke_off_before_and_after_the_stream_began():
    cause = aiohttp.ClientPayloadError("Response payload is not completed")
    exact(errors.broke_off(PLAIN, cause, None), ResponseError,
          f"{ENDPOINT}: body broke off: ClientPayloadError: Response payload is not completed")
    exact(errors.broke_off(PLAIN, cause, 0), ResponseError,
          f"{ENDPOINT}: stream broke after 0 deltas: ClientPayloadError: Response payload is not completed")
    exact(errors.broke_off(PLAIN, cause, 7), ResponseError,
          f"{ENDPOINT}: stream broke after 7 deltas: ClientPayloadError: Response payload is not completed")


def test_default_total_timeout_names_the_default_and_how_to_lift_it():
    exact(errors.default_total_timeout(PLAIN, 900), G4FTimeoutError,
          f"{ENDPOINT}: the answer did not end within 900 s, the bound on a call without total_timeout "
          "(answer.DEFAULT_TOTAL_TIMEOUT); pass total_timeout for a longer one")


def test_body_errors_name_the_encoding_the_reason_or_the_limit():
    exact(errors.undecodable(PLAIN, "'zstd' (only gzip, deflate are decoded)"), ResponseError,
          f"{ENDPOINT}: answer has content-encoding 'zstd' (only gzip, deflate are decoded), not decoded")
    exact(errors.corrupt_body(PLAIN, "the gzip body is corrupt (invalid block type)"), ResponseError,
          f"{ENDPOINT}: the gzip body is corrupt (invalid block type)")
    exact(errors.body_too_large(PLAIN, 1024), ResponseError,
          f"{ENDPOINT}: answer body decodes to more than 1024 bytes (answer.MAX_DECODED_SIZE)")
    exact(errors.too_many_values(PLAIN, "an event", 1000), ResponseError,
          f"{ENDPOINT}: an event holds more than 1000 JSON values (answer.MAX_JSON_VALUES)")


def test_body_errors_quote_the_upstreams_words_only_through_the_redactor():
    # The encoding name and the decoder's reason come from the upstream's bytes.
    exact(errors.undecodable(HIDING, f"'{SECRET}'"), ResponseError,
          f"{ENDPOINT}: answer has content-encoding '[redacted]', not decoded")
    exact(errors.corrupt_body(HIDING, f"corrupt: {SECRET}\x1b"), ResponseError,
          f"{ENDPOINT}: corrupt: [redacted]\ufffd")


@pytest.mark.parametrize("build, expected", [
    (lambda: errors.no_answer(PLAIN, 0.5), "no answer within 0.5 s"),
    (lambda: errors.no_answer(PLAIN, 120.0), "no answer within 120 s"),
    (lambda: errors.stalled(PLAIN, 0.25, 3), "stream stalled for 0.25 s after 3 deltas"),
    (lambda: errors.total_timeout(PLAIN, 600), "total_timeout of 600 s reached"),
])
def test_timeouts_are_g4f_timeout_errors_naming_endpoint_and_seconds(build, expected):
    exact(build(), G4FTimeoutError, f"{ENDPOINT}: {expected}")


# --- answers that are not one --------------------------------------------------------

CLOUDFLARE_BODY = "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>…</body></html>"
HTML_BODY = "<!doctype html><html><body><h1>502 Bad Gateway</h1></body></html>"


@pytest.mark.parametrize("status, error_type", [
    (400, ResponseStatusError), (401, ResponseStatusError), (403, ResponseStatusError), (404, ResponseStatusError),
    (429, RateLimitError), (500, ResponseStatusError), (502, ResponseStatusError), (503, ResponseStatusError),
    (504, ResponseStatusError),
])
def test_error_status_type_follows_the_status(status, error_type):
    exact(errors.http_status(PLAIN, status, "text/plain", "no"), error_type, f"HTTP {status} from {ENDPOINT}: no")


@pytest.mark.parametrize("content_type, body, detail", [
    ("application/json", json.dumps({"error": {"message": "model overloaded", "code": 503}}), "model overloaded"),
    ("application/json", json.dumps({"error": {"code": "overloaded"}}), "overloaded"),
    ("application/json", json.dumps({"error": {}}), '{"error": {}}'),
    ("application/json", json.dumps({"error": "plain string"}), "plain string"),
    ("application/json", json.dumps({"message": "top-level message"}), "top-level message"),
    ("application/json", json.dumps({"error": [1, 2]}), "an error list"),
    ("application/json; charset=utf-8", json.dumps(["not", "an", "object"]), '["not", "an", "object"]'),
    ("application/json", '{"error": "cut off', '{"error": "cut off'),
    ("application/json", "[" * 100_000, "[" * 200 + "…"),
    ("text/plain", "  upstream\nis down  ", "upstream is down"),
    ("text/plain", "", "an empty body"),
    ("", "   ", "an empty body"),
    ("text/html", "<p>not a full page</p>", "an HTML page"),
    ("text/plain", HTML_BODY, "an HTML page"),  # sniffed: it starts like a page
    ("text/plain", "see challenges.cloudflare.com", "see challenges.cloudflare.com"),  # not a page: no challenge
])
def test_error_status_quotes_the_body_by_its_kind(content_type, body, detail):
    exact(errors.http_status(PLAIN, 503, content_type, body), ResponseStatusError,
          f"HTTP 503 from {ENDPOINT}: {detail}")


def test_error_status_redacts_what_it_quotes_but_not_its_own_wording():
    body = json.dumps({"error": {"message": f"cannot parse '{SECRET}' at {ENDPOINT}"}})
    exact(errors.http_status(HIDING, 400, "application/json", body), ResponseStatusError,
          f"HTTP 400 from {ENDPOINT}: cannot parse '[redacted]' at {ENDPOINT}")


@pytest.mark.parametrize("status", [200, 403, 503])
@pytest.mark.parametrize("content_type", ["text/html; charset=UTF-8", "application/octet-stream"])
def test_cloudflare_challenge_page_at_any_status(status, content_type):
    exact(errors.http_status(PLAIN, status, content_type, CLOUDFLARE_BODY), CloudflareError,
          f"HTTP {status} from {ENDPOINT}: Cloudflare challenge page; try later or use another proxy")


@pytest.mark.parametrize("status", [300, 301, 308, 399])
def test_every_3xx_status_is_a_redirect_not_followed(status):
    exact(errors.http_status(PLAIN, status, "text/plain", "moved", "https://elsewhere.example/"), ResponseStatusError,
          f"HTTP {status} from {ENDPOINT}: redirect to https://elsewhere.example/ not followed; "
          "set base_url to the service itself")


@pytest.mark.parametrize("location, shown", [
    ("https://elsewhere.example/api", "https://elsewhere.example/api"),
    ("https://alice:s3cret@elsewhere.example/api?x=1", "https://***@elsewhere.example/api?x=1"),
    ("https://token@elsewhere.example/", "https://***@elsewhere.example/"),
    ("http://[::1/", "<unparsable URL>"),
    (None, "nowhere"),
    ("", "nowhere"),
])
def test_redirect_is_named_with_its_location_without_credentials(location, shown):
    exact(errors.http_status(PLAIN, 307, "text/html", HTML_BODY, location), ResponseStatusError,
          f"HTTP 307 from {ENDPOINT}: redirect to {shown} not followed; set base_url to the service itself")


def test_redirect_location_is_redacted_and_shortened_like_any_quote():
    location = f"https://elsewhere.example/?q={SECRET}"
    exact(errors.http_status(HIDING, 302, "", "", location), ResponseStatusError,
          f"HTTP 302 from {ENDPOINT}: redirect to https://elsewhere.example/?q=[redacted] not followed; "
          "set base_url to the service itself")
    long = errors.http_status(PLAIN, 301, "", "", "https://elsewhere.example/" + "p" * 300)
    assert str(long) == (f"HTTP 301 from {ENDPOINT}: redirect to https://elsewhere.example/{'p' * 174}… not followed; "
                         "set base_url to the service itself")


@pytest.mark.parametrize("content_type, body, detail", [
    ("text/plain", "hello, I am not an API", "hello, I am not an API"),
    ("text/html", HTML_BODY, "an HTML page"),
    ("application/octet-stream", "", "an empty body"),
])
def test_success_status_with_something_else_than_an_answer(content_type, body, detail):
    exact(errors.http_status(PLAIN, 200, content_type, body), ResponseError,
          f"{ENDPOINT}: answer is neither an event stream nor JSON: {detail}")


# --- answer objects and events ---------------------------------------------------------

@pytest.mark.parametrize("member, shown", [
    ({"message": "model overloaded", "code": 503}, "model overloaded"),
    ({"code": "rate_limited"}, "rate_limited"),
    ({"code": 429}, "429"),
    ({"type": "server_error"}, "an error object without a message"),
    ("just text", "just text"),
    (42, "42"),
    (1.5, "1.5"),
    (True, "True"),
    ([{"message": "nested"}], "an error list"),
    ({"message": ["deep", ["structure"]]}, "an error list"),
    (None, "an error NoneType"),
])
def test_reported_quotes_the_readable_part_of_the_error_member(member, shown):
    exact(errors.reported(PLAIN, member), ResponseError, f"{ENDPOINT} reported an error: {shown}")


def test_reported_redacts_and_shortens_the_error_member():
    exact(errors.reported(HIDING, {"message": f"echo: {SECRET}"}), ResponseError,
          f"{ENDPOINT} reported an error: echo: [redacted]")
    exact(errors.reported(PLAIN, "e" * 500), ResponseError, f"{ENDPOINT} reported an error: {'e' * 200}…")


@pytest.mark.parametrize("payload, name", [([1], "list"), ("text", "str"), (3, "int"), (None, "NoneType")])
def test_not_an_object_names_what_came_instead(payload, name):
    exact(errors.not_an_object(PLAIN, payload), ResponseError,
          f"{ENDPOINT} sent {name} where an answer object was expected")


def test_not_json_quotes_the_body():
    exact(errors.not_json(PLAIN, '{"choices": [{"message": {"content": "tru'), ResponseError,
          f'{ENDPOINT}: answer is not valid JSON: {{"choices": [{{"message": {{"content": "tru')
    exact(errors.not_json(HIDING, f'{{"echo": "{SECRET}'), ResponseError,
          f'{ENDPOINT}: answer is not valid JSON: {{"echo": "[redacted]')


def test_unreadable_event_names_why_without_quoting_it():
    exact(errors.unreadable_event(PLAIN, RecursionError("maximum recursion depth exceeded")), ResponseError,
          f"{ENDPOINT}: an event could not be read (nested too deeply)")
    exact(errors.unreadable_event(PLAIN, ValueError("Exceeds the limit (4300 digits)")), ResponseError,
          f"{ENDPOINT}: an event could not be read (a number too long to read)")


def test_oversized_event_passes_the_decoders_text_on():
    error = ValueError("event-stream: dropped an event larger than max_event_size=16 bytes")
    exact(errors.oversized_event(PLAIN, error), ResponseError,
          f"{ENDPOINT}: event-stream: dropped an event larger than max_event_size=16 bytes")


@pytest.mark.parametrize("done, reason, expected", [
    (True, None, "answer reached [DONE] without any text"),
    (False, None, "answer reached its end without any text"),
    (True, "length", "answer reached [DONE] without any text (finish reason 'length')"),
    (False, "content_filter", "answer reached its end without any text (finish reason 'content_filter')"),
    (True, "", "answer reached [DONE] without any text"),
])
def test_no_text_says_how_the_answer_ended(done, reason, expected):
    exact(errors.no_text(PLAIN, done, reason), ResponseError, f"{ENDPOINT}: {expected}")


def test_size_limits_name_the_limit():
    exact(errors.json_too_large(PLAIN, 65536), ResponseError, f"{ENDPOINT}: JSON answer is larger than 65536 bytes")
    exact(errors.text_too_long(PLAIN, 65536), ResponseError,
          f"{ENDPOINT}: answer is longer than 65536 characters, the most held for stream=False; stream it instead")

