"""The crypto floor of one xiezhu exchange: its cryptography alone, on every core.

Used by :mod:`bench.exchange`, which measures it in the same run as the exchanges, on
envelopes taken from that run, and reports ``xiezhu.rate_per_s / crypto_floor``.

One exchange is three events (request, arrival record, reply).  For each event the floor
does exactly the cryptography the system does for it, with the same code:

* seal the payload to three readers (sender, recipient, 区司法局): :func:`broker.sealing.seal`,
  which encodes the payload, encrypts it under a fresh key and seals that key three times;
* sign the sealed bytes (Ed25519);
* verify it twice: the recipient's intake check (:func:`broker.intake.check`: headers,
  signature, key validity, sender, subject), which also opens the payload with the
  recipient's key, and the ledger's signature check (:meth:`broker.signing.KeyRing.check`).

That is one sealing, one signature, two verifications and one opening per event, as
issue 14 defines the floor.  (The ledger service opens each payload too, to be sure it
could replay it; that second opening is not counted, so the floor is a little higher than
what the system must do, and the ratio a little stricter.)  No storage, no network, no
event loop.  The envelopes are real ones, taken from the xiezhu run; the keys are fresh,
of the same kinds.

One worker process per core runs the loop for the same ``seconds`` window (they all start
at one agreed instant, after their set-up), so the floor is the number of exchanges all
of them completed, divided by the window.  On a machine shared with other work the floor
drops as the exchanges' rate does: compare them from the same run.
"""
from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import nacl.public
import nacl.signing
import nacl.utils

from broker.intake import Delivery, check
from broker.sealing import Opener, seal
from broker.signing import KeyRing, b64
from schemas.envelope import (
    HDR_KEY,
    HDR_MSG_ID,
    HDR_SIG,
    Envelope,
    Signed,
    decode_envelope,
    encode_envelope,
    subject_for,
)
from schemas.trust import TrustEntry

#: The bureau whose ledger every event is also sealed to (its code does not matter here).
LEDGER_READER = "sifa"
#: Operations timed per event, in the order they run.
STEPS = ("seal", "sign", "verify_open", "verify_ledger")


@dataclass(frozen=True)
class Parties:
    """Fresh keys for every party of the sample envelopes, and the ring that trusts them."""

    ring: KeyRing
    signers: dict[str, nacl.signing.SigningKey]
    kids: dict[str, str]
    openers: dict[str, Opener]

    @classmethod
    def fresh(cls, bureaus: Sequence[str]) -> Parties:
        since = datetime.now(UTC) - timedelta(days=1)
        signers, boxes, entries, kids = {}, {}, [], {}
        for code in bureaus:
            signers[code] = nacl.signing.SigningKey.generate()
            boxes[code] = nacl.public.PrivateKey.generate()
            kids[code] = f"{code}-floor"
            entries.append(TrustEntry(kid=kids[code], bureau=code, valid_from=since,
                                      public_key=bytes(signers[code].verify_key),
                                      box_key=bytes(boxes[code].public_key)))
        openers = {code: Opener(code, {kids[code]: bytes(box)}) for code, box in boxes.items()}
        return cls(KeyRing(entries), signers, kids, openers)


def one_event(env: Envelope, p: Parties, spent: dict[str, float]) -> None:
    """Seal, sign, verify-and-open at the recipient, verify at the ledger; adds each step's time."""
    t0 = time.perf_counter()
    readers = [(p.kids[code], p.ring.entry(p.kids[code]).box_key)  # type: ignore[union-attr]
               for code in (env.sender, env.recipient, LEDGER_READER)]
    body = seal(env, readers)
    t1 = time.perf_counter()
    sig = p.signers[env.sender].sign(body).signature
    t2 = time.perf_counter()
    delivery = Delivery(subject=subject_for(env), data=body, stream_seq=1, num_delivered=1, timestamp=env.time,
                        headers={HDR_MSG_ID: env.id, HDR_KEY: p.kids[env.sender], HDR_SIG: b64(sig)})
    _, opened = check(delivery, p.ring, env.recipient, p.openers[env.recipient])
    t3 = time.perf_counter()
    p.ring.check(Signed(body=body, kid=p.kids[env.sender], sig=sig))
    t4 = time.perf_counter()
    if opened.payload != env.payload:
        raise AssertionError("the floor's opening returned another payload")
    spent["seal"] += t1 - t0
    spent["sign"] += t2 - t1
    spent["verify_open"] += t3 - t2
    spent["verify_ledger"] += t4 - t3


def nonce_us(n: int = 2000) -> dict[str, float]:
    """What one 24-byte nonce costs from each source (issue 14 suspected ``os.urandom``)."""
    out = {}
    for name, source in (("os_urandom", os.urandom), ("libsodium_randombytes", nacl.utils.random)):
        start = time.perf_counter()
        for _ in range(n):
            source(24)
        out[name] = round((time.perf_counter() - start) / n * 1e6, 2)
    return out


def worker(bodies: list[bytes], start_at: float, seconds: float) -> tuple[int, dict[str, float], float]:
    """Exchanges completed in ``seconds`` from ``start_at`` (wall clock), time per step, and the CPU seconds used.

    A worker that was ready only after ``start_at`` (a busy machine starts processes slowly)
    still runs its whole window, from when it was ready.
    """
    envs = [decode_envelope(b) for b in bodies]
    parties = Parties.fresh(sorted({e.sender for e in envs} | {e.recipient for e in envs} | {LEDGER_READER}))
    spent = dict.fromkeys(STEPS, 0.0)
    for env in envs:  # warm up (first-call costs), off the clock
        one_event(env, parties, dict.fromkeys(STEPS, 0.0))
    while time.time() < start_at:
        time.sleep(min(0.01, max(0.0, start_at - time.time())))
    end, done, cpu = max(start_at, time.time()) + seconds, 0, time.process_time()
    while time.time() < end:
        for env in envs:
            one_event(env, parties, spent)
        done += 1
    return done, spent, time.process_time() - cpu


def measure(envelopes: Sequence[Envelope], *, seconds: float = 3.0, workers: int | None = None) -> dict[str, Any]:
    """The floor in exchanges/s on ``workers`` processes (default: one per core), and what one event costs."""
    workers = workers or os.cpu_count() or 1
    bodies = [encode_envelope(e) for e in envelopes]
    # forkserver: the caller runs threads (nats-py, asyncio.to_thread); a plain fork beside them is unsafe.
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        # Each worker needs a moment to start and import; all begin counting at one instant.
        start_at = time.time() + 1.5 + 0.25 * workers
        results = list(pool.map(worker, [bodies] * workers, [start_at] * workers, [seconds] * workers))
    exchanges = sum(n for n, _, _ in results)
    events = exchanges * len(envelopes)
    spent = {step: sum(s[step] for _, s, _ in results) for step in STEPS}
    cpu = sum(c for _, _, c in results)
    return {
        "rate_per_s": round(exchanges / seconds, 1),
        "workers": workers,
        "seconds": seconds,
        "exchanges": exchanges,
        "events_per_exchange": len(envelopes),
        "per_worker_rate_per_s": [round(n / seconds, 1) for n, _, _ in results],
        # CPU time one exchange's cryptography takes (on a busy machine a worker gets less than a core).
        "cpu_ms_per_exchange": round(cpu / exchanges * 1000, 3) if exchanges else None,
        # Per event, averaged over every worker: what each step of the cryptography costs.
        "per_event_us": {step: round(t / events * 1e6, 1) if events else None for step, t in spent.items()},
        # Two random draws per sealed event (payload key and nonce), next to the ~100 µs of each sealed box.
        "nonce_us": nonce_us(),
    }
