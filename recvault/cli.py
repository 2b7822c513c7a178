"""recvault: archive Twilio call recordings to S3, verified, with retention and full metadata."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from types import ModuleType

from recvault.audit import process_key
from recvault.errors import ConfigurationError, RecvaultError
from recvault.settings import load_settings, warn_unknown_variables

# Subcommand names; the module recvault.commands.<name> (with "_" for "-") gives HELP,
# add_arguments(parser) and run(args, settings). Modules keep their heavy imports inside
# run(), so building the parser stays cheap.
COMMANDS = ("serve", "worker", "beat", "up", "simulate", "dlq", "audit", "reconcile", "init-bucket",
            "hold", "erase", "lifecycle", "purge", "policy")


def command_module(name: str) -> ModuleType:
    """The module that implements subcommand `name`."""
    return importlib.import_module(f"recvault.commands.{name.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recvault", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = command_module(name)
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = command_module(args.command)
    # At every start, one line per RECVAULT_ variable no setting reads: a misspelt one would be ignored unseen.
    warn_unknown_variables()
    try:
        settings = load_settings() if getattr(args, "needs_settings", True) else None
        if settings is not None:
            process_key.use_settings(settings)  # every entry this process appends is signed with it
        return int(module.run(args, settings) or 0)
    except ConfigurationError as error:
        for line in str(error).splitlines():
            print(f"recvault: configuration error: {line}", file=sys.stderr)
        return 2
    except RecvaultError as error:  # S3 or Twilio refused or unreachable at start: one line, no traceback
        print(f"recvault: {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`recvault … | head`): stop quietly, as other commands do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
