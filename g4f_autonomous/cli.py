"""``g4f-autonomous`` (same as ``python -m g4f_autonomous``): demo, chat, models, check, serve.

Exit status: 0 done, 1 the upstream or the network failed, 2 the command was used wrongly.
Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from .wire import BASE_URL_ENV, ENDPOINTS, MODEL_ALIASES

EXIT_OK, EXIT_UPSTREAM, EXIT_USAGE = 0, 1, 2
DEMO_PROMPT = "Hello from g4f-autonomous! Stream this answer back to me, please."


class UsageError(Exception):
    """The command line asked for something that cannot work (exit 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # argparse exits 2 on its own usage errors
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - the CLI's contract: one line, a status
        from .compat import ModelNotFoundError

        usage = isinstance(error, (UsageError, ValueError, ModelNotFoundError))
        print(f"g4f-autonomous: error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_USAGE if usage else EXIT_UPSTREAM


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="g4f-autonomous", description="The Autonomous AI provider for g4f.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="stream a chat through g4f's client from a built-in emulator")
    demo.add_argument("prompt", nargs="?", default=DEMO_PROMPT)
    demo.add_argument("--model", default="llama-3.3-70b")
    demo.set_defaults(run=_demo)

    chat = commands.add_parser("chat", help="stream an answer to stdout through g4f's client")
    chat.add_argument("prompt", help="the question; '-' reads it from stdin")
    chat.add_argument("--model", default="", help="model or alias (default: llama)")
    chat.add_argument("--system", help="a system message to send first")
    chat.add_argument("--base-url", help=f"upstream base URL (default: ${BASE_URL_ENV} or the public service)")
    chat.add_argument("--proxy", help="http(s) proxy URL")
    chat.add_argument("--timeout", type=float, help="seconds to wait for the answer and between events")
    chat.add_argument("--no-stream", action="store_true", help="print the answer once it is complete")
    chat.set_defaults(run=_chat)

    models = commands.add_parser("models", help="list the models and aliases")
    models.set_defaults(run=_models)

    check = commands.add_parser("check", help="probe whether the service answers (exit 0 reachable, 1 not)")
    check.add_argument("--base-url")
    check.add_argument("--deep", action="store_true",
                       help="chat once with every endpoint and list what differs from the expected protocol "
                            "(exit 0 when all conform)")
    check.add_argument("--timeout", type=float, default=30.0, help="seconds per endpoint with --deep")
    check.set_defaults(run=_check)

    serve = commands.add_parser("serve", help="run the upstream emulator and print its base URL")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=0, help="port (default: any free port)")
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
    messages = ([{"role": "system", "content": args.system}] if args.system else [])
    messages.append({"role": "user", "content": prompt})
    _stream_chat(messages, args.model, base_url=args.base_url, proxy=args.proxy,
                 timeout=args.timeout, stream=not args.no_stream)
    return EXIT_OK


def _stream_chat(messages: list, model: str, base_url: str | None = None, proxy: str | None = None,
                 timeout: float | None = None, stream: bool = True) -> None:
    """Through g4f's own sync client, exactly as a g4f user would call it."""
    from g4f.client import Client

    from . import AutonomousAI

    # g4f's Client takes ``proxies``; a ``proxy=`` keyword would be silently ignored.
    client = Client(provider=AutonomousAI, base_url=base_url, proxies=proxy)
    extra = {"timeout": timeout} if timeout is not None else {}
    if stream:
        for chunk in client.chat.completions.create(messages=messages, model=model, stream=True, **extra):
            if chunk.choices and chunk.choices[0].delta.content:
                sys.stdout.write(chunk.choices[0].delta.content)
                sys.stdout.flush()
    else:
        answer = client.chat.completions.create(messages=messages, model=model, stream=False, **extra)
        sys.stdout.write(answer.choices[0].message.content or "")
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
    return EXIT_OK if health["ok"] else EXIT_UPSTREAM


def _serve(args: argparse.Namespace) -> int:
    from .emulator import serve_forever

    try:
        asyncio.run(serve_forever(args.host, args.port))
    except OSError as error:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}") from None
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
