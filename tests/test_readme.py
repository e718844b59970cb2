"""The README's usage examples run as written, against the emulator."""

from __future__ import annotations

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
    ],
    ids=["sync-client-stream", "async-client-stream"],
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
