"""`recvault serve`: the ingest HTTP service Twilio calls."""

from __future__ import annotations

import argparse

from recvault.settings import Settings

HELP = "run the ingest HTTP service Twilio calls"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    parser.add_argument("--processes", type=int, default=1, choices=range(1, 65), metavar="N",
                        help="server processes sharing the port (default 1; about one per core)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from recvault.ingest.main import run_server
    from recvault.logs import configure_logging
    from recvault.queue.broker import check_tls
    from recvault.queue.celery_factory import create_celery
    from recvault.settings import require_tokens

    require_tokens(settings)
    create_celery(settings)  # refuses broker options ingest cannot honour before listening
    # TLS that cannot work (a wrong CA, say) would send every callback to the spool: refused here.
    check_tls(settings.broker_url, settings.broker_transport_options,
              socket_timeout=settings.redis_socket_timeout_seconds,
              socket_connect_timeout=settings.redis_connect_timeout_seconds)
    configure_logging(settings.log_level, settings.log_format)
    return run_server(settings, host=args.host, port=args.port, processes=args.processes)
