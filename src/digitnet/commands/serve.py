"""``digitnet serve``: the drawing page and the JSON API for a trained run."""

from __future__ import annotations

import os
import resource
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from digitnet.commands.common import add_backend_option, add_model_option, console
from digitnet.corrections import store
from digitnet.errors import DigitnetError
from digitnet.inference import bundled, served

DEFAULT_STORE = "store"

# Per server process: connections beyond this get 503 at once. High, because a connection that
# sends nothing counts too, and the guard (digitnet.web.guard) closes those within its header
# deadline; the work itself is bounded by Settings.max_concurrent, not by connections.
LIMIT_CONCURRENCY = 2000
KEEP_ALIVE_S = 5  # idle keep-alive connections close after this
GUARD = "digitnet.web.guard:GuardedH11"  # uvicorn's h11 with header and body deadlines
UVICORN_OPTIONS = ("--log-level", "warning", "--limit-concurrency", str(LIMIT_CONCURRENCY),
                   "--timeout-keep-alive", str(KEEP_ALIVE_S), "--http", GUARD)


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve a page to draw or upload digits, and a JSON API")
    add_model_option(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    add_backend_option(p)
    p.add_argument("--line-reader", type=Path, metavar="DIR",
                   help="the reader of whole numbers for /api/read, trained with 'digitnet "
                        "train-lines' (default: the one in the package)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per inference (default 1; requests run in parallel)")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes sharing the port, each with its own copy of the model "
                        "(default 1; about one per CPU core serves the most requests)")
    p.add_argument("--store", type=Path, default=DEFAULT_STORE, metavar="DIR",
                   help="folder for people's corrections (corrections.sqlite) and the name of "
                        "the run served (served.json, watched: a run named there is served "
                        f"without a restart); default ./{DEFAULT_STORE}. The admin routes "
                        "(export, delete, swap) need DIGITNET_ADMIN_TOKEN set")
    p.add_argument("--no-store", dest="store", action="store_const", const=None,
                   help="collect no corrections and watch no served.json")
    p.add_argument("--allow-origin", dest="allowed_origins", action="append", default=[],
                   metavar="ORIGIN",
                   help="another site whose pages may send corrections here, e.g. "
                        "https://digits.example.org where the static site is (repeatable; "
                        "default: only this server's own page)")
    p.add_argument("--corrections-per-client", type=int, default=30, metavar="N",
                   help="corrections one client may store in 10 minutes (default 30; 429 beyond)")
    p.add_argument("--max-store-mb", type=float, default=200.0, metavar="MB",
                   help="size of the corrections database beyond which nothing is added "
                        "(default 200; 507 beyond)")
    p.set_defaults(run=run)


def listen(host: str, port: int) -> socket.socket:
    """Bind before starting, so a port in use is one clear line rather than a server log."""
    try:
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise DigitnetError(f"cannot listen on {host}:{port} ({reason}); choose another --port "
                            "or stop what uses it") from e


def origin(text: str) -> str:
    """An --allow-origin value: scheme and host (and port), nothing else."""
    parts = urlsplit(text.strip().rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
        raise DigitnetError(f"--allow-origin {text!r} is not an origin; give scheme and host, "
                            "e.g. https://digits.example.org")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def settings_from(args):
    """The server's ``Settings`` from the command line and the environment, checked."""
    from digitnet.web import admin
    from digitnet.web.app import Settings

    if args.threads < 1:
        raise DigitnetError(f"--threads must be at least 1, got {args.threads}")
    if args.workers < 1:
        raise DigitnetError(f"--workers must be at least 1, got {args.workers}")
    if not 0 <= args.port <= 65535:
        raise DigitnetError(f"--port must be 0-65535 (0: any free port), got {args.port}")
    if args.corrections_per_client < 1 or args.max_store_mb <= 0:
        raise DigitnetError("--corrections-per-client must be at least 1 and --max-store-mb positive")
    return Settings(run_dir=bundled.model_dir(args.run_dir), backend=args.backend,
                    line_reader=args.line_reader, torch_threads=args.threads, store=args.store,
                    admin_token=admin.check_token(os.environ.get(admin.TOKEN_VARIABLE)),
                    allowed_origins=tuple(origin(o) for o in args.allowed_origins),
                    corrections_per_client=args.corrections_per_client,
                    max_store_bytes=int(args.max_store_mb * 2**20))


def open_files_for(connections: int) -> None:
    """Raise this process's open-file limit towards what ``connections`` sockets need."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256  # the model's files, the database, the runtime's files
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY
                                                    else min(wanted, hard), hard))


def run(args) -> int:
    import uvicorn

    from digitnet.web import admin, guard
    from digitnet.web.app import create_app
    from digitnet.web.service import load_model

    settings = settings_from(args)
    # a bad run or line reader stops here, before serving
    loaded = load_model(settings.run_dir, settings.backend, settings.line_reader)
    sock = listen(args.host, args.port)
    if settings.store is not None:  # only once it can serve: a failed start leaves no files
        store.create(store.path_in(settings.store))  # a database it cannot use stops it here too
        served.write(settings.store, settings.run_dir)  # what every process of this store serves
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    out = console()
    processes = f", {args.workers} worker processes" if args.workers > 1 else ""
    out.print(f"serving {settings.run_dir} ({loaded.info.architecture}, {loaded.info.backend}{processes}) "
              f"at http://{shown_host}:{sock.getsockname()[1]}/  (API docs at /docs; Ctrl+C stops)")
    if settings.store is not None:
        admin_routes = "on" if settings.admin_token else f"off (set {admin.TOKEN_VARIABLE})"
        out.print(f"corrections kept in {store.path_in(settings.store)}; admin routes {admin_routes}")
    if loaded.on_device.detail:
        out.print(f"reading on the device is off: {loaded.on_device.detail}")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        out.print(f"note: listening on {args.host} makes the page reachable from other machines")
    open_files_for(LIMIT_CONCURRENCY)
    if args.workers > 1:
        hand_over(sock, settings, args.workers)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, loaded), log_level="warning",
                                           limit_concurrency=LIMIT_CONCURRENCY,
                                           timeout_keep_alive=KEEP_ALIVE_S, http=guard.GuardedH11))
    server.run(sockets=[sock])
    return 0


def hand_over(sock: socket.socket, settings, workers: int) -> None:
    """Replace this process by uvicorn's process manager, which starts ``workers`` processes
    serving the bound socket and restarts any that dies. Replacing (exec) rather than forking
    frees what this process loaded to check the run (torch alone is about 300 MB); each
    worker loads its own model, from the settings in the environment."""
    from digitnet.web.app import SETTINGS_VARIABLE

    os.set_inheritable(sock.fileno(), True)
    sys.stdout.flush()
    sys.stderr.flush()
    command = [sys.executable, "-m", "uvicorn", "digitnet.web.app:from_environment", "--factory",
               "--fd", str(sock.fileno()), "--workers", str(workers), *UVICORN_OPTIONS]
    os.execve(sys.executable, command, {**os.environ, SETTINGS_VARIABLE: settings.to_json()})
