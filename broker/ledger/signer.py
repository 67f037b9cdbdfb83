"""区司法局's checkpoint signer, off the ledger's host (decision 49).

Whoever holds the checkpoint key next to the ledger's database can rewrite, re-chain and
re-sign it.  So the key may live on another machine, in ``xiezhu checkpoint-signer``, which
the ledger asks over NATS (``xzsign.checkpoint``; only the ``ledger`` user may ask, only the
``signer`` user hears it, and it may answer nothing else).  The signer is itself a witness:

- it remembers the last head it signed (``signer/state.json``, written before it answers);
- the ledger sends, with the head to sign, the checkpoint it last holds and the leaf hashes
  of every entry since (no entry's content); the signer recomputes the chain from its own last
  head over those leaves and signs only if it reaches the head asked for.  A ledger rolled
  back, forked or rewritten asks from a head the signer did not sign, or sends leaves that do
  not reach it: refused, with one line saying which;
- it publishes each head on ``xzwit.heads`` before it answers, so no signed head exists that
  the witnesses did not get.

A first request, with no state yet, is taken from the ledger's last checkpoint if that carries a
valid 区司法局 signature under the trust list (trust on first use, logged), or from the genesis.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from nats.aio.client import Client

from broker.files import write_private
from broker.ledger.store import GENESIS, Checkpoint, Ledger, checkpoint_message, leaf_hash, link
from broker.signing import KeyRing
from broker.streams import HEADS_SUBJECT, SIGN_SUBJECT
from broker.threads import in_thread
from broker.witness import Head, checkpoint_problems, encode
from schemas.errors import XiezhuError

log = logging.getLogger(__name__)

#: At most this many leaves in one request (64 bytes each as hex: well under NATS's 1 MB payload).
MAX_LEAVES = 4096
#: Seconds the ledger waits for the signer's answer.
SIGN_TIMEOUT_S = 10.0


class SignerRefused(XiezhuError):
    """The signer will not sign this head: it does not extend what the signer signed last."""

    code = "ledger.signer-refused"


class SignRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Sign ``head`` at ``pos``: it follows the checkpoint ``since`` (None: the genesis) by ``leaves``."""

    pos: int
    head: str
    since: Head | None
    #: The leaf hash of each entry after ``since`` up to ``pos``, hex.
    leaves: list[str]


class SignReply(msgspec.Struct, frozen=True, kw_only=True):
    head: Head | None = None
    error: str = ""


class HeadSigner:
    """The signer's own logic: the key, the last head signed, and the check that a new one extends it."""

    def __init__(self, sign: Callable[[bytes, datetime], tuple[str, bytes]], ring: KeyRing, state: Path,
                 now: Callable[[], datetime]) -> None:
        self._sign = sign
        self.ring = ring
        self.state = Path(state)
        self.now = now

    @property
    def last(self) -> Head | None:
        """The last head this signer signed (None: it has signed nothing yet)."""
        try:
            return msgspec.json.decode(self.state.read_bytes(), type=Head)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise SignerRefused(f"the signer's state {self.state} cannot be read ({e}): it signs nothing until an "
                                "operator restores it",
                                zh=f"无法读取签名程序的状态文件 {self.state}（{e}）："
                                   "在管理员恢复之前不签署任何内容") from e

    def sign(self, req: SignRequest) -> Head:
        """Sign the head if it extends the last one signed; raises :class:`SignerRefused` with the reason.

        The leaves may start before the last head signed (the ledger lost its copy of that
        checkpoint in a crash after the signer answered): then they must pass through it.
        """
        last = self.last
        if last is not None and req.pos == last.pos and req.head == last.head:
            return last  # asked again (the answer was lost): the same signature
        since = self._since(req, last)
        base = since.pos if since else 0
        if len(req.leaves) != req.pos - base or req.pos <= base:
            raise SignerRefused(f"{len(req.leaves)} leaves cannot lead from position {base} to {req.pos}",
                                zh=f"{len(req.leaves)} 个叶子无法从位置 {base} 延伸到 {req.pos}")
        if last is not None and req.pos <= last.pos:
            raise SignerRefused(f"position {req.pos} is not past position {last.pos}, the last this signer signed: "
                                "the ledger was rolled back",
                                zh=f"位置 {req.pos} 不在本签名程序最后签署的位置 {last.pos} 之后：账本被回退了")
        chain = since.head_bytes() if since else GENESIS
        try:
            for pos, leaf in enumerate(req.leaves, start=base + 1):
                chain = link(chain, bytes.fromhex(leaf))
                if last is not None and pos == last.pos and chain.hex() != last.head:
                    raise SignerRefused(f"the ledger's entries up to position {last.pos} no longer hash to the head "
                                        "this signer signed there: the ledger was rolled back and rewritten",
                                        zh=f"账本截至位置 {last.pos} 的条目与本签名程序当时签署的链头不再一致："
                                           "账本被回退并改写了")
        except ValueError as e:
            raise SignerRefused(f"a leaf is not hex: {e}", zh=f"叶子不是十六进制：{e}") from e
        if chain.hex() != req.head:
            raise SignerRefused(f"the leaves from position {base} do not lead to the head asked for at position "
                                f"{req.pos}: the request does not describe the ledger's chain",
                                zh=f"自位置 {base} 起的叶子不能得出位置 {req.pos} 所请求的链头：请求与账本的链不符")
        at = self.now()
        signed_at = at.isoformat()
        kid, sig = self._sign(checkpoint_message(req.pos, chain, signed_at), at)
        head = Head(pos=req.pos, head=req.head, signed_at=signed_at, kid=kid, sig=sig)
        self.state.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        write_private(tmp, encode(head))
        os.replace(tmp, self.state)
        return head

    def _since(self, req: SignRequest, last: Head | None) -> Head | None:
        """Where the request's leaves start: the genesis, the last head signed, or a validly signed checkpoint."""
        since = req.since
        if since is None or (last is not None and (since.pos, since.head) == (last.pos, last.head)):
            return since
        problems = checkpoint_problems(self.ring, since.pos, since.head_bytes(), since.signed_at, since.kid, since.sig)
        if problems:
            raise SignerRefused(f"the ledger's last checkpoint is not 区司法局's: {problems[0][1]}",
                                zh=f"账本的最后一个检查点不是区司法局签署的：{problems[0][1]}")
        if last is None:
            log.warning("checkpoint signer: first head taken from the ledger's checkpoint at position %d (%s…)",
                        since.pos, since.head[:16])
        elif since.pos > last.pos:
            raise SignerRefused(f"the ledger's last checkpoint, at position {since.pos}, lies past the last this "
                                f"signer signed ({last.pos}) and was signed elsewhere: it cannot tell that it "
                                "extends its own",
                                zh=f"账本最后一个检查点位于位置 {since.pos}，在本签名程序最后签署的位置"
                                   f"（{last.pos}）之后，且在别处签署：无法确认其延续本签名程序所签的链")
        return since


class SignerService:
    """Answers ``xzsign.checkpoint`` with :class:`HeadSigner`; publishes each signed head first."""

    def __init__(self, signer: HeadSigner) -> None:
        self.signer = signer
        self.signed = 0
        self.refused: list[str] = []
        self._nc: Client | None = None
        self._sub: Any = None
        self._lock = asyncio.Lock()

    async def start(self, nc: Client) -> None:
        self._nc = nc
        self._sub = await nc.subscribe(SIGN_SUBJECT, cb=self._on_request)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    async def _on_request(self, msg: Any) -> None:
        async with self._lock:  # one at a time: each extends the last
            try:
                req = msgspec.json.decode(msg.data, type=SignRequest)
            except ValueError as e:
                await msg.respond(msgspec.json.encode(SignReply(error=f"not a signing request: {e}")))
                return
            try:
                head = await in_thread(self.signer.sign, req)
            except SignerRefused as e:
                self.refused.append(str(e))
                log.error("checkpoint signer refused position %d: %s", req.pos, e)
                await msg.respond(msgspec.json.encode(SignReply(error=str(e))))
                return
            assert self._nc is not None
            await self._nc.jetstream().publish(HEADS_SUBJECT, encode(head),
                                               headers={"Nats-Msg-Id": f"head:{head.pos}:{head.head}"})
            self.signed += 1
            log.info("checkpoint signed at position %d", head.pos)
            await msg.respond(msgspec.json.encode(SignReply(head=head)))


class RemoteSigner:
    """The ledger's side: asks the signer to sign its head, and keeps the checkpoint it gets."""

    def __init__(self, nc: Client, *, timeout: float = SIGN_TIMEOUT_S) -> None:
        self.nc = nc
        self.timeout = timeout

    async def checkpoint(self, ledger: Ledger) -> Checkpoint | None:
        """Have the head signed (in steps of :data:`MAX_LEAVES`); None if it has a checkpoint already."""
        cp: Checkpoint | None = None
        while True:
            req = await in_thread(request_for, ledger)
            if req is None:
                return cp
            try:
                answer = await self.nc.request(SIGN_SUBJECT, msgspec.json.encode(req), timeout=self.timeout)
            except Exception as e:  # noqa: BLE001 - no signer listening, NATS away: the next checkpoint tries again
                raise SignerRefused(f"no answer from the checkpoint signer ({type(e).__name__}: {e}); "
                                    "is `xiezhu checkpoint-signer` running?",
                                    zh=f"检查点签名程序没有应答（{type(e).__name__}：{e}）；"
                                       "`xiezhu checkpoint-signer` 是否在运行？") from e
            reply = msgspec.json.decode(answer.data, type=SignReply)
            if reply.head is None:
                raise SignerRefused(f"the checkpoint signer refused position {req.pos}: {reply.error}",
                                    zh=f"检查点签名程序拒绝签署位置 {req.pos}：{reply.error}")
            h = reply.head
            cp = Checkpoint(h.pos, h.head_bytes(), h.signed_at, h.kid, h.sig)
            await in_thread(ledger.add_checkpoint, cp)


def request_for(ledger: Ledger) -> SignRequest | None:
    """What to ask the signer: the next head to sign after the ledger's last checkpoint (None: nothing new)."""
    pos, _ = ledger.head
    done = ledger.checkpoints()
    since = Head.of(done[-1]) if done else None
    start = since.pos if since else 0
    if pos <= start:
        return None
    upto = min(pos, start + MAX_LEAVES)
    entries = list(ledger.entries(after=start, limit=upto - start))
    leaves = [leaf_hash(e.pos, e.arrived_at, e.signed.kid, e.signed.sig, e.signed.body, stream_seq=e.stream_seq)
              for e in entries]
    return SignRequest(pos=upto, head=entries[-1].hash.hex(), since=since, leaves=[x.hex() for x in leaves])
