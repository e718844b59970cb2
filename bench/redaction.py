"""How long hiding quoted prompt text in an error message takes.

Run: ``python -m bench.redaction``. For 1 MB and 10 MB prompts (ASCII and
non-ASCII prose, with newlines), times redacting a 200-character excerpt that
quotes the prompt and one that does not, with :class:`g4f_autonomous.redact.Redactor`
(made fresh each time, so building its source forms is counted) and with the
brute-force definition the tests check it against (every 10-character window searched in every
source form, ``tests/test_redact.py``'s ``reference``: the method before it), in the same run.
Prints the median of RUNS runs.
"""

from __future__ import annotations

import functools
import random
import statistics
import time
from collections.abc import Callable

from test_redact import reference  # tests/ is on the path (bench/__init__.py)

from g4f_autonomous import errors, wire
from g4f_autonomous.redact import Redactor

RUNS = 5
SIZES = (1_000_000, 10_000_000)
PREFIX = "HTTP 400 from https://chatgpt.autonomous.ai/api/v1/ai/chat: "
ASCII_LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
OTHER_LETTERS = "абвгдежзиклмнопрстуфхцчшщыэюяéèàçüößñ漢字かなカナ한국어"


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


def median_ms(action: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> int:
    print(f"redacting a {len(PREFIX)}+~140-character error text, median of {RUNS} runs")
    print(f"{'prompt':>8} {'text':>9} {'excerpt':>11} {'new ms':>9} {'brute ms':>9} {'ratio':>8}")
    for size in SIZES:
        for name, letters in (("ASCII", ASCII_LETTERS), ("non-ASCII", OTHER_LETTERS)):
            prompt = prose(size, letters, seed=size)
            messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": prompt}]
            encoded = wire.encode_messages(messages)
            middle = size // 2
            quoted = " ".join(prompt[middle:middle + 400].split())
            excerpts = {
                "quoting": errors.excerpt(PREFIX + "invalid message: " + quoted),
                "not": errors.excerpt(
                    PREFIX + "The request could not be processed because the upstream model is overloaded; "
                    "retry later. Request id 7f3a9c2e-41b8-4d2f-9e6a-0c5b8d1e2f34, region us-east-1, code 4711."
                ),
            }
            for kind, text in excerpts.items():
                new = median_ms(functools.partial(lambda m, e, t: Redactor(m, e).redact(t), messages, encoded, text))
                old = median_ms(functools.partial(reference, text, messages, encoded))
                assert Redactor(messages, encoded).redact(text) == reference(text, messages, encoded)
                print(f"{size // 1_000_000:>6}MB {name:>9} {kind:>11} {new:>9.1f} {old:>9.1f} {old / new:>7.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
