"""The standalone emulator: settings in code, a private SQLite database, and a threaded WSGI server."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m django_alipay.emulator``."""
    parser = argparse.ArgumentParser(
        prog="python -m django_alipay.emulator",
        description="Run a local emulator of Alipay's mapi gateway (gateway.do, cashier, notifier).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one (default 8765)")
    parser.add_argument("--partner", help="register this partner id (16 digits) at start")
    parser.add_argument("--md5-key", default="", help="the partner's MD5 key")
    parser.add_argument("--merchant-public-key", type=Path, help="file with the partner's RSA/DSA public key")
    parser.add_argument(
        "--sign-type",
        action="append",
        default=[],
        help="allowed sign type (repeat, or comma-separated); default: every type the keys allow",
    )
    parser.add_argument("--services", default="", help="comma-separated contracted services (default all)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="durations run this many times faster")
    parser.add_argument("--refund-interval", type=float, default=3.0, help="seconds between forex refunds")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault-injection random generator")
    parser.add_argument(
        "--time-zone", default=None, help="Django TIME_ZONE of the server (default: $TZ, else UTC)"
    )
    parser.add_argument("--db", type=Path, help="SQLite file to keep state in (default: a temporary one)")
    parser.add_argument(
        "--database-url",
        help="postgres://user:password@host:port/name to keep state in PostgreSQL instead (several emulator "
        "processes may share it; needs psycopg)",
    )
    parser.add_argument("--alipay-rsa-key", type=Path, help="PEM file: the emulator's own RSA private key")
    parser.add_argument("--alipay-dsa-key", type=Path, help="PEM file: the emulator's own DSA private key")
    parser.add_argument(
        "--control-token",
        default=None,
        help="what scripts send in the X-Emulator-Token header to POST to control/ (default: "
        "$ALIPAY_EMULATOR_CONTROL_TOKEN, else a random one, printed once the emulator is ready)",
    )
    parser.add_argument("--no-notifier", action="store_true", help="do not send notifications on their own")
    parser.add_argument("--quiet", action="store_true", help="do not log every request")
    return parser


def _configure(args: argparse.Namespace, db_path: Path) -> None:
    from django.conf import settings

    time_zone = args.time_zone or os.environ.get("TZ") or "UTC"
    settings.configure(
        DEBUG=False,
        ALIPAY_EMULATOR_ALLOW=True,
        ALIPAY_EMULATOR_UNSAFE_WITHOUT_DEBUG=True,  # a standalone emulator is a fake gateway by definition
        SECRET_KEY=os.urandom(32).hex(),
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="django_alipay.emulator.standalone_urls",
        INSTALLED_APPS=["django_alipay.emulator"],
        # Sets the CSRF cookie for the emulator's own pages, whose forms may post to control/.
        MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
        DATABASES={"default": _database(args.database_url, db_path)},
        USE_TZ=True,
        TIME_ZONE=time_zone,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.template.context_processors.csrf",
                    ]
                },
            }
        ],
        ALIPAY_EMULATOR={
            "TIME_SCALE": args.time_scale,
            "REFUND_INTERVAL": args.refund_interval,
            "FAULT_SEED": args.seed,
            "NOTIFIER_THREAD": not args.no_notifier,
            "RSA_PRIVATE_KEY": args.alipay_rsa_key.read_text() if args.alipay_rsa_key else None,
            "DSA_PRIVATE_KEY": args.alipay_dsa_key.read_text() if args.alipay_dsa_key else None,
            "CONTROL_TOKEN": args.control_token,
        },
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
            "loggers": {
                "django.server": {"handlers": ["stderr"], "level": "WARNING" if args.quiet else "INFO"},
                "django.request": {"handlers": ["stderr"], "level": "ERROR"},
                "django_alipay": {"handlers": ["stderr"], "level": "INFO"},
            },
        },
    )


def _database(url: str | None, db_path: Path) -> dict[str, Any]:
    """The Django database: SQLite at ``db_path``, or the PostgreSQL database named by ``url``."""
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(db_path),
            # Threads write concurrently: wait for the lock, and take it at BEGIN to avoid upgrade deadlocks.
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL;",
            },
        }
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise SystemExit(f"error: --database-url must be a postgres:// URL, not {parts.scheme}://")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or "postgres"),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
    }


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT or SIGTERM; print ``ready http://H:P/gateway.do`` once it listens."""
    args = build_parser().parse_args(argv)
    temp_dir = None
    if args.db is None:
        temp_dir = Path(tempfile.mkdtemp(prefix="alipay-emulator-"))
        db_path = temp_dir / "emulator.sqlite3"
    else:
        db_path = args.db
    try:
        return _run(args, db_path)
    finally:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _run(args: argparse.Namespace, db_path: Path) -> int:
    _configure(args, db_path)
    import django

    django.setup()

    from django.core.management import call_command
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application
    from django.db import connections

    from . import alipay_keys, notifier
    from .conf import CONTROL_TOKEN_ENV, control_token
    from .partners import PartnerError, register_partner
    from .seed import ensure_buyers
    from .wire import SOCKET_ENVIRON_KEY

    call_command("migrate", verbosity=0, interactive=False)
    ensure_buyers()
    if args.partner:
        sign_types = [part for value in args.sign_type for part in value.split(",") if part.strip()]
        try:
            register_partner(
                args.partner,
                md5_key=args.md5_key,
                merchant_public_key=args.merchant_public_key.read_text() if args.merchant_public_key else "",
                sign_types=sign_types or None,
                services=args.services or None,
            )
        except (PartnerError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    keys = alipay_keys.public_keys()
    connections.close_all()

    class Handler(WSGIRequestHandler):
        """Lets the gateway reach the client socket, so a fault can drop the connection."""

        # Headers and body leave in separate writes: without TCP_NODELAY a client reusing its keep-alive
        # connection waits out the delayed ACK (about 40 ms) on every call.
        disable_nagle_algorithm = True

        def get_environ(self) -> dict[str, Any]:
            environ: dict[str, Any] = super().get_environ()
            environ[SOCKET_ENVIRON_KEY] = self.connection
            return environ

    class Server(ThreadedWSGIServer):
        """Django's threaded server with a listen queue for bursts: its own holds 10 pending connections, and
        a shop refunding from 50 threads at once saw the kernel drop the rest (connection resets)."""

        request_queue_size = 1024

    ipv6 = ":" in args.host
    try:
        server = Server((args.host, args.port), Handler, ipv6=ipv6)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    server.set_app(get_wsgi_application())
    port = server.server_address[1]
    # Before the ready line: whoever started the emulator may stop it as soon as it reads that line.
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    print(f"ready http://{_url_host(args.host)}:{port}/gateway.do", flush=True)
    print(
        f"alipay-public-key RSA {keys['RSA']['fingerprint']} DSA {keys['DSA']['fingerprint']}",
        flush=True,
    )
    if not (args.control_token or os.environ.get(CONTROL_TOKEN_ENV)):
        # Made up for this run: whoever started the emulator needs it to drive control/.
        print(f"control-token {control_token()}", flush=True)

    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    serving.start()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    server.shutdown()
    server.server_close()
    notifier.stop()
    serving.join(5)
    print("stopped", file=sys.stderr, flush=True)
    return 0
