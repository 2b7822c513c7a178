"""The `recvault` command: serve, worker, simulate, up, dlq, audit, reconcile."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from recvault.settings import ConfigurationError, Settings, load_settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.main import run_server
    from recvault.logs import configure_logging
    from recvault.settings import require_tokens

    require_tokens(settings)
    configure_logging(settings.log_level, settings.log_format)
    return run_server(settings, host=args.host, port=args.port, processes=args.processes)


def _command_table() -> dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]]:
    """Subcommand name → (help, add-arguments, run). Heavy imports wait until a command runs."""

    def serve_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
        p.add_argument("--processes", type=int, default=1, choices=range(1, 65), metavar="N",
                       help="server processes sharing the port (default 1; about one per core)")

    table: dict = {"serve": ("run the ingest HTTP service Twilio calls", serve_args, _serve)}
    for name, module in (
        ("worker", "workers.cli"),
        ("up", "recvault.embedded_cli"),
        ("dlq", "workers.dlq_cli"),
        ("audit", "workers.audit"),
        ("reconcile", "workers.reconcile"),
        ("simulate", "recvault.simulator.cli"),
    ):
        table[name] = _lazy(module)
    return table


def _lazy(module_name: str):
    """A subcommand whose module supplies HELP, add_arguments(parser) and run(args, settings)."""
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        return ("(not available in this build)", lambda p: None, None)
    return (module.HELP, module.add_arguments, module.run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recvault", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    table = _command_table()
    for name, (help_text, add_arguments, _) in table.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    run = table[args.command][2]
    if run is None:
        parser.error(f"'{args.command}' is not available in this build")
    try:
        settings = load_settings() if getattr(args, "needs_settings", True) else None
        return int(run(args, settings) or 0)
    except ConfigurationError as error:
        for line in str(error).splitlines():
            print(f"recvault: configuration error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
