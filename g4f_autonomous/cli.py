"""``g4f-autonomous`` (same as ``python -m g4f_autonomous``): demo, chat, models, check, serve.

Exit status: 0 done, 1 the upstream or the network failed, 2 the command was used wrongly.
Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Callable, Sequence

from . import __version__, wire
from .wire import BASE_URL_ENV, CONTROL_CHARACTERS, DEFAULT_BASE_URL, ENDPOINTS, MODEL_ALIASES

EXIT_OK, EXIT_UPSTREAM, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # what a shell reports for a program ended by Ctrl-C (128 + SIGINT)
DEMO_PROMPT = "Hello from g4f-autonomous! Stream this answer back to me, please."
CHECK_PROMPT = [{"role": "user", "content": "Reply with one word: OK"}]
PROVIDER_NAME = "AutonomousAI"

# An answer's text goes to a terminal: every control character but newline and tab (ESC and CSI
# start the sequences that move the cursor, retitle windows or rewrite the screen).
_TERMINAL_CONTROL = re.compile(f"(?![\n\t])[{CONTROL_CHARACTERS}]")


class UsageError(Exception):
    """The command line asked for something that cannot work (exit 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # argparse exits 2 on its own usage errors
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - the CLI's contract: one line, a status
        from .compat import ModelNotFoundError

        # Bad arguments are refused before anything runs (argparse types, _check_environment):
        # a ValueError that gets here came from elsewhere, and is no usage error.
        usage = isinstance(error, (UsageError, ModelNotFoundError))
        print(f"g4f-autonomous: error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_USAGE if usage else EXIT_UPSTREAM


def port_number(text: str) -> int:
    """argparse type of --port: 0 (any free port) to 65535; anything else is a usage error."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is out of range: a port is 0 (any free port) to 65535")
    return port


def positive_seconds(text: str) -> float:
    """argparse type of --timeout: a positive number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not seconds > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return seconds


def _checked_by(check: Callable[[str], object]) -> Callable[[str], str]:
    """An argparse type: the text as given, once ``check`` (wire's, as the provider checks it) takes it."""
    def argument(text: str) -> str:
        try:
            check(text)
        except ValueError as error:  # wire's messages never quote a proxy: it may hold a password
            raise argparse.ArgumentTypeError(str(error)) from None
        return text

    return argument


base_url, proxy_url = _checked_by(wire.resolve_base_url), _checked_by(wire.check_proxy)  # --base-url, --proxy


def _check_environment() -> None:
    """A bad $G4F_AUTONOMOUS_BASE_URL is the command's set-up gone wrong: a usage error, before any I/O."""
    try:
        wire.resolve_base_url()
    except ValueError as error:
        raise UsageError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="g4f-autonomous", description="The Autonomous AI provider for g4f.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the version of g4f-autonomous and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model_help = "model or alias, as listed by the models command (default: %(default)s)"
    base_url_help = f"upstream base URL (default: ${BASE_URL_ENV}, else {DEFAULT_BASE_URL})"

    demo = commands.add_parser("demo", help="stream a chat through g4f's client from a built-in emulator",
                               description="Start the emulator of the Autonomous AI service on 127.0.0.1 and "
                                           "stream one chat from it through g4f.client.Client(provider="
                                           "'AutonomousAI'). Needs no network.")
    demo.add_argument("prompt", nargs="?", default=DEMO_PROMPT, help="the question (default: a greeting)")
    demo.add_argument("--model", default="llama-3.3-70b", help=model_help)
    demo.set_defaults(run=_demo)

    chat = commands.add_parser("chat", help="stream an answer to stdout through g4f's client",
                               description="Send one chat through g4f.client.Client(provider='AutonomousAI') "
                                           "and print the answer as it arrives.")
    chat.add_argument("prompt", help="the question; '-' reads it from stdin")
    chat.add_argument("--model", default="", help=model_help.replace("%(default)s", "llama"))
    chat.add_argument("--system", help="a system message to send first")
    chat.add_argument("--base-url", type=base_url, help=base_url_help)
    chat.add_argument("--proxy", type=proxy_url, help="http(s) proxy URL, e.g. http://user:pass@host:port")
    chat.add_argument("--timeout", type=positive_seconds,
                      help="seconds to wait for the answer and between its parts (default: 120)")
    chat.add_argument("--no-stream", action="store_true", help="print the answer once it is complete")
    chat.set_defaults(run=_chat)

    models = commands.add_parser("models", help="list the models, their endpoints and aliases",
                                 description="List the models, their endpoints and aliases.")
    models.set_defaults(run=_models)

    check = commands.add_parser("check", help="check that the service answers a chat the provider can read",
                                description="Check the service: one GET of the base URL, then one tiny chat "
                                            "(\"Reply with one word: OK\") read as the provider reads it. "
                                            "Exit 0 when both work, 1 otherwise, with what is wrong.")
    check.add_argument("--base-url", type=base_url, help=base_url_help)
    check.add_argument("--deep", action="store_true",
                       help="chat once with every endpoint and list what differs from the expected protocol "
                            "(exit 0 when all conform)")
    check.add_argument("--timeout", type=positive_seconds, default=30.0,
                       help="seconds per chat (default: %(default)s)")
    check.set_defaults(run=_check)

    serve = commands.add_parser("serve", help="run the upstream emulator and print its base URL",
                                description="Run the emulator of the Autonomous AI service until interrupted.")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=port_number, default=0, help="port, 0 to 65535 (default: 0, any free port)")
    serve.set_defaults(run=_serve)
    return parser


def _models(args: argparse.Namespace) -> int:
    from .provider import AutonomousAI

    for model in AutonomousAI.models:
        aliases = [alias for alias, target in MODEL_ALIASES.items() if target == model]
        vision = "  (vision)" if model in AutonomousAI.vision_models else ""
        print(f"{model:<12} {ENDPOINTS[model]:<14} {', '.join(aliases)}{vision}")
    return EXIT_OK


def _chat(args: argparse.Namespace) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if not prompt.strip():
        raise UsageError("the prompt is empty")
    if not args.base_url:
        _check_environment()
    messages = ([{"role": "system", "content": args.system}] if args.system else [])
    messages.append({"role": "user", "content": prompt})
    _stream_chat(messages, args.model, base_url=args.base_url, proxy=args.proxy,
                 timeout=args.timeout, stream=not args.no_stream)
    return EXIT_OK


def check_model(model: str) -> None:
    """Refuse ``AutonomousAI:hermes``: this command has chosen the provider, so only the model is wanted."""
    prefix, colon, name = model.partition(":")
    if colon and prefix.replace("-", "").replace("_", "").lower() == PROVIDER_NAME.lower():
        hint = f"--model {name}" if name else "a model from the models command"
        raise UsageError(f"--model {model!r} names the provider too, and {PROVIDER_NAME} is already chosen "
                         f"here: use {hint}")


def terminal_text(text: str) -> str:
    """``text`` with every control character but newline and tab shown as U+FFFD, so it cannot drive a terminal."""
    return _TERMINAL_CONTROL.sub("\ufffd", text)


def _stream_chat(messages: list, model: str, base_url: str | None = None, proxy: str | None = None,
                 timeout: float | None = None, stream: bool = True) -> None:
    """Through g4f's own sync client, exactly as a g4f user would call it."""
    from g4f.client import Client

    from . import AutonomousAI

    check_model(model)
    # g4f's Client takes ``proxies``; a ``proxy=`` keyword would be silently ignored.
    client = Client(provider=AutonomousAI, proxies=proxy)
    # The base URL goes with the call, whose keyword arguments g4f hands to the provider:
    # g4f before 6.8.0 ignores Client(base_url=...) and would ask the public service instead.
    extra: dict = {"base_url": base_url} if base_url else {}
    if timeout is not None:
        extra["timeout"] = timeout
    line_open = False  # something is printed on a line not yet ended
    try:
        if stream:
            for chunk in client.chat.completions.create(messages=messages, model=model, stream=True, **extra):
                if chunk.choices and chunk.choices[0].delta.content:
                    line_open = True  # before the write: Ctrl-C may land between the write and the next line
                    sys.stdout.write(terminal_text(chunk.choices[0].delta.content))
                    sys.stdout.flush()
        else:
            answer = client.chat.completions.create(messages=messages, model=model, stream=False, **extra)
            sys.stdout.write(terminal_text(answer.choices[0].message.content or ""))
    except BaseException:
        if line_open:  # Ctrl-C or an error mid-answer: end the line, so the shell's prompt starts on its own
            sys.stdout.write("\n")
            sys.stdout.flush()
        raise
    sys.stdout.write("\n")
    sys.stdout.flush()


def _demo(args: argparse.Namespace) -> int:
    from .emulator import EmulatorThread

    with EmulatorThread() as emulator:
        print(f"[emulator of the Autonomous AI upstream at {emulator.base_url}]", file=sys.stderr)
        print(f"[g4f Client(provider='AutonomousAI'), model {args.model}]", file=sys.stderr)
        _stream_chat([{"role": "user", "content": args.prompt}], args.model, base_url=emulator.base_url)
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from . import compat
    from .provider import AutonomousAI

    if not args.base_url:
        _check_environment()
    if args.deep:
        from .probe import format_table, probe_all

        reports = asyncio.run(probe_all(args.base_url, args.timeout))
        print(format_table(reports))
        return EXIT_OK if all(report.conforms for report in reports) else EXIT_UPSTREAM
    if not compat.has_health_routes():
        # The probe below is the plugin's own; g4f's api/gui only gained health routes in 8.7.4.
        print(f"note: g4f {compat.G4F_VERSION} has no provider health routes; "
              "this command probes the service itself", file=sys.stderr)
    health = asyncio.run(AutonomousAI.get_health(base_url=args.base_url))
    state = "reachable" if health["ok"] else "unreachable"
    detail = f" ({health['error']})" if health.get("error") else ""
    print(f"{health['url']}: {state}, HTTP {health['status']}{detail}")
    if not health["ok"]:
        return EXIT_UPSTREAM
    # Answering a GET proves little (any web server does): one tiny chat, read by the provider itself,
    # shows the path is right and the server speaks the protocol.
    problem = asyncio.run(_chat_problem(args.base_url, args.timeout))
    if problem:
        print(f"{health['url']}: {problem}")
        return EXIT_UPSTREAM
    return EXIT_OK


async def _chat_problem(base_url: str | None, timeout: float) -> str:
    """What is wrong with one tiny chat through the provider, as a sentence; "" when it answered."""
    from .provider import AutonomousAI

    text = []
    try:
        async for item in AutonomousAI.create_async_generator(
                AutonomousAI.default_model, CHECK_PROMPT, base_url=base_url, timeout=timeout):
            if isinstance(item, str):
                text.append(item)
    except Exception as error:  # noqa: BLE001 - the arguments were checked: whatever ended the chat is the finding
        found = f"{type(error).__name__}: {error}"
        if re.search(r"\bHTTP (404|405)\b", str(error)):
            return (f"answers, but has no chat endpoint below it ({found}); is the base URL right? "
                    f"The service's is {DEFAULT_BASE_URL}")
        return f"answers, but not a chat the provider can read ({found})"
    return "" if "".join(text).strip() else "answers, but a test chat came back without any text"


def _serve(args: argparse.Namespace) -> int:
    from .emulator import serve_forever

    try:
        asyncio.run(serve_forever(args.host, args.port))
    except OSError as error:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}") from None
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
