"""The `recvault` subcommands: each module gives HELP, add_arguments(parser) and run(args, settings)."""
