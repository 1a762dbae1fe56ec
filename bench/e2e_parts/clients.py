"""HTTP clients for the API: httpx for set-up and phase 1, a raw HTTP/1.1 client for phase 2,
and the response shapes the benchmark reads."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import httpx
import msgspec

JSON_HEADERS = {"content-type": "application/json"}


class TaskRef(msgspec.Struct):
    id: str
    status: str


class BatchItem(msgspec.Struct):
    status: int
    task: TaskRef | None = None
    detail: str | None = None


class BatchOut(msgspec.Struct):
    items: list[BatchItem]


def http_client(base_url: str, key: str, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"authorization": f"Bearer {key}"},
        timeout=60,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        trust_env=False,  # a proxy from the environment must not sit between us and 127.0.0.1
    )


async def api_ready(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/readyz", timeout=2)).status_code == 200
    except httpx.HTTPError:
        return False


class Poster:
    """What phase 2 needs from an HTTP client: POST a JSON body, get (status, body) back."""

    opened = 0  # connections opened, reported: a growing number means requests overlapped

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


class RawPoster(Poster):
    """A minimal HTTP/1.1 keep-alive client on asyncio streams.

    Why not httpx here: measured on the 2-core machine, httpx spends ~2 ms of client CPU per
    request one at a time and 4-6 ms with dozens in flight, so an open-loop 200/s load saturates
    the load generator (it emits ~100/s and reports seconds of "HTTP latency" that is its own
    queueing). This client costs ~0.25 ms per request, so the figures describe the server."""

    MAX_IDLE_S = 2.0  # below uvicorn's 5 s keep-alive timeout: never reuse a closing socket

    def __init__(self, base_url: str, key: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.key = key
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    def _head(self, path: str, length: int) -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
            f"authorization: Bearer {self.key}\r\ncontent-type: application/json\r\n"
            f"content-length: {length}\r\n\r\n"
        ).encode()

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        now = time.monotonic()
        while self._idle:  # most recently used first, so a steady load keeps few sockets
            reader, writer, since = self._idle.pop()
            if now - since < self.MAX_IDLE_S and not reader.at_eof():
                return reader, writer
            writer.close()
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        reader, writer = await self._connection()
        try:
            writer.write(self._head(path, len(body)) + body)
            status, keep, payload = await read_response(reader)
        except BaseException:
            writer.close()
            raise
        if keep:
            self._idle.append((reader, writer, time.monotonic()))
        else:
            writer.close()
        return status, payload

    async def aclose(self) -> None:
        for _, writer, _ in self._idle:
            writer.close()
        self._idle.clear()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """(status, keep-alive?, body) of one response; taskstream always sends Content-Length."""
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    if "content-length" not in headers:
        raise OSError(f"HTTP {status} response without Content-Length")
    body = await reader.readexactly(int(headers["content-length"]))
    return status, headers.get("connection", "").lower() != "close", body


class HttpxPoster(Poster):
    """httpx, for comparison (``--http-client httpx``): shows the load generator's own cost."""

    def __init__(self, base_url: str, key: str) -> None:
        self.client = http_client(base_url, key, 64)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            resp = await self.client.post(path, content=body, headers=JSON_HEADERS)
        except httpx.HTTPError as exc:
            raise OSError(str(exc)) from exc
        return resp.status_code, resp.content

    async def aclose(self) -> None:
        await self.client.aclose()
