"""``digitnet serve``: the drawing page and the JSON API for a trained run."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from digitnet.commands.common import add_backend_option, add_model_option, console
from digitnet.corrections import store
from digitnet.errors import DigitnetError
from digitnet.inference import bundled, served

DEFAULT_STORE = "store"

# Per server process: connections beyond this get 503 at once; idle keep-alive connections close.
LIMIT_CONCURRENCY = 64
KEEP_ALIVE_S = 5
UVICORN_OPTIONS = ("--log-level", "warning", "--limit-concurrency", str(LIMIT_CONCURRENCY),
                   "--timeout-keep-alive", str(KEEP_ALIVE_S))


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
    p.set_defaults(run=run)


def listen(host: str, port: int) -> socket.socket:
    """Bind before starting, so a port in use is one clear line rather than a server log."""
    try:
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise DigitnetError(f"cannot listen on {host}:{port} ({reason}); choose another --port "
                            "or stop what uses it") from e


def run(args) -> int:
    import uvicorn

    from digitnet.web import admin
    from digitnet.web.app import Settings, create_app
    from digitnet.web.service import load_model

    if args.threads < 1:
        raise DigitnetError(f"--threads must be at least 1, got {args.threads}")
    if args.workers < 1:
        raise DigitnetError(f"--workers must be at least 1, got {args.workers}")
    settings = Settings(run_dir=bundled.model_dir(args.run_dir), backend=args.backend,
                        line_reader=args.line_reader, torch_threads=args.threads, store=args.store,
                        admin_token=admin.check_token(os.environ.get(admin.TOKEN_VARIABLE)))
    # a bad run or line reader stops here, before serving
    loaded = load_model(settings.run_dir, settings.backend, settings.line_reader)
    sock = listen(args.host, args.port)
    if settings.store is not None:  # only once it can serve: a failed start leaves no files
        store.create(store.path_in(settings.store))  # a database it cannot use stops it here too
        served.write(settings.store, settings.run_dir)  # what every process of this store serves
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    out = console()
    processes = f", {args.workers} worker processes" if args.workers > 1 else ""
    out.print(f"serving {settings.run_dir} ({loaded.info.architecture}, {settings.backend}{processes}) "
              f"at http://{shown_host}:{args.port}/  (API docs at /docs; Ctrl+C stops)")
    if settings.store is not None:
        admin_routes = "on" if settings.admin_token else f"off (set {admin.TOKEN_VARIABLE})"
        out.print(f"corrections kept in {store.path_in(settings.store)}; admin routes {admin_routes}",
                  soft_wrap=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        out.print(f"note: listening on {args.host} makes the page reachable from other machines")
    if args.workers > 1:
        hand_over(sock, settings, args.workers)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, loaded), log_level="warning",
                                           limit_concurrency=LIMIT_CONCURRENCY,
                                           timeout_keep_alive=KEEP_ALIVE_S))
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
