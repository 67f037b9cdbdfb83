"""The pull loop's own reading (decisions 53 and 58): nats-py's fetch and header parser, cheaper, same results."""
from __future__ import annotations

import asyncio
import time

import nats
import pytest

from broker.pull import fetch, nats_parse_header_lines, parse_header_lines
from broker.server import EmbeddedNats
from broker.streams import consumer_config
from tests.conftest import jetstream

AWKWARD = [
    b"Nats-Msg-Id: abc\r\nXz-Key: ziran-1\r\n\r\n",
    b"Name:Value\r\nName2:\tValue2  \r\n\r\n",  # no space after the colon, tabs and trailing blanks
    b"Bad Name: x\r\nGood: y\r\n",  # whitespace inside a name: skipped
    b"\x1cName: x\r\nN\x1fame: y\r\nName\x1c: z\r\n",  # what str.isspace calls whitespace, bytes.strip does not
    b"Caf\xc3\xa9: x\r\nK: caf\xc3\xa9 \xff\r\n",  # a name not ASCII is skipped; a value is decoded, replacing
    b": empty name\r\nno colon here\r\n\r\n\r\n",
    b"Dup: 1\r\nDup: 2\r\n",
    b"\t \r\n  Spaced  :  v  \r\n",
    b"",
]


@pytest.mark.parametrize("raw", AWKWARD)
def test_the_header_parser_gives_what_nats_py_s_gives(raw: bytes) -> None:
    assert parse_header_lines(raw) == nats_parse_header_lines(raw)


def test_nats_py_parses_with_ours() -> None:
    from nats.aio.client import Client

    assert Client._parse_header_lines is parse_header_lines


@pytest.mark.parametrize("nats_auth", [False])
async def test_fetch_returns_what_is_there_in_order_at_once_and_waits_when_nothing_is(
        nats_server: EmbeddedNats) -> None:
    nc = await nats.connect(nats_server.url)
    js = jetstream(nc)
    await js.add_stream(name="PULL", subjects=["p.>"])
    for i in range(300):
        await js.publish(f"p.{i % 3}", str(i).encode(), headers={"Nats-Msg-Id": f"m{i}", "X": str(i)},
                         stream="PULL")
    sub = await js.pull_subscribe("p.>", durable="me", stream="PULL", config=consumer_config("me", "p.>"))
    got: list[int] = []
    t0 = time.perf_counter()
    first = await fetch(sub, 256, 1.0)
    got += [int(m.data) for m in first]
    rest = await fetch(sub, 256, 1.0)  # 44 there: a partial batch comes back at once, not after the timeout
    got += [int(m.data) for m in rest]
    assert time.perf_counter() - t0 < 0.9
    assert (len(first), len(rest)) == (256, 44)
    assert got == list(range(300))
    assert [(m.headers or {}).get("X") for m in rest[:2]] == ["256", "257"]
    for m in first + rest:
        await m.ack()

    # Nothing there: it waits (nats-py's lingering request) and takes what comes meanwhile.
    async def later() -> None:
        await asyncio.sleep(0.2)
        await js.publish("p.0", b"300", stream="PULL")

    publisher = asyncio.create_task(later())
    t1 = time.perf_counter()
    late = await fetch(sub, 256, 2.0)
    await publisher
    assert [int(m.data) for m in late] == [300]
    assert 0.15 < time.perf_counter() - t1 < 1.9
    await late[0].ack()
    with pytest.raises((TimeoutError, nats.errors.TimeoutError)):
        await fetch(sub, 256, 0.3)
    info = await js.consumer_info("PULL", "me")
    await nc.close()
    assert (info.num_pending, info.num_ack_pending, info.num_redelivered) == (0, 0, 0)
