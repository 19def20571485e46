"""A UDP relay that adds latency: each device address gets its own listening socket; a request is
forwarded to the real agent after `delay_s`, the answer goes straight back. For the polling
benchmark's latency mode (this machine's kernel has no `netem`). Runs its own asyncio loop in a
thread; a few thousand datagrams per second cost it little."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Sequence


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, relay: DelayRelay, target: tuple[str, int]):
        self.relay = relay
        self.target = target
        self.transport: asyncio.DatagramTransport | None = None
        self.upstream: dict[tuple[str, int], asyncio.DatagramTransport] = {}

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, client: tuple[str, int]) -> None:
        self.relay.loop.call_later(self.relay.delay_s, self._forward, data, client)

    def _forward(self, data: bytes, client: tuple[str, int]) -> None:
        upstream = self.upstream.get(client)
        if upstream is not None:
            upstream.sendto(data)
            return
        endpoint = self

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, answer: bytes, _addr) -> None:
                if endpoint.transport is not None:
                    endpoint.transport.sendto(answer, client)

        async def open_upstream() -> None:
            transport, _ = await self.relay.loop.create_datagram_endpoint(Back, remote_addr=self.target)
            self.upstream[client] = transport
            transport.sendto(data)

        self.relay.loop.create_task(open_upstream())


class DelayRelay:
    """`DelayRelay([(listen_host, listen_port, target_host, target_port), ...], delay_s=0.02)`"""

    def __init__(self, routes: Sequence[tuple[str, int, str, int]], *, delay_s: float):
        self.routes = list(routes)
        self.delay_s = delay_s
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="delay-relay", daemon=True)
        self.endpoints: list[_Endpoint] = []

    def start(self) -> DelayRelay:
        self.thread.start()

        async def open_all() -> None:
            for host, port, target_host, target_port in self.routes:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind((host, port))
                _transport, endpoint = await self.loop.create_datagram_endpoint(
                    lambda th=target_host, tp=target_port: _Endpoint(self, (th, tp)), sock=sock
                )
                self.endpoints.append(endpoint)

        asyncio.run_coroutine_threadsafe(open_all(), self.loop).result(timeout=60)
        return self

    def stop(self) -> None:
        async def close_all() -> None:
            for endpoint in self.endpoints:
                for upstream in endpoint.upstream.values():
                    upstream.close()
                if endpoint.transport is not None:
                    endpoint.transport.close()

        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        self.loop.close()
