"""The README's usage examples run as written, against the emulator."""

from __future__ import annotations

import ast
import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import pytest
from offline import offline_env

README = Path(__file__).resolve().parents[1] / "README.md"
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def readme_example(marker: str) -> str:
    matches = [block for block in PYTHON_BLOCKS if marker in block]
    assert len(matches) == 1, f"expected one README example containing {marker!r}, found {len(matches)}"
    return matches[0]


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ('client = Client(provider="AutonomousAI")', "llama heard: Write a haiku about streams"),
        ('AsyncClient(provider="AutonomousAI")', "hermes heard: Hi"),
        ("AutonomousAI.create_async_generator(", "hermes heard: Hi"),
    ],
    ids=["sync-client-stream", "async-client-stream", "provider-directly"],
)
def test_readme_client_example_prints_the_answer(marker, expected, threaded_emulator, tmp_path):
    env = offline_env(tmp_path, G4F_AUTONOMOUS_BASE_URL=threaded_emulator.base_url)
    done = subprocess.run([sys.executable, "-c", readme_example(marker)], cwd=README.parent, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected
    assert [r.path for r in threaded_emulator.emulator.requests] == [
        "/api/v1/ai/chat" if expected.startswith("llama") else "/api/v1/ai/chat-hermes"
    ]


# --- the Reliability table names tests that exist -------------------------------------

TESTS = Path(__file__).resolve().parent
# `test_file.py::test_name` (the name may be a glob such as test_crlf_in_*) or `test_file.py` alone;
# "and the tests after it" and "same" add no name to check.
TEST_REFERENCE = re.compile(r"`(test_\w+\.py)(?:::([\w*?]+))?`")


def reliability_table_references() -> list[tuple[str, str]]:
    """(file, test name or glob, "" for the whole file) for each test the Reliability table's last column names."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## Reliability\n(.*?)(?=^## )", text, flags=re.S | re.M)
    assert section, "README has no '## Reliability' section"
    rows = [line for line in section.group(1).splitlines() if line.startswith("|") and "---" not in line]
    assert rows and rows[0].replace(" ", "").lower().endswith("|test|"), "the table's last column is no longer 'Test'"
    return [reference for row in rows[1:] for reference in TEST_REFERENCE.findall(row.rstrip(" |").rsplit("|", 1)[-1])]


def functions_of(file: str) -> list[str]:
    """The names of the test functions of one test module (a parametrized test counts once, by its name)."""
    tree = ast.parse((TESTS / file).read_text(encoding="utf-8"))
    return [node.name for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")]


def test_reliability_table_names_only_tests_that_exist():
    references = reliability_table_references()
    assert len(references) >= 40, f"the table's Test column is no longer read: {references}"
    missing = []
    for file, name in references:
        if not (TESTS / file).is_file():
            missing.append(file)
        elif name and not fnmatch.filter(functions_of(file), name):
            missing.append(f"{file}::{name}")
    assert missing == [], f"README's Reliability table names tests that do not exist: {missing}"
