"""How long hiding quoted prompt text in an error message holds the caller's event loop.

Run: ``python -m bench.redaction [--before PATH]``. For 1 MB and 10 MB prompts
(ASCII and non-ASCII prose, with newlines) and for requests of 100,000 short
messages (all the same, or all different), times redacting an error text
that quotes the prompt and one that does not, with
:class:`g4f_autonomous.redact.Redactor`: the *first* call (made fresh each
time, so building its source forms is counted: what one error costs) and a
*later* call on the same Redactor. ``--before PATH`` adds the same first call
with the Redactor of another checkout (``PATH/g4f_autonomous/redact.py``,
e.g. the code before a change). For the 1 MB prompts the brute-force
definition the tests check against (``tests/test_redact.py``'s ``reference``)
is timed too and must agree with the Redactor run without time limit. The
last column says how the text came out: ``as is``, ``exact`` (what the
Redactor hides given all the time it wants), ``cut`` (out of time: the rest
hidden too) or ``all`` (the sources were too large to prepare within one
call: the whole quote hidden).
Prints the median of RUNS runs.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from test_redact import reference  # tests/ is on the path (bench/__init__.py)

from g4f_autonomous import errors, redact, wire
from g4f_autonomous.redact import REDACTED, Redactor

RUNS = 3
PREFIX = "HTTP 400 from https://chatgpt.autonomous.ai/api/v1/ai/chat: "
ASCII_LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
OTHER_LETTERS = "абвгдежзиклмнопрстуфхцчшщыэюяéèàçüößñ漢字かなカナ한국어"
NOT_QUOTING = (
    "The request could not be processed because the upstream model is overloaded; "
    "retry later. Request id 7f3a9c2e-41b8-4d2f-9e6a-0c5b8d1e2f34, region us-east-1, code 4711."
)
REASONS = {
    "short reason": "Payload Too Large",
    "94-char reason": "Request Entity Too Large: the request body is larger than the server is willing to process",
}


def prose(size: int, letters: str, seed: int) -> str:
    """Word salad with sentences and paragraphs, ``size`` characters long."""
    rng = random.Random(seed)
    vocabulary = ["".join(rng.choices(letters, k=rng.randint(1, 10))) for _ in range(5000)]
    words, length = [], 0
    while length < size:
        word = rng.choice(vocabulary)
        word += rng.choice([" "] * 12 + [". ", ", ", "\n", "\n\n"])
        words.append(word)
        length += len(word)
    return "".join(words)[:size]


def median_ms(action: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def load_redact(checkout: str) -> ModuleType:
    """``g4f_autonomous/redact.py`` of another checkout, as a module of its own."""
    path = Path(checkout) / "g4f_autonomous" / "redact.py"
    spec = importlib.util.spec_from_file_location("redact_before", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def outcome(text: str, shown: str, unlimited: str) -> str:
    """How the text came out, ``unlimited`` being the redaction without any time limit."""
    if shown == text:
        return "as is"
    if shown == unlimited:
        return "exact"
    return "all" if shown == REDACTED else "cut"


def without_limits(messages: list, encoded: str, text: str) -> str:
    saved = redact.REDACT_SECONDS, redact._ALWAYS_PREPARED
    redact.REDACT_SECONDS, redact._ALWAYS_PREPARED = float("inf"), 2**62
    try:
        return Redactor(messages, encoded).redact(text)
    finally:
        redact.REDACT_SECONDS, redact._ALWAYS_PREPARED = saved


def first_call(redactor_class: Any, messages: list, encoded: str, text: str) -> str:
    return redactor_class(messages, encoded).redact(text)


def cases() -> list[tuple[str, str, list[dict[str, Any]], dict[str, str]]]:
    """(prompt, kind, messages, {excerpt name: error text})."""
    found = []
    for size in (1_000_000, 10_000_000):
        for kind, letters in (("ASCII", ASCII_LETTERS), ("non-ASCII", OTHER_LETTERS)):
            prompt = prose(size, letters, seed=size)
            messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": prompt}]
            middle = size // 2
            quoted = " ".join(prompt[middle:middle + 400].split())
            texts = {
                "quoting": errors.excerpt(PREFIX + "invalid message: " + quoted),
                "not": errors.excerpt(PREFIX + NOT_QUOTING),
                "short reason": REASONS["short reason"],
            }
            found.append((f"{size // 1_000_000} MB", kind, messages, texts))
    same = [{"role": "user", "content": "hello there, a short message"} for _ in range(100_000)]
    distinct = [{"role": "user", "content": f"short message number {index}"} for index in range(100_000)]
    for kind, messages in (("same", same), ("distinct", distinct)):
        found.append(("100k msgs", kind, messages, dict(REASONS)))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.redaction")
    parser.add_argument("--before", help="a checkout whose redact.py is timed too (first call)")
    arguments = parser.parse_args(argv)
    before = load_redact(arguments.before).Redactor if arguments.before else None
    print(f"redacting an error text (an excerpt of at most 200 characters), median of {RUNS} runs, ms")
    header = f"{'prompt':>10} {'text':>9} {'excerpt':>14} {'first':>8} {'later':>8}"
    header += f" {'before':>9} {'ratio':>6}" if before else f" {'brute':>9}"
    print(header + "  result")
    for prompt, kind, messages, texts in cases():
        encoded = wire.encode_messages(messages)
        for name, text in texts.items():
            first = median_ms(functools.partial(first_call, Redactor, messages, encoded, text))
            redactor = Redactor(messages, encoded)
            shown = redactor.redact(text)
            later = median_ms(functools.partial(redactor.redact, text))
            row = f"{prompt:>10} {kind:>9} {name:>14} {first:>8.1f} {later:>8.1f}"
            if before is not None:
                old = median_ms(functools.partial(first_call, before, messages, encoded, text), runs=1)
                row += f" {old:>9.1f} {old / first:>5.0f}x"
            elif prompt == "1 MB":
                brute = median_ms(functools.partial(reference, text, messages, encoded), runs=1)
                assert without_limits(messages, encoded, text) == reference(text, messages, encoded), (prompt, name)
                row += f" {brute:>9.1f}"
            else:
                row += f" {'':>9}"
            print(f"{row}  {outcome(text, shown, without_limits(messages, encoded, text))}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
