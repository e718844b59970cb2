"""The README's examples run as written, against the emulator, and its claims hold; so do the docs' links.

The README's offline recipe and config.yaml route run in test_smoke.py, on every g4f release of CI's
matrix.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import on_an_emulator
from offline import offline_env
from prefetch import Prefetch

import g4f_autonomous
from g4f_autonomous import AutonomousAI, cli
from g4f_autonomous.wire import ENDPOINTS, MODEL_ALIASES

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)


def readme_example(marker: str) -> str:
    matches = [block for block in PYTHON_BLOCKS if marker in block]
    assert len(matches) == 1, f"expected one README example containing {marker!r}, found {len(matches)}"
    return matches[0]


def section(title: str, text: str = TEXT) -> str:
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert found, f"no '## {title}' section"
    return found.group(1)


CLIENT_EXAMPLES = [
    ('client = Client(provider="AutonomousAI")', "llama heard: Write a haiku about streams", "/chat"),
    ("IterListProvider(", "llama heard: Hi", "/chat"),
]
DEMO_RUN = re.search(r'^\$ \.venv/bin/g4f-autonomous demo "(.*)"\n(?:\[.*\]\n)*(.*)\n', TEXT, flags=re.M)


def run_python(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=120)


def prefetch(jobs: Prefetch, root: Path) -> None:
    """The README's examples and demo, each in a fresh interpreter, ahead of their tests (see prefetch.py)."""
    for number, (marker, _, _) in enumerate(CLIENT_EXAMPLES):
        folder = root / str(number)
        folder.mkdir()
        env = offline_env(folder)
        if sum(marker in block for block in PYTHON_BLOCKS) == 1:  # else the test says so
            jobs.submit(f"readme {marker}", on_an_emulator, lambda base_url, folder=folder, env=env, marker=marker:
                        run_python(folder, {**env, "G4F_AUTONOMOUS_BASE_URL": base_url}, "-c", readme_example(marker)))
    if DEMO_RUN:
        jobs.submit("readme demo", run_python, ROOT, offline_env(root), "-m", "g4f_autonomous", "demo", DEMO_RUN.group(1))


@pytest.mark.parametrize(("marker", "expected", "path"), CLIENT_EXAMPLES, ids=["sync-client-stream", "fallback-list"])
def test_readme_client_example_prints_the_answer(marker, expected, path, prefetched):
    readme_example(marker)
    done, requests = prefetched.result(f"readme {marker}")
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected
    assert [r.path for r in requests] == ["/api/v1/ai" + path]


def test_readme_demo_output_is_what_demo_prints(prefetched):
    assert DEMO_RUN, "the README shows a demo run"
    done = prefetched.result("readme demo")
    assert (done.returncode, done.stdout) == (0, DEMO_RUN.group(2) + "\n"), done.stderr


# --- the two set-up commands ------------------------------------------------------------------

def set_up_commands() -> list[str]:
    [block] = re.findall(r"```sh\n(.*?)```", section("Two commands"), flags=re.S)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_two_commands_install_and_run_the_demo_and_the_suite():
    demo, suite = set_up_commands()
    assert demo == "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/g4f-autonomous demo"
    assert suite.startswith("python3 -m venv .venv && ") and suite.endswith(".venv/bin/python -m pytest")
    assert '.venv/bin/pip install --quiet ".[test]"' in suite


def test_ci_runs_the_readmes_test_command_verbatim():
    _, suite = set_up_commands()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").replace(" \\\n    ", " ")
    assert suite in ci


# --- claims ------------------------------------------------------------------------------------

def test_front_page_stays_short():
    lines = TEXT.splitlines()
    assert len(lines) <= 210, f"README has {len(lines)} lines: move detail into docs/"
    # Prose and code fit a terminal; a table row is one line whatever its width.
    assert [n for n, line in enumerate(lines, 1) if len(line) > 120 and not line.startswith("|")] == []


def test_every_command_is_in_the_command_table():
    table = section("Command line")
    named = set(re.findall(r"^\| `([a-z-]+)", table, flags=re.M))
    parser = cli._parser()
    [commands] = [action for action in parser._actions if action.dest == "command"]
    assert named == set(commands.choices) | {"--version"}


def test_every_model_and_alias_is_named():
    for name in [*ENDPOINTS, *MODEL_ALIASES]:
        assert f"`{name}`" in TEXT, name


def test_every_environment_variable_named_is_read_by_the_code():
    source = "".join(path.read_text(encoding="utf-8") for path in (ROOT / "g4f_autonomous").glob("*.py"))
    source += (ROOT / "g4f_autonomous_autoload.py").read_text(encoding="utf-8")
    named = set(re.findall(r"G4F_AUTONOMOUS_\w+", TEXT))
    assert named >= {"G4F_AUTONOMOUS_BASE_URL", "G4F_AUTONOMOUS_WORKING", "G4F_AUTONOMOUS_AUTOLOAD"}
    assert {name for name in named if f'"{name}"' not in source} == set()


def test_get_health_is_shown_awaited_as_the_coroutine_it_is():
    assert inspect.iscoroutinefunction(AutonomousAI.get_health)
    assert "await AutonomousAI.get_health()" in TEXT
    assert re.search(r"(?<!await )AutonomousAI\.get_health\(\)", TEXT) is None


def test_changelog_first_entry_is_this_version():
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    first = re.search(r"^## (\S+)", changelog, flags=re.M)
    assert first and first.group(1) == g4f_autonomous.__version__


def test_classifiers_name_the_python_versions_ci_runs():
    setup = (ROOT / "setup.cfg").read_text(encoding="utf-8")
    assert re.findall(r"Python :: (3\.\d+)", setup) == ["3.10", "3.11"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3.10" in ci  # the smoke modules run on 3.10; the suite on the machine's python3 (3.11)


# --- links ---------------------------------------------------------------------------------------

def local_links(page: Path) -> list[tuple[Path, str]]:
    """(target, anchor) of each relative link of a Markdown page."""
    text = page.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    found = []
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue
        target, _, anchor = link.partition("#")
        found.append(((page.parent / target).resolve() if target else page, anchor))
    return found


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    headings = re.findall(r"^#+ (.*)$", page.read_text(encoding="utf-8"), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", [README, *sorted((ROOT / "docs").glob("*.md"))], ids=lambda page: page.name)
def test_relative_links_reach_a_file_and_heading_that_exist(page):
    broken = []
    for target, anchor in local_links(page):
        if not target.exists() or (anchor and target.suffix == ".md" and anchor not in anchors(target)):
            broken.append(f"{target.relative_to(ROOT)}#{anchor}")
    assert broken == []


def test_readme_links_every_docs_page():
    linked = {target for target, _ in local_links(README)}
    assert {page.resolve() for page in (ROOT / "docs").glob("*.md") if page.name != "routing.md"} <= linked


# --- docs/reliability.md names tests that exist ------------------------------------------------

TESTS = Path(__file__).resolve().parent
# `test_file.py::test_name` (the name may be a glob such as test_crlf_in_*) or `test_file.py` alone;
# "and the tests after it" and "same" add no name to check.
TEST_REFERENCE = re.compile(r"`(test_\w+\.py)(?:::([\w*?]+))?`")
RELIABILITY = ROOT / "docs" / "reliability.md"


def reliability_table_references() -> list[tuple[str, str]]:
    """(file, test name or glob, "" for the whole file) for each test the failures table's last column names."""
    rows = [line for line in section("Failures", RELIABILITY.read_text(encoding="utf-8")).splitlines()
            if line.startswith("|") and "---" not in line]
    assert rows and rows[0].replace(" ", "").lower().endswith("|test|"), "the table's last column is no longer 'Test'"
    return [reference for row in rows[1:] for reference in TEST_REFERENCE.findall(row.rstrip(" |").rsplit("|", 1)[-1])]


@functools.cache
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
    assert missing == [], f"docs/reliability.md names tests that do not exist: {missing}"
