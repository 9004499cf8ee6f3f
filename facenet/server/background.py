"""Run the app under uvicorn in a background thread on a free loopback port (tests, benchmarks).

Example: `with BackgroundServer(app) as url: httpx.get(url + "/api/v1/health")`.
"""

from __future__ import annotations

import socket
import threading
import time


class BackgroundServer:
    """A real uvicorn server in a daemon thread, on 127.0.0.1 and a port the OS picks."""

    def __init__(self, app, host: str = "127.0.0.1", startup_timeout: float = 30.0):
        self.app = app
        self.host = host
        self.startup_timeout = startup_timeout
        self.url = ""
        self._server = None
        self._thread = None

    def __enter__(self) -> str:
        import uvicorn

        # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only for
        # sockets that say they are TCP; without it every response waited ~40 ms for the
        # client's delayed ACK (Nagle), which the load benchmarks measured as server time
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="uvicorn"
        )
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        self.url = f"http://{self.host}:{port}"
        return self.url

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
