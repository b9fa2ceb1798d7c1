"""A TCP proxy that can cut a database off and bring it back (fault injection)."""

from __future__ import annotations

import asyncio
import contextlib


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self.up = True

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _admit(self) -> None:
        """Awaited before a new connection is accepted (a stall holds it here)."""

    async def _forward_gate(self) -> None:
        """Awaited before each chunk is forwarded (a stall holds traffic here)."""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._admit()
        if not self.up:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._conns.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    await self._forward_gate()
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._conns.difference_update({writer, up_writer})

    def cut(self) -> None:
        """Database 'stops': every open connection drops, new ones are refused."""
        self.up = False
        for w in list(self._conns):
            with contextlib.suppress(Exception):
                w.transport.abort()
        self._conns.clear()

    def restore(self) -> None:
        self.up = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class StallProxy(FaultProxy):
    """A partition without resets: bytes stop flowing and new connections hang unanswered."""

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self._flowing = asyncio.Event()
        self._flowing.set()

    def stall(self) -> None:
        self._flowing.clear()

    def restore(self) -> None:
        self._flowing.set()

    async def close(self) -> None:
        self.up = False
        self._flowing.set()  # release held handshakes; they see ``up`` is False and hang up
        await super().close()

    async def _admit(self) -> None:
        await self._flowing.wait()  # a connect during the stall hangs in the handshake

    async def _forward_gate(self) -> None:
        await self._flowing.wait()
