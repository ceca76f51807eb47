"""Run the app on uvicorn on a socket bound here, so the real port (``--port 0``) is known before serving."""

from __future__ import annotations

import socket
from collections.abc import Callable

from agecompact.errors import AgecompactError


def log_config(access_log: bool) -> dict:
    """Plain one-line logs on stderr: requests (when ``access_log``) and uvicorn's warnings and errors."""
    handler = {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
    quiet = {"handlers": ["stderr"], "level": "WARNING", "propagate": False}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(message)s"}},
        "handlers": {"stderr": handler},
        "loggers": {"uvicorn": quiet, "uvicorn.error": quiet, "agecompact.serve": quiet,
                    "uvicorn.access": {**quiet, "level": "INFO" if access_log else "WARNING"}},
    }


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6); one ``error:`` line if that is impossible."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise AgecompactError(f"--host {host}: {e.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise AgecompactError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def make_server(app, *, access_log: bool = True):
    import uvicorn

    config = uvicorn.Config(app, log_config=log_config(access_log), access_log=access_log, lifespan="off",
                            timeout_keep_alive=5, server_header=False)
    return uvicorn.Server(config)


def serve(app, sock: socket.socket, *, access_log: bool = True,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve ``app`` on ``sock`` until interrupted (Ctrl-C or SIGTERM stop it cleanly)."""
    server = make_server(app, access_log=access_log)
    if on_ready is not None:
        on_ready(url_of(sock))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
