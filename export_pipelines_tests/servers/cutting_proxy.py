"""A TCP forwarder that can cut a connection mid-stream, refuse new ones, hold them or slow what
clients send, as a failing network, a stopped server, a slow one or a thin uplink does, in front
of a real server; and keep what clients send, for a test that counts their requests."""

from __future__ import annotations

import socket
import threading
import time

from export_pipelines_tests.servers.network import HOST, free_port


class CuttingProxy:
    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = free_port()
        self.cut_after_bytes: int | None = None
        self.down = False
        self.cuts = 0
        self.refusals_left = 0
        self.bytes_per_second: int | None = None
        self.hold_seconds = 0.0
        self._heard: list[bytearray] | None = None
        self._listener = socket.create_server((HOST, self.port))
        self._listener.settimeout(0.2)
        self._closing = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def cut_after(self, client_bytes: int) -> None:
        """Cut the next connection once the client has sent this many bytes, then refuse new ones."""
        self.cut_after_bytes = client_bytes

    def refuse_next(self, connections: int) -> None:
        """Drop the next connections at once, as a server that is briefly unreachable does."""
        self.refusals_left = connections

    def throttle(self, bytes_per_second: int) -> None:
        """Forward what each client sends at this rate at most (in slices of 1/20 s)."""
        self.bytes_per_second = bytes_per_second

    def hold(self, seconds: float) -> None:
        """Connect each new connection only after this many seconds, as a slow server answers."""
        self.hold_seconds = seconds

    def listen(self) -> None:
        """Keep what clients send on the connections opened from now on (heard)."""
        self._heard = []

    def heard(self) -> list[bytes]:
        """What clients sent since listen(), one bytes object per connection, in the order they were opened."""
        return [bytes(data) for data in self._heard or []]

    def restore(self) -> None:
        self.cut_after_bytes = None
        self.down = False

    def close(self) -> None:
        self._closing = True
        self._thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            if self.down or self.refusals_left > 0:
                self.refusals_left = max(0, self.refusals_left - 1)
                client.close()
                continue
            threading.Thread(target=self._connect, args=(client, self.hold_seconds), daemon=True).start()

    def _connect(self, client: socket.socket, hold_seconds: float) -> None:
        time.sleep(hold_seconds)
        upstream = socket.create_connection((HOST, self.upstream_port))
        heard = None
        if self._heard is not None:
            heard = bytearray()
            self._heard.append(heard)
        threading.Thread(target=self._pump, args=(client, upstream, True, heard), daemon=True).start()
        threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool, heard: bytearray | None = None) -> None:
        sent = 0
        try:
            while data := source.recv(65536):
                if heard is not None:
                    heard += data
                if from_client and self.cut_after_bytes is not None and sent + len(data) >= self.cut_after_bytes:
                    self.cut_after_bytes = None
                    self.down = True
                    self.cuts += 1
                    break
                self._forward(sink, data, from_client)
                sent += len(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            end.close()

    def _forward(self, sink: socket.socket, data: bytes, from_client: bool) -> None:
        rate = self.bytes_per_second if from_client else None
        if rate is None:
            sink.sendall(data)
            return
        step = max(1, rate // 20)
        for start in range(0, len(data), step):
            sink.sendall(data[start : start + step])
            time.sleep(min(step, len(data) - start) / rate)
