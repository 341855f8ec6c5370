"""pyftpdlib in a thread, for faults a packaged server cannot be told to make:
a data connection dropped after some bytes, or the whole server gone mid-upload."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import DTPHandler, FTPHandler
from pyftpdlib.servers import FTPServer

from export_pipelines_tests.servers.network import HOST, free_port

USER = "partner"
PASSWORD = "pyftpdlib-test-password"


@dataclass
class Faults:
    """Armed by a test; each fault fires once."""

    drop_data_after_bytes: int | None = None
    stop_server_after_bytes: int | None = None
    fired: list[str] = field(default_factory=list)


class PyFtpServer:
    def __init__(self, home: Path):
        self.home = home
        self.faults = Faults()
        self.port = free_port()
        self.host = HOST
        self.user = USER
        self.password = PASSWORD
        self._server: FTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        authorizer = DummyAuthorizer()
        authorizer.add_user(USER, PASSWORD, str(self.home), perm="elradfmwMT")
        faults = self.faults
        server_ref = self

        class FaultyDTPHandler(DTPHandler):
            def handle_read(self):
                super().handle_read()
                received = self.tot_bytes_received
                if faults.drop_data_after_bytes is not None and received >= faults.drop_data_after_bytes:
                    faults.drop_data_after_bytes = None
                    faults.fired.append("drop_data")
                    self.close()
                elif faults.stop_server_after_bytes is not None and received >= faults.stop_server_after_bytes:
                    faults.stop_server_after_bytes = None
                    faults.fired.append("stop_server")
                    server_ref._server.close_all()

            handle_read_event = handle_read  # the base class aliases its own handle_read under this name

        class Handler(FTPHandler):
            pass

        Handler.authorizer = authorizer
        Handler.dtp_handler = FaultyDTPHandler
        Handler.passive_ports = None
        self._server = FTPServer((HOST, self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"timeout": 0.05, "handle_exit": False}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.close_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
