"""Benchmark: replaying a case and auditing the whole 司法局 ledger, on a ledger of a million signed events.

Run from the project root::

    .venv/bin/python -m bench.replay --json                  # 1,000,000 events
    .venv/bin/python -m bench.replay --json --events 30000   # a quick run

The ledger is built once and kept (``--dir``, by default ``<tmp>/xiezhu-bench-replay-<N>``);
the next run with the same ``--events`` reuses it if its build finished (``manifest.json``
names the head the build ended at, and the ledger must still end there).

Building: assistance cases of three events each (requested, received, replied), between
six requesting and three assisting bureaus, each bureau with its own key in a
:class:`~agencies.trust.keys.KeyStore`.  Worker processes (one per CPU) make and sign the cases;
this process appends them with :meth:`Ledger.append` in batches of a few thousand and has
区司法局 sign a checkpoint after each batch.

Then, on that ledger, one after the other:

``replay``
    ``--replays`` random cases, each fetched with :meth:`Ledger.case` (by case id,
    indexed) and folded with :func:`aggregates.assistance.apply`, verifying every
    signature with the key ring first; the latency of each, p50 and p99.
``audit``
    :func:`broker.ledger.audit.audit` over the whole file with two worker processes: hash
    chain, index columns, every signature, every checkpoint.
``raw``
    The floor: the same rows read with plain ``sqlite3`` and the same signatures verified
    with PyNaCl, in one loop in one process; nothing else is checked.  It runs before and
    after the audit, and the audit is compared with both together, so that load arriving or
    leaving during the run weighs on both sides.
``rebuild``
    ``xiezhu projections rebuild`` (:func:`projections.rebuild.rebuild`, ``--workers``
    processes): the SLA, commitment-case and credit views built from the first entry into
    fresh files; and its floor, the same rows read with plain ``sqlite3`` in one process.
    The build stores each entry's opening as the ledger service does, so the rebuild opens
    payloads without a sealed box (decision 49).

Before ``audit`` and ``raw`` one untimed scan reads the whole table, so both start with
the file in the page cache.  The audit needs both cores and ``raw`` one, so other work on
the machine costs the audit more: the JSON has the load average before and after, how
much faster two processes verify Ed25519 signatures than one, measured in the same run, and
the CPU seconds of the audit (all its processes) and of raw, whose ratio other load does not
change.

The process exits with status 1 if the audit found a problem or a replayed case did not
end ``replied``.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import nacl.signing

from agencies.trust.keys import BureauSigner, KeyStore
from aggregates import assistance
from aggregates.assistance import CaseState
from aggregates.workdays import WorkingCalendar
from broker.ledger.audit import audit
from broker.ledger.store import Ledger
from broker.signing import KeyRing
from projections.commitments import CommitmentView
from projections.credit import CreditView
from projections.rebuild import rebuild
from projections.sla import SlaView
from schemas.assistance import (
    Applicant,
    AssistanceReceived,
    AssistanceReplied,
    AssistanceRequested,
    CommitmentItem,
    ItemResult,
    Matter,
)
from schemas.envelope import Envelope, Signed

DEFAULT_EVENTS = 1_000_000
EVENTS_PER_CASE = 3
REQUESTERS = ("shenpi", "zhujian", "weijian", "jiaotong", "wenlv", "nongye")
ASSISTORS = ("gongan", "shichang", "renshe")
CHECKPOINT_SIGNER = "sifa"
#: Cases one generating task makes (three times as many events go into one append and one checkpoint).
CASES_PER_BATCH = 2000
#: A letter number is ``<year><4 digits>``: a requester has 9999 a year, so the cases span years.
LETTERS_PER_YEAR = 9999
FIRST_YEAR = 2020
KEYS_VALID_FROM = datetime(FIRST_YEAR - 1, 1, 1, tzinfo=UTC)
#: 2: payloads sealed to their readers (decision 23), as the stores send them; 3: with the ledger's openings.
MANIFEST_VERSION = 3
MATTER = Matter(code="370405-XK-0101", name="食品经营许可")
ITEMS = (
    CommitmentItem(no=1, text="本人户籍登记在台儿庄区", check="hukou.residence"),
    CommitmentItem(no=2, text="本人无犯罪记录", check="police.no-criminal-record"),
)
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
GIVEN = "伟芳娜敏静磊洋勇艳杰军涛明霞平刚"


# -- making the cases (worker processes) ---------------------------------------------------

_signers: dict[str, BureauSigner] = {}


def _signer(keys_dir: str, code: str) -> BureauSigner:
    """As a bureau's store signs: the payload sealed to its readers, then the sealed bytes signed."""
    if code not in _signers:
        keys = KeyStore(Path(keys_dir))
        _signers[code] = keys.bureau_signer(code, keys.ring())
    return _signers[code]


def make_cases(task: tuple[str, int, int, int]) -> list[tuple[bytes, str, bytes]]:
    """Worker: the signed events (body, kid, sig) of cases ``first … first+count-1``, in order."""
    keys_dir, first, count, seed = task
    rng = random.Random(seed * 1_000_003 + first)
    out: list[tuple[bytes, str, bytes]] = []
    for i in range(first, first + count):
        out += make_case(i, rng, lambda env: _signer(keys_dir, env.sender).sign(env))
    return out


def make_case(i: int, rng: random.Random, sign: Callable[[Envelope], Signed]) -> list[tuple[bytes, str, bytes]]:
    """Case ``i``: a request, its signed arrival record and the reply, each signed as it is made."""
    requester = REQUESTERS[i % len(REQUESTERS)]
    assistor = ASSISTORS[(i // len(REQUESTERS)) % len(ASSISTORS)]
    k = i // len(REQUESTERS)  # this requester's k-th letter
    year, serial = FIRST_YEAR + k // LETTERS_PER_YEAR, k % LETTERS_PER_YEAR + 1
    sent = datetime(year, 1, 2, 1, tzinfo=UTC) + timedelta(minutes=50 * (serial - 1) + rng.randrange(30))
    case, number = _uuid(rng), f"{year}{serial:04d}"
    name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
    id_number = (f"370405{rng.randrange(1950, 2005)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"
                 f"{rng.randrange(10000):04d}")
    items = list(ITEMS[: 1 + i % 2])
    request_id = _uuid(rng)
    request = sign(Envelope(
        id=request_id, sender=requester, recipient=assistor, case=case, number=number, time=sent,
        payload=AssistanceRequested(
            requester=requester, assistor=assistor,
            applicant=Applicant(kind="person", name=name, id_number=id_number),
            matter=MATTER, applied_on=sent.date(), items=items, channel="platform",
            catalogue_item="XZ-0001", catalogue_version=1)))
    arrived = sent + timedelta(seconds=5 + rng.randrange(120))
    received = sign(Envelope(
        id=_uuid(rng), sender=assistor, recipient=requester, case=case, number=number, time=arrived,
        payload=AssistanceReceived(request_id=request_id, request_hash=request.digest, arrived_at=arrived)))
    replied = sign(Envelope(
        id=_uuid(rng), sender=assistor, recipient=requester, case=case, number=number,
        time=arrived + timedelta(minutes=1 + rng.randrange(240)),
        payload=AssistanceReplied(request_id=request_id, request_hash=request.digest, channel="platform",
                                  results=[ItemResult(no=it.no, verdict="true") for it in items],
                                  answered_by="auto:hukou")))
    return [(s.body, s.kid, s.sig) for s in (request, received, replied)]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# -- building the ledger (this process appends, the workers sign) ---------------------------


class Built:
    """A complete benchmark ledger on disk."""

    def __init__(self, directory: Path, manifest: dict[str, Any], cached: bool) -> None:
        self.dir = directory
        self.manifest = manifest
        self.cached = cached

    @property
    def ledger_path(self) -> Path:
        return self.dir / "ledger.db"

    @property
    def keys(self) -> KeyStore:
        return KeyStore(self.dir / "keys")


def ensure_ledger(directory: Path, cases: int, seed: int, log: Callable[[str], None]) -> Built:
    """The ledger of ``cases`` cases in ``directory``: reused if a finished build is there, else built."""
    manifest = _complete_manifest(directory, cases, seed)
    if manifest is not None:
        log(f"reusing the ledger in {directory} ({manifest['events']:,} events)")
        return Built(directory, manifest, cached=True)
    _remove_build(directory)
    directory.mkdir(parents=True, exist_ok=True)
    keys = KeyStore(directory / "keys")
    keys.ensure([*REQUESTERS, *ASSISTORS, CHECKPOINT_SIGNER], valid_from=KEYS_VALID_FROM)
    checkpoint_signer = keys.signer(CHECKPOINT_SIGNER)
    workers = os.cpu_count() or 1
    log(f"building {cases * EVENTS_PER_CASE:,} events in {directory} with {workers} signing processes")
    started = time.perf_counter()
    tasks = [(str(keys.dir), first, min(CASES_PER_BATCH, cases - first), seed)
             for first in range(0, cases, CASES_PER_BATCH)]
    # As the ledger service checks and appends: the same opener, so that each entry's opening is stored.
    opener = keys.opener(CHECKPOINT_SIGNER, remember=CASES_PER_BATCH * EVENTS_PER_CASE)
    ledger = Ledger(directory / "ledger.db", opener=opener)
    appended = 0
    try:
        with multiprocessing.get_context("forkserver").Pool(workers) as pool:
            for batch in pool.imap(make_cases, tasks):
                items = []
                for body, kid, sig in batch:
                    env = opener.open(body)
                    appended += 1
                    items.append((Signed(body=body, kid=kid, sig=sig), env, appended, env.time + timedelta(seconds=1)))
                ledger.append(items)
                ledger.checkpoint(lambda m: (checkpoint_signer.kid, checkpoint_signer.sign_bytes(m)), items[-1][3])
                if appended % (20 * CASES_PER_BATCH * EVENTS_PER_CASE) == 0:
                    log(f"  {appended:,} events, {time.perf_counter() - started:.0f} s")
        seconds = time.perf_counter() - started
        head_pos, head = ledger.head
        checkpoints = len(ledger.checkpoints())
    finally:
        ledger.close()
    manifest = {"version": MANIFEST_VERSION, "cases": cases, "events": appended, "seed": seed,
                "head_position": head_pos, "head_hash": head.hex(), "checkpoints": checkpoints,
                "build_seconds": round(seconds, 2), "build_workers": workers,
                "built_at": datetime.now(UTC).isoformat(timespec="seconds")}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))  # last: marks the build complete
    log(f"built in {seconds:.1f} s ({appended / seconds:,.0f} events/s)")
    return Built(directory, manifest, cached=False)


def _complete_manifest(directory: Path, cases: int, seed: int) -> dict[str, Any] | None:
    try:
        manifest: dict[str, Any] = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    wanted = {"version": MANIFEST_VERSION, "cases": cases, "seed": seed}
    if any(manifest.get(k) != v for k, v in wanted.items()) or not (directory / "ledger.db").is_file():
        return None
    ledger = Ledger(directory / "ledger.db")
    try:
        head_pos, head = ledger.head
    finally:
        ledger.close()
    same = (head_pos, head.hex()) == (manifest.get("head_position"), manifest.get("head_hash"))
    return manifest if same else None


def _remove_build(directory: Path) -> None:
    """Only the files a build makes: ``--dir`` may be a directory with other things in it."""
    for name in ("manifest.json", "ledger.db", "ledger.db-wal", "ledger.db-shm"):
        (directory / name).unlink(missing_ok=True)
    shutil.rmtree(directory / "keys", ignore_errors=True)


# -- measuring -------------------------------------------------------------------------------


def measure_replay(built: Built, ring: KeyRing, samples: int, seed: int) -> dict[str, Any]:
    """Fetch and fold random cases from the big ledger, one at a time."""
    rng = random.Random(seed)
    events = int(built.manifest["events"])
    with closing(_read_only(built.ledger_path)) as conn:
        case_ids = [conn.execute("SELECT case_id FROM entries WHERE pos = ?", (rng.randint(1, events),)).fetchone()[0]
                    for _ in range(samples)]
    ledger = Ledger(built.ledger_path, opener=built.keys.opener(CHECKPOINT_SIGNER))
    latencies: list[float] = []
    wrong = 0
    try:
        for case_id in case_ids:
            t = time.perf_counter()
            state = replay_case(ledger, ring, case_id)
            latencies.append(time.perf_counter() - t)
            if state is None or state.status != "replied" or state.events != EVENTS_PER_CASE:
                wrong += 1
    finally:
        ledger.close()
    return {"cases": samples, "not_replied": wrong,
            "p50_ms": round(_percentile(latencies, 50) * 1000, 3),
            "p99_ms": round(_percentile(latencies, 99) * 1000, 3),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 3),
            "max_ms": round(max(latencies) * 1000, 3)}


def replay_case(ledger: Ledger, ring: KeyRing, case_id: str) -> CaseState | None:
    """One case from the ledger alone: every signature checked, every payload opened, then the 附件2 fold."""
    state: CaseState | None = None
    assert ledger.opener is not None
    for entry in ledger.case(case_id):
        env = ring.verify(entry.signed, opener=ledger.opener)
        state = assistance.apply(state, env, entry.signed.digest)
    return state


def measure_audit(built: Built, ring: KeyRing, workers: int) -> dict[str, Any]:
    """The whole-ledger audit, as ``xiezhu`` runs it."""
    report = audit(built.ledger_path, ring, workers=workers)
    return {"ok": report.ok, "entries": report.entries, "signatures_verified": report.signatures_verified,
            "checkpoints_verified": report.checkpoints_verified, "checkpoints": report.checkpoints,
            "bad": report.bad, "first_problem": report.first_problem.reason if report.first_problem else None,
            "workers": workers, "seconds": report.seconds, "events_per_s": round(report.rate_per_s),
            # This process and the verifying workers: the audit's cost whatever else the machine runs.
            "cpu_seconds": report.cpu_seconds,
            "events_per_cpu_s": round(report.entries / report.cpu_seconds) if report.cpu_seconds else 0}


def measure_raw(built: Built) -> dict[str, Any]:
    """Plain sqlite3 and PyNaCl in one loop: the same rows, the same signatures, nothing else."""
    keys = {e.kid: nacl.signing.VerifyKey(e.public_key) for e in built.keys.trust_list().entries}
    n = 0
    with closing(_read_only(built.ledger_path)) as conn:
        started, cpu = time.perf_counter(), time.process_time()
        for kid, sig, body in conn.execute("SELECT kid, sig, body FROM entries ORDER BY pos"):
            keys[kid].verify(body, sig)
            n += 1
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"entries": n, "seconds": round(seconds, 3), "events_per_s": round(n / seconds),
            "cpu_seconds": round(cpu, 3), "events_per_cpu_s": round(n / cpu) if cpu else 0}


def _mean_raw(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The two raw runs as one figure (the rate of both together), each kept beside it."""
    n = before["entries"]
    seconds, cpu = before["seconds"] + after["seconds"], before["cpu_seconds"] + after["cpu_seconds"]
    return {"entries": n, "seconds": round(seconds / 2, 3), "events_per_s": round(2 * n / seconds),
            "cpu_seconds": round(cpu / 2, 3), "events_per_cpu_s": round(2 * n / cpu) if cpu else 0,
            "before": before, "after": after}


def measure_rebuild(built: Built, workers: int) -> dict[str, Any]:
    """``xiezhu projections rebuild``: the three read models built from the first entry into fresh files,
    as the command does (:func:`projections.rebuild.rebuild`, ``workers`` processes), on a fresh
    :class:`Ledger` with 区司法局's box key; then, in the same run, the raw floor of reading the same
    rows with plain sqlite3 in one process."""
    view_key = built.keys.store_key(CHECKPOINT_SIGNER)
    where = Path(tempfile.mkdtemp(prefix="xiezhu-bench-rebuild-"))
    out: dict[str, Any] = {"workers": workers}
    try:
        with closing(Ledger(built.ledger_path, opener=built.keys.opener(CHECKPOINT_SIGNER), read_only=True)) as ledger:
            done = rebuild(ledger, (where / "sla.db", lambda p: SlaView(p, WorkingCalendar())),
                           [("commitments", where / "commitments.db", lambda p: CommitmentView(p, view_key=view_key)),
                            ("credit", where / "credit.db", lambda p: CreditView(p, view_key=view_key))],
                           workers=workers)
        with closing(sqlite3.connect(where / "sla.db")) as db:
            rows = int(db.execute("SELECT count(*) FROM assistance_requests").fetchone()[0])
    finally:
        shutil.rmtree(where, ignore_errors=True)
    out |= {"entries": done.entries, "seconds": round(done.seconds, 3), "events_per_s": round(done.rate_per_s),
            "sla_rows": rows,
            # What the machine's other load does not change: CPU seconds of every process of the rebuild.
            "cpu_seconds": round(done.cpu_seconds, 3), "events_per_cpu_s": round(done.rate_per_cpu_s)}
    for name, v in done.views.items():
        out[name] = {"entries": v.entries, "seconds": round(v.seconds, 3), "opened": v.opened,
                     "opened_with_openings": v.opened_with_openings}
    out["raw_read"] = measure_raw_read(built)
    out["over_raw_read"] = round(done.rate_per_s / out["raw_read"]["events_per_s"], 3)
    out["per_cpu_s_over_raw_read"] = round(done.rate_per_cpu_s / out["raw_read"]["events_per_cpu_s"], 3)
    return out


def measure_raw_read(built: Built) -> dict[str, Any]:
    """The floor of a rebuild: the same rows (every column a rebuild reads) with plain sqlite3, one process."""
    n = 0
    with closing(_read_only(built.ledger_path)) as conn:
        started, cpu = time.perf_counter(), time.process_time()
        for _row in conn.execute("SELECT pos, case_id, type, arrived_at, stream_seq, kid, sig, body, prev_hash, "
                                 "hash FROM entries ORDER BY pos"):
            n += 1
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"entries": n, "seconds": round(seconds, 3), "events_per_s": round(n / seconds),
            "cpu_seconds": round(cpu, 3), "events_per_cpu_s": round(n / cpu) if cpu else 0}


def verify_scaling(n: int = 20_000) -> dict[str, Any]:
    """How much two processes verifying Ed25519 at once gain over one, on this machine (the audit's ceiling)."""
    one = _verify_loop(n)
    with multiprocessing.get_context("forkserver").Pool(2) as pool:
        two = pool.map(_verify_loop, [n, n])
    return {"one_process_us": round(one * 1e6, 1), "two_processes_us": round(statistics.fmean(two) * 1e6, 1),
            "speedup": round(2 * one / statistics.fmean(two), 2)}


def _verify_loop(n: int) -> float:
    """Seconds per PyNaCl verification of a request-sized body, over ``n`` of them."""
    key = nacl.signing.SigningKey(bytes(32))
    body = bytes(650)
    sig, verify = key.sign(body).signature, key.verify_key.verify
    started = time.perf_counter()
    for _ in range(n):
        verify(body, sig)
    return (time.perf_counter() - started) / n


def warm(path: Path) -> None:
    """Read every row once (untimed), so that neither measured scan pays for the disk."""
    with closing(_read_only(path)) as conn:
        conn.execute("SELECT sum(length(body) + length(sig) + length(hash)) FROM entries").fetchone()


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _percentile(samples: list[float], pct: int) -> float:
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


# -- command line ----------------------------------------------------------------------------


def run(events: int, directory: Path, replays: int, workers: int, seed: int,
        log: Callable[[str], None]) -> dict[str, Any]:
    """Build or reuse the ledger, then measure replay, audit and the raw floor."""
    load_before = os.getloadavg()[0]
    cases = math.ceil(events / EVENTS_PER_CASE)
    built = ensure_ledger(directory, cases, seed, log)
    ring = built.keys.ring()
    m = built.manifest
    log(f"replaying {replays} random cases")
    replay = measure_replay(built, ring, replays, seed)
    warm(built.ledger_path)
    # The raw floor before and after the audit, so that load that comes or goes during the run counts
    # on both sides: the audit is compared with the mean of the two.
    log("raw: sqlite3 + PyNaCl in one process")
    raw_before = measure_raw(built)
    log(f"auditing {m['events']:,} events with {workers} worker processes")
    audited = measure_audit(built, ring, workers)
    log("raw again")
    raw_after = measure_raw(built)
    raw = _mean_raw(raw_before, raw_after)
    log(f"rebuilding the read models from the ledger with {workers} worker processes")
    rebuilt = measure_rebuild(built, workers)
    scaling = verify_scaling()
    return {
        "ok": audited["ok"] and replay["not_replied"] == 0 and raw["entries"] == audited["entries"],
        "events": m["events"], "cases": m["cases"], "dir": str(directory),
        "build": {"cached": built.cached, "seconds": m["build_seconds"],
                  "events_per_s": round(m["events"] / m["build_seconds"]), "workers": m["build_workers"],
                  "checkpoints": m["checkpoints"], "ledger_bytes": built.ledger_path.stat().st_size},
        "replay": replay,
        "audit": audited,
        "raw": raw,
        "audit_over_raw": round(audited["events_per_s"] / raw["events_per_s"], 2),
        # CPU for CPU: what the audit's checks cost beyond the raw floor's, whatever else the machine runs.
        "audit_over_raw_per_cpu_s": round(audited["events_per_cpu_s"] / raw["events_per_cpu_s"], 2)
        if raw["events_per_cpu_s"] else None,
        "rebuild": rebuilt,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "sqlite": sqlite3.sqlite_version, "pynacl": metadata.version("PyNaCl"),
                    # Other work on the machine shows here: the audit needs both cores, raw only one.
                    "load_1m_before": round(load_before, 2), "load_1m_after": round(os.getloadavg()[0], 2),
                    "ed25519_verify": scaling},
    }


def table(r: dict[str, Any]) -> list[str]:
    """The result for people."""
    b, p, a, w = r["build"], r["replay"], r["audit"], r["raw"]
    return [
        f"ledger: {r['events']:,} events in {r['cases']:,} cases, {b['ledger_bytes'] / 1e6:,.0f} MB, {r['dir']}",
        f"build:  {b['seconds']:.1f} s, {b['events_per_s']:,} events/s"
        f"{' (an earlier run; reused)' if b['cached'] else ''}",
        f"replay: {p['cases']} random cases, p50 {p['p50_ms']:.2f} ms, p99 {p['p99_ms']:.2f} ms, "
        f"max {p['max_ms']:.2f} ms",
        f"audit:  {a['seconds']:.1f} s, {a['events_per_s']:,} events/s with {a['workers']} workers "
        f"({a['events_per_cpu_s']:,} per CPU second); {'OK' if a['ok'] else 'FAILED: ' + str(a['first_problem'])}",
        f"raw:    {w['seconds']:.1f} s, {w['events_per_s']:,} events/s (sqlite3 + PyNaCl, one process; before "
        f"{w['before']['events_per_s']:,}/s, after {w['after']['events_per_s']:,}/s; "
        f"{w['events_per_cpu_s']:,} per CPU second)",
        f"rebuild: {r['rebuild']['seconds']:.1f} s, {r['rebuild']['events_per_s']:,} events/s, all three views "
        f"with {r['rebuild']['workers']} workers ({r['rebuild']['events_per_cpu_s']:,} per CPU second); "
        f"raw sqlite3 read {r['rebuild']['raw_read']['events_per_s']:,}/s",
        f"audit / raw: {r['audit_over_raw']}× (per CPU second {r['audit_over_raw_per_cpu_s']}×); two processes verify "
        f"{r['machine']['ed25519_verify']['speedup']}× as fast as one here; all correct: {r['ok']}",
    ]


def main(argv: list[str] | None = None) -> int:
    """Run once and print the result; status 1 if the audit or a replay went wrong."""
    p = argparse.ArgumentParser(prog="python -m bench.replay", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="at least this many events (3 per case)")
    p.add_argument("--dir", type=Path, help="where the ledger is built and kept "
                                            "(default: <tmp>/xiezhu-bench-replay-<events>)")
    p.add_argument("--replays", type=int, default=500, help="random cases replayed one by one")
    p.add_argument("--workers", type=int, default=2, help="audit worker processes")
    p.add_argument("--seed", type=int, default=20260921)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if a.events < EVENTS_PER_CASE or a.replays < 1 or a.workers < 1:
        p.error(f"--events must be at least {EVENTS_PER_CASE}, --replays and --workers at least 1")
    directory = a.dir or Path(tempfile.gettempdir()) / f"xiezhu-bench-replay-{a.events}"
    result = run(a.events, directory, a.replays, a.workers, a.seed,
                 lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(result, ensure_ascii=False, indent=2) if a.json else "\n".join(table(result)))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
