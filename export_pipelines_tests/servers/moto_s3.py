"""moto's S3 in server mode: a real HTTP endpoint on loopback."""

from __future__ import annotations

from moto.server import ThreadedMotoServer

from export_pipelines_tests.servers.network import HOST, free_port


def start_moto() -> tuple[ThreadedMotoServer, str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    return server, f"http://{HOST}:{port}"
