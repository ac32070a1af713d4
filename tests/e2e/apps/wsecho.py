"""A WebSocket echo server on the Python standard library alone (it runs on the node's
stack, which has no websockets package): each text message comes back as "echo: <message>".
A plain request gets its request line back."""

import asyncio
import base64
import hashlib
import os
import struct

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def frames(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        first, second = await reader.readexactly(2)
        size = second & 127
        if size == 126:
            (size,) = struct.unpack("!H", await reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await reader.readexactly(8))
        mask = await reader.readexactly(4)
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(await reader.readexactly(size)))
        if first & 15 == 8:  # close
            writer.write(b"\x88\x00")
            return
        reply = b"echo: " + data[:100]
        writer.write(bytes([0x81, len(reply)]) + reply)
        await writer.drain()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    fields = (line.partition(":") for line in head[1:] if line)
    headers = {name.strip().lower(): value.strip() for name, _, value in fields}
    key = headers.get("sec-websocket-key")
    if key is None:
        body = f"{head[0]}\n".encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    else:
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        await frames(reader, writer)
    await writer.drain()
    writer.close()


async def main() -> None:
    server = await asyncio.start_server(handle, "0.0.0.0", int(os.environ["PORT"]))
    await server.serve_forever()


asyncio.run(main())
