"""``python -m g4f_autonomous`` as a user runs it: subprocesses against an emulator in this process."""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from forward_proxy import ForwardProxy
from helpers import closed_port_url, on_an_emulator
from offline import offline_env
from prefetch import Prefetch
from processes import stop_process

from g4f_autonomous import __version__, cli
from g4f_autonomous.emulator import EmulatorThread, Fault, RecordedRequest

ROOT = Path(__file__).resolve().parent.parent
DEMO_PROMPT = "Hello from g4f-autonomous! Stream this answer back to me, please."


def cli_env_in(root: Path) -> dict[str, str]:
    env = offline_env(root, PYTHONUNBUFFERED="1")
    env.pop("G4F_AUTONOMOUS_BASE_URL", None)
    return env


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return cli_env_in(tmp_path_factory.mktemp("cli"))


def run_cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "g4f_autonomous", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=60)


def run_on_a_closed_port(env: dict[str, str], *args: str) -> tuple[str, subprocess.CompletedProcess]:
    """``args`` then a base URL nothing listens on (picked right before the run); the URL and the run."""
    url = closed_port_url()
    return url, run_cli(env, *args, url)


# The runs that need no emulator: ahead of their tests (see prefetch.py), each under its own key.
BAD_USAGE = [
    ([], "the following arguments are required: COMMAND"),
    (["chat"], "the following arguments are required: prompt"),
    (["chat", "hi", "--timeout", "soon"], "argument --timeout: invalid float value: 'soon'"),
    (["fly"], "argument COMMAND: invalid choice: 'fly'"),
]
BAD_PORTS = ["99999", "65536", "-1", "http"]
BAD_TIMEOUTS = ["0", "-3", "nan"]
BAD_URLS = [
    (["chat", "hi", "--base-url", "ftp://example.org"], "argument --base-url: base_url must be an http:// or https:// URL"),
    (["check", "--base-url", "no scheme"], "argument --base-url: base_url must be an http:// or https:// URL"),
    (["chat", "hi", "--proxy", "socks5://user:secret@example.org"], "argument --proxy: proxy must be an http:// or https:// URL"),
]
BAD_ENV_COMMANDS = [["chat", "hi"], ["check"]]
BAD_BASE_URL_ENV = {"G4F_AUTONOMOUS_BASE_URL": "ftp://example.org"}
AHEAD = [["demo"], ["models"], ["--version"], ["demo", "--help"], *(args for args, _ in BAD_USAGE),
         *(["serve", "--port", port] for port in BAD_PORTS), *(["chat", "hi", "--timeout", value] for value in BAD_TIMEOUTS),
         *(args for args, _ in BAD_URLS)]


def prefetch(jobs: Prefetch, root: Path) -> None:
    folders = (root / str(number) for number in itertools.count())

    def env() -> dict[str, str]:
        """Offline folders of its own for each run: two of them may run at once (see prefetch.py)."""
        folder = next(folders)
        folder.mkdir()
        return cli_env_in(folder)

    for args in AHEAD:
        jobs.submit(f"cli {args}", run_cli, env(), *args)
    for command in BAD_ENV_COMMANDS:
        jobs.submit(f"cli {command} with a bad base URL in the environment", run_cli, {**env(), **BAD_BASE_URL_ENV},
                    *command)
    jobs.submit("cli check on a closed port", run_on_a_closed_port, env(), "check", "--base-url")
    jobs.submit("cli chat on a closed port", run_on_a_closed_port, env(), "chat", "hi", "--base-url")
    jobs.submit("cli check of a wrong path", on_an_emulator, functools.partial(check_a_wrong_path, env()))
    jobs.submit("cli chat through a proxy", chat_through_a_proxy, env())
    for key, (fault, args, stdin, url_in_env) in EMULATED.items():
        jobs.submit(f"cli on an emulator: {key}", run_on_an_emulator, env(), fault, *args, stdin=stdin,
                    url_in_env=url_in_env)


def run_ahead(prefetched: Prefetch, *args: str) -> subprocess.CompletedProcess:
    """``python -m g4f_autonomous *args`` (one of AHEAD), as it ran."""
    return prefetched.result(f"cli {list(args)}")


@dataclass
class EmulatedRun:
    result: subprocess.CompletedProcess
    requests: list[RecordedRequest]  # what the emulator received
    base_url: str  # the emulator's


def run_on_an_emulator(env: dict[str, str], fault: Fault, *args: str, stdin: str = "",
                       url_in_env: bool = False) -> EmulatedRun:
    """``args`` then ``--base-url`` of an emulator of its own answering with ``fault`` (or that URL in the env)."""
    with EmulatorThread(fault) as upstream:
        if url_in_env:
            result = run_cli({**env, "G4F_AUTONOMOUS_BASE_URL": upstream.base_url}, *args, stdin=stdin)
        else:
            result = run_cli(env, *args, "--base-url", upstream.base_url, stdin=stdin)
        return EmulatedRun(result, list(upstream.emulator.requests), upstream.base_url)


NOT_THE_PROTOCOL = [
    (Fault(garbage=True), "ResponseError: "),
    (Fault(body='{"hello": "world"}'), "ResponseError: "),
    (Fault(status=500), "ResponseStatusError: HTTP 500 from "),
]
EMPTY_PROMPTS = [(["chat", "   "], ""), (["chat", "-"], "\n")]
MODEL_STRINGS = ["AutonomousAI:hermes", "autonomous-ai:hermes"]
HOSTILE = "red\x1b[31m, title\x1b]0;owned\x07, bell\x07, back\r, csi\x9b2J, tab\t, line\n."
# Runs on an emulator of their own, by key: (fault, arguments before --base-url, stdin, URL in the env instead).
EMULATED: dict[str, tuple[Fault, list[str], str, bool]] = {
    "exact answer": (Fault(), ["chat", "hello there"], "", False),
    "prompt from stdin": (Fault(), ["chat", "-"], "from stdin 你好", False),
    "base URL from the env": (Fault(), ["chat", "via env"], "", True),
    "model alias": (Fault(), ["chat", "hi", "--model", "hermes-3"], "", False),
    "system message": (Fault(), ["chat", "hi", "--system", "be brief"], "", False),
    "no stream": (Fault(), ["chat", "whole please", "--no-stream"], "", False),
    "timeout": (Fault(first_byte_delay=1.5), ["chat", "hi", "--timeout", "0.3"], "", False),
    "check": (Fault(), ["check"], "", False),
    **{f"check of {found}{fault}": (fault, ["check"], "", False) for fault, found in NOT_THE_PROTOCOL},
    "unknown model": (Fault(), ["chat", "hi", "--model", "gpt-4o"], "", False),
    **{f"empty prompt {args} {stdin!r}": (Fault(), args, stdin, False) for args, stdin in EMPTY_PROMPTS},
    **{f"model string {model}": (Fault(), ["chat", "hi", "--model", model], "", False) for model in MODEL_STRINGS},
    "control sequences": (Fault(events=[json.dumps({"choices": [{"delta": {"content": HOSTILE}, "finish_reason": "stop"}]}),
                                        "[DONE]"]), ["chat", "hi"], "", False),
    "control sequences, no stream": (Fault(body=json.dumps({"choices": [{"message": {"content": "a\x1b[2Jb"},
                                                                         "finish_reason": "stop"}]})),
                                     ["chat", "hi", "--no-stream"], "", False),
}


def emulated(prefetched: Prefetch, key: str) -> EmulatedRun:
    """The run of EMULATED[key], as it ran."""
    return prefetched.result(f"cli on an emulator: {key}")


def assert_one_line_error(result: subprocess.CompletedProcess, status: int, text: str) -> None:
    assert result.returncode == status, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("g4f-autonomous: error: ")
    assert text in result.stderr
    assert "Traceback" not in result.stderr


# --- demo and chat ------------------------------------------------------------

def test_demo_prints_the_emulator_answer(prefetched):
    result = run_ahead(prefetched, "demo")
    assert (result.returncode, result.stdout) == (0, f"llama heard: {DEMO_PROMPT}\n")


def test_chat_prints_the_exact_answer(prefetched):
    run = emulated(prefetched, "exact answer")
    assert (run.result.returncode, run.result.stdout, run.result.stderr) == (0, "llama heard: hello there\n", "")
    [request] = run.requests
    assert (request.path, request.body["stream"]) == ("/api/v1/ai/chat", True)


def test_chat_reads_the_prompt_from_stdin(prefetched):
    result = emulated(prefetched, "prompt from stdin").result
    assert (result.returncode, result.stdout) == (0, "llama heard: from stdin 你好\n")


def test_chat_uses_the_base_url_env(prefetched):
    result = emulated(prefetched, "base URL from the env").result
    assert (result.returncode, result.stdout) == (0, "llama heard: via env\n")


def test_chat_model_alias_reaches_its_endpoint(prefetched):
    run = emulated(prefetched, "model alias")
    assert (run.result.returncode, run.result.stdout) == (0, "hermes heard: hi\n")
    request = run.requests[0]
    assert (request.path, request.body["aiAgent"]) == ("/api/v1/ai/chat-hermes", "hermes")


def test_chat_system_message_is_sent_first(prefetched):
    run = emulated(prefetched, "system message")
    assert run.result.returncode == 0, run.result.stderr
    assert run.requests[0].messages == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


def test_chat_no_stream_sends_stream_false(prefetched):
    run = emulated(prefetched, "no stream")
    assert (run.result.returncode, run.result.stdout) == (0, "llama heard: whole please\n")
    assert run.requests[0].body["stream"] is False


def test_chat_timeout_is_honoured(prefetched):
    run = emulated(prefetched, "timeout")
    assert_one_line_error(run.result, 1, "TimeoutError")
    assert len(run.requests) == 1


def chat_through_a_proxy(env: dict[str, str]) -> tuple[str, subprocess.CompletedProcess, list[str]]:
    """``chat --proxy`` to an emulator of its own through a proxy on its loop; its base URL, the run, the proxy's targets."""
    with EmulatorThread() as upstream:
        proxy = ForwardProxy()
        asyncio.run_coroutine_threadsafe(proxy.start(), upstream.loop).result(10)
        try:
            result = run_cli(env, "chat", "proxied", "--proxy", proxy.url, "--base-url", upstream.base_url)
        finally:
            asyncio.run_coroutine_threadsafe(proxy.stop(), upstream.loop).result(10)
        return upstream.base_url, result, proxy.targets


def test_chat_goes_through_the_proxy(prefetched):
    base_url, result, targets = prefetched.result("cli chat through a proxy")
    assert (result.returncode, result.stdout) == (0, "llama heard: proxied\n")
    assert targets == [base_url + "/chat"]


# --- models, check, serve ---------------------------------------------------------

def test_models_lists_every_model_with_its_alias(prefetched):
    result = run_ahead(prefetched, "models")
    assert result.returncode == 0
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows == [
        ["llama", "/chat", "llama-3.3-70b"],
        ["qwen_coder", "/chat", "qwen-2.5-coder-32b"],
        ["hermes", "/chat-hermes", "hermes-3"],
        ["vision", "/chat-vision", "llama-3.2-90b", "(vision)"],
        ["summary", "/summary", "llama-3.2-70b"],
    ]


def test_check_reachable_emulator_exits_0(prefetched):
    run = emulated(prefetched, "check")
    assert (run.result.returncode, run.result.stdout) == (0, f"{run.base_url}: reachable, HTTP 200\n")


def test_check_sends_one_tiny_chat_after_the_get(prefetched):
    run = emulated(prefetched, "check")
    assert run.result.returncode == 0, run.result.stdout
    [request] = run.requests
    assert (request.path, request.messages) == ("/api/v1/ai/chat", cli.CHECK_PROMPT)


def check_a_wrong_path(env: dict[str, str], base_url: str) -> tuple[str, subprocess.CompletedProcess]:
    """``check`` of a URL one level above the emulator's base URL; the URL and the run."""
    url = base_url.replace("/api/v1/ai", "/api/v1")
    return url, run_cli(env, "check", "--base-url", url)


def test_check_of_a_wrong_path_exits_1_saying_there_is_no_chat_endpoint(prefetched):
    (url, result), _ = prefetched.result("cli check of a wrong path")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{url}: reachable, HTTP 404",
        f"{url}: answers, but has no chat endpoint below it (ResponseStatusError: HTTP 404 from {url}/chat: "
        "404: Not Found); is the base URL right? The service's is https://chatgpt.autonomous.ai/api/v1/ai",
    ]


@pytest.mark.parametrize("fault, found", NOT_THE_PROTOCOL, ids=["plain-text", "json-of-another-api", "http-500"])
def test_check_of_a_server_that_does_not_speak_the_protocol_exits_1_saying_so(prefetched, fault, found):
    run = emulated(prefetched, f"check of {found}{fault}")
    assert run.result.returncode == 1
    reachable, problem = run.result.stdout.splitlines()
    assert reachable == f"{run.base_url}: reachable, HTTP 200"
    assert problem.startswith(f"{run.base_url}: answers, but not a chat the provider can read ({found}")


def test_check_closed_port_exits_1(prefetched):
    url, result = prefetched.result("cli check on a closed port")
    assert result.returncode == 1
    assert result.stdout.startswith(f"{url}: unreachable, HTTP 0 (")


def test_serve_prints_a_loopback_base_url_that_answers(cli_env):
    server = subprocess.Popen([sys.executable, "-m", "g4f_autonomous", "serve"], cwd=ROOT, env=cli_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/api/v1/ai")
        with urllib.request.urlopen(base_url, timeout=30) as response:
            assert json.load(response)["service"] == "autonomous-ai-emulator"
    finally:
        server.terminate()
        server.communicate(timeout=30)


# --- errors -------------------------------------------------------------------------

def test_connection_refused_is_one_line_and_exit_1(prefetched):
    _, result = prefetched.result("cli chat on a closed port")
    assert_one_line_error(result, 1, "ResponseError: cannot reach http://127.0.0.1:")
    assert result.stdout == ""


def test_unknown_model_is_a_usage_error(prefetched):
    run = emulated(prefetched, "unknown model")
    assert_one_line_error(run.result, 2, "ModelNotFoundError: AutonomousAI has no model 'gpt-4o'")
    assert run.requests == []


@pytest.mark.parametrize("args, stdin", EMPTY_PROMPTS, ids=["blank-argument", "blank-stdin"])
def test_empty_prompt_is_a_usage_error(prefetched, args, stdin):
    run = emulated(prefetched, f"empty prompt {args} {stdin!r}")
    assert_one_line_error(run.result, 2, "the prompt is empty")
    assert run.requests == []


@pytest.mark.parametrize("args, message", BAD_USAGE, ids=["no-command", "no-prompt", "bad-timeout", "bad-command"])
def test_bad_usage_exits_2_with_argparse_message(prefetched, args, message):
    result = run_ahead(prefetched, *args)
    assert result.returncode == 2
    assert message in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr


# --- the edges: version, help, ports, Provider:model, Ctrl-C, escape sequences ---------------

def test_version_prints_the_one_version_number(prefetched):
    result = run_ahead(prefetched, "--version")
    assert (result.returncode, result.stdout) == (0, f"g4f-autonomous {__version__}\n")
    assert __version__ == "0.1.0"


def every_option() -> list[tuple[str, argparse.Action]]:
    """(command, option) for every option and argument of every command, -h aside."""
    parser = cli._parser()
    [commands] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    found = [("", action) for action in parser._actions if action is not commands]
    for name, command in commands.choices.items():
        found += [(name, action) for action in command._actions]
    return [(name, action) for name, action in found if not isinstance(action, argparse._HelpAction)]


def test_every_option_has_help_text():
    options = every_option()
    assert len(options) >= 15
    assert [f"{name} {action.dest}" for name, action in options if not (action.help or "").strip()] == []


def test_demo_help_describes_its_options(prefetched):
    result = run_ahead(prefetched, "demo", "--help")
    assert result.returncode == 0
    assert "--model MODEL  model or alias" in result.stdout
    assert "prompt         the question" in result.stdout
    assert "emulator" in result.stdout


@pytest.mark.parametrize("port", BAD_PORTS)
def test_serve_port_out_of_range_is_a_usage_error(prefetched, port):
    result = run_ahead(prefetched, "serve", "--port", port)
    assert result.returncode == 2, result.stderr
    assert "argument --port: " in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS)
def test_timeout_that_is_not_positive_is_a_usage_error(prefetched, timeout):
    result = run_ahead(prefetched, "chat", "hi", "--timeout", timeout)
    assert result.returncode == 2
    assert "argument --timeout: must be a positive number of seconds" in result.stderr


@pytest.mark.parametrize("model", MODEL_STRINGS)
def test_provider_and_model_in_one_string_gets_a_hint(prefetched, model):
    run = emulated(prefetched, f"model string {model}")
    assert_one_line_error(run.result, 2, "AutonomousAI is already chosen here: use --model hermes")
    assert run.requests == []


def test_ctrl_c_mid_stream_ends_the_line_and_exits_130(cli_env, threaded_emulator):
    threaded_emulator.emulator.fault = Fault(stall_after=1, stall_seconds=30)
    command = [sys.executable, "-m", "g4f_autonomous", "chat", "one two three", "--base-url", threaded_emulator.base_url]
    process = subprocess.Popen(command, cwd=ROOT, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        shown = b""
        while not shown.endswith(b"llama "):  # the first delta, then the stream stalls
            piece = os.read(process.stdout.fileno(), 64)
            assert piece, process.stderr.read()
            shown += piece
        process.send_signal(signal.SIGINT)
        rest, errors = process.communicate(timeout=30)
    finally:
        stop_process(process)
    assert process.returncode == 130, errors
    assert shown + rest == b"llama \n"
    assert b"Traceback" not in errors


def test_control_sequences_in_an_answer_are_neutralised(prefetched):
    result = emulated(prefetched, "control sequences").result  # the answer is HOSTILE
    assert result.returncode == 0, result.stderr
    assert result.stdout == "red\ufffd[31m, title\ufffd]0;owned\ufffd, bell\ufffd, back\ufffd, csi\ufffd2J, tab\t, line\n.\n"


def test_control_sequences_are_neutralised_without_streaming_too(prefetched):
    result = emulated(prefetched, "control sequences, no stream").result
    assert (result.returncode, result.stdout) == (0, "a\ufffd[2Jb\n")


# --- exit status 2 is for usage errors only ----------------------------------------------------

@pytest.mark.parametrize("args, message", BAD_URLS, ids=["chat-base-url", "check-base-url", "proxy"])
def test_a_bad_url_option_is_refused_before_anything_runs(prefetched, args, message):
    result = run_ahead(prefetched, *args)
    assert result.returncode == 2
    assert message in result.stderr.splitlines()[-1]
    assert "secret" not in result.stderr


@pytest.mark.parametrize("command", BAD_ENV_COMMANDS)
def test_a_bad_base_url_in_the_environment_is_a_usage_error(prefetched, command):
    result = prefetched.result(f"cli {command} with a bad base URL in the environment")
    assert_one_line_error(result, 2, "G4F_AUTONOMOUS_BASE_URL must be an http:// or https:// URL")


def test_a_value_error_from_elsewhere_is_no_usage_error(monkeypatch, capsys):
    def broken(args):
        raise ValueError("not about the command line")

    monkeypatch.setattr(cli, "_models", broken)
    assert cli.main(["models"]) == cli.EXIT_UPSTREAM
    assert capsys.readouterr().err == "g4f-autonomous: error: ValueError: not about the command line\n"
