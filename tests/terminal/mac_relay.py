"""A TCP relay in front of a CUP host that spoils the MAC of chosen answers (for the terminal's
tests of answers failing their MAC check)."""

from __future__ import annotations

import asyncio


async def flip_first_answer_mac(upstream: int, *mtis: str) -> asyncio.Server:
    """A relay to ``upstream`` that flips one bit of the MAC (the frame's last byte) of the
    first answer of each of ``mtis``; everything else passes unchanged."""
    left = list(mtis)

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, answers: bool) -> None:
        try:
            while True:
                head = await src.readexactly(2)
                body = await src.readexactly(int.from_bytes(head, "big"))
                mti = body[11:13].hex()  # TPDU 5, header 6, then the MTI
                if answers and mti in left:
                    left.remove(mti)
                    body = body[:-1] + bytes([body[-1] ^ 0x01])
                dst.write(head + body)
                await dst.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            dst.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(pump(reader, up_writer, False), pump(up_reader, writer, True))

    return await asyncio.start_server(relay, "127.0.0.1", 0)
