"""NATS credentials: one NKey user per bureau, and the server permissions that confine it.

A bureau's NATS user may publish only as itself (``xz.<code>.>``, ``xzdlq.<code>.>``, its
countersignatures on ``xzwit.cosign.<code>``), read only its own pre-provisioned consumer
``agent-<code>`` (pull, info, ack), the public trust list and the witnesses (``XZ_WITNESS``),
and subscribe only to its own reply inbox ``_INBOX_<code>.>``, the trust list's subject and
the heads' subject.  It cannot create, delete or read any other consumer, and cannot
touch a stream.  The server enforces this, so a bureau whose host is taken over still
cannot speak as another bureau or read its mail.

Service users go with them: ``ledger`` (区司法局's ledger: pulls ``ledger``, dead-letters
as ``ledger``, publishes the signed checkpoint heads on ``xzwit.heads``), ``admin``
(operations: looks at the streams and the durable consumers, reads the dead letters and
publishes the trust list; it creates nothing), and ``provisioner``, a one-shot user that
creates the four streams and the registry's durable consumers and is then removed from the
server's configuration (decision 34).  Neither can update, delete or purge a stream, delete
a message or a consumer, or read mail; once the provisioner is gone nobody can change a
consumer.  ``signer`` holds 区司法局's checkpoint key off the ledger's host: it hears only the
ledger's signing requests, may answer only those, and publishes the heads it signs (decision 49).

Seeds live in ``<directory>/<name>.nk`` with mode 0600; a looser file is refused.  The
server configuration holds only public keys.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import nkeys

from broker.files import write_private
from broker.streams import (
    DLQ_PREFIX,
    DLQ_STREAM,
    EVENTS_STREAM,
    EVENTS_SUBJECTS,
    HEADS_SUBJECT,
    LEDGER_CONSUMER,
    SIGN_SUBJECT,
    TRUST_STREAM,
    TRUST_SUBJECT,
    WITNESS_STREAM,
    agent_consumer,
    cosign_subject,
    inbox_filter,
    sending_stream,
    witness_stream,
)
from schemas.errors import XiezhuError

#: The ledger service's user; it dead-letters as receiver ``ledger`` and reads consumer ``ledger``.
LEDGER = LEDGER_CONSUMER
#: The operations user: checks streams and consumers, reads dead letters, publishes the trust list.
ADMIN = "admin"
#: The one-shot user that creates the streams and the durable consumers, then is removed.
PROVISIONER = "provisioner"
#: 区司法局's checkpoint signer off the ledger's host (decision 49): answers the ledger's requests, publishes heads.
SIGNER = "signer"
SEED_SUFFIX = ".nk"

Role = Literal["bureau", "ledger", "admin", "provisioner", "signer"]
_NAME = re.compile(r"^[a-z][a-z0-9-]{1,31}$")  # one NATS subject token, as aggregates.registry allows
_JS_API = "$JS.API"

#: Reading the root-signed trust list, which every user follows: the last version by direct
#: get (``get_last_msg(direct=True)``), earlier ones by sequence (a follower that missed a
#: root handover walks the stream, decision 25), new ones by subscribing to the subject.
#: ``XZ_TRUST`` holds nothing but the public list.  Only the provisioner publishes it;
#: followers check the root's signature anyway.
_TRUST_READ = (f"{_JS_API}.DIRECT.GET.{TRUST_STREAM}.{TRUST_SUBJECT}", f"{_JS_API}.DIRECT.GET.{TRUST_STREAM}")
#: Reading the witnesses (decision 49): ``XZ_WITNESS`` holds only signed chain heads and countersignatures,
#: public like the trust list; a bureau walks the heads by sequence, the audit reads everything.
_WITNESS_READ = (f"{_JS_API}.DIRECT.GET.{WITNESS_STREAM}", f"{_JS_API}.DIRECT.GET.{WITNESS_STREAM}.>")
#: The streams the provisioner creates and ``admin`` looks at.
_STREAMS = (EVENTS_STREAM, DLQ_STREAM, TRUST_STREAM, WITNESS_STREAM)

#: Never granted to a bureau or the ledger.  The allow lists already exclude these; the
#: explicit deny keeps them out should an allow list ever be widened by mistake.
_DENIED_API = (
    f"{_JS_API}.CONSUMER.CREATE.>",  # a new consumer could filter on another bureau's mail
    f"{_JS_API}.CONSUMER.DURABLE.CREATE.>",
    f"{_JS_API}.CONSUMER.DELETE.>",
    f"{_JS_API}.CONSUMER.PAUSE.>",  # a paused consumer delivers nothing
    f"{_JS_API}.CONSUMER.UNPIN.>",
    f"{_JS_API}.STREAM.>",  # delete, purge, update, message get, and INFO's per-subject counts
    *(f"{_JS_API}.DIRECT.GET.{stream}{rest}" for stream in (EVENTS_STREAM, DLQ_STREAM) for rest in ("", ".>")),
)

#: The ledger's: the same, but for reading ``XZ``'s messages by sequence (``STREAM.MSG.GET.XZ``); every
#: other stream call is denied by name.
_LEDGER_DENIED_API = (
    *(d for d in _DENIED_API if d != f"{_JS_API}.STREAM.>"),
    *(f"{_JS_API}.STREAM.{verb}.>" for verb in ("CREATE", "UPDATE", "DELETE", "PURGE", "MSG.DELETE", "INFO",
                                                 "SNAPSHOT", "RESTORE", "PEER.REMOVE", "LEADER.STEPDOWN")),
    f"{_JS_API}.STREAM.LIST", f"{_JS_API}.STREAM.NAMES",
)

#: Never granted to the provisioner either, though it creates streams and consumers: whatever
#: would destroy or rewrite what a stream holds, or read the mail in it.  Stream updates are
#: out too: an update may add subjects (a stream capturing a bureau's reply inbox) or shrink
#: limits.  An operator does these deliberately, as a NATS user of their own (decision 22).
_ADMIN_DENIED_API = (
    f"{_JS_API}.STREAM.DELETE.>",
    f"{_JS_API}.STREAM.PURGE.>",
    f"{_JS_API}.STREAM.MSG.DELETE.>",
    f"{_JS_API}.STREAM.UPDATE.>",
    f"{_JS_API}.CONSUMER.DELETE.>",
    f"{_JS_API}.CONSUMER.PAUSE.>",
    f"{_JS_API}.CONSUMER.UNPIN.>",
    f"{_JS_API}.CONSUMER.DURABLE.CREATE.>",  # names a consumer but not its filter; provisioning pins both
    f"{_JS_API}.STREAM.MSG.GET.{EVENTS_STREAM}",
    *(f"{_JS_API}.DIRECT.GET.{stream}{rest}" for stream in (EVENTS_STREAM, DLQ_STREAM) for rest in ("", ".>")),
)

#: ``admin`` also may not create or re-configure anything (see :func:`_admin_api`).
_PROVISIONED_DENIED_API = (
    *_ADMIN_DENIED_API,
    f"{_JS_API}.CONSUMER.CREATE.>",
    f"{_JS_API}.STREAM.CREATE.>",
)


class AuthError(XiezhuError):
    """A NATS seed file is missing, malformed or too open, or a name cannot be a NATS user."""

    code = "nats.auth"


@dataclass(frozen=True, kw_only=True)
class Identity:
    """One NATS user: its name (a bureau code, ``ledger`` or ``admin``), role, public NKey and seed file."""

    name: str
    role: Role
    public_key: str
    seed_file: Path | None
    #: A seed held only in memory (the embedded server's one-shot provisioner), never written.
    seed: str | None = field(default=None, repr=False)

    def read_seed(self) -> str:
        """The seed: from memory, else from its 0600 file."""
        if self.seed is not None:
            return self.seed
        assert self.seed_file is not None
        return read_seed(self.seed_file)

    @property
    def inbox_prefix(self) -> str:
        """The client's reply-inbox prefix; the only subjects this user may subscribe to are below it."""
        return f"_INBOX_{self.name}"


@dataclass(frozen=True)
class Permissions:
    """What a user may publish and subscribe to; anything not allowed is refused by the server."""

    publish_allow: tuple[str, ...]
    publish_deny: tuple[str, ...]
    subscribe_allow: tuple[str, ...]
    #: May answer, once and within seconds, a request it received (the server's ``allow_responses``).
    allow_responses: bool = False


def role_of(name: str) -> Role:
    """The role a user name stands for."""
    roles = {LEDGER: "ledger", ADMIN: "admin", PROVISIONER: "provisioner", SIGNER: "signer"}
    return roles.get(name, "bureau")  # type: ignore[return-value]


def seed_path(directory: Path, name: str) -> Path:
    """Where the seed of ``name`` lives."""
    return Path(directory) / f"{name}{SEED_SUFFIX}"


def generate_identities(codes: Iterable[str], directory: Path, *, provisioner: bool = False) -> dict[str, Identity]:
    """One NKey user per bureau plus ``ledger`` and ``admin``; existing seeds are kept.

    New seeds are written with mode 0600 into ``directory`` (created 0700).  Returns the
    identities by name, bureaus first in the order given.  ``provisioner=True`` also makes a
    one-shot ``provisioner`` seed; one that exists and was not yet spent (``xiezhu provision``
    deletes it) is returned too, so that the configuration lists it until it is used.
    """
    codes = list(codes)
    for code in codes:
        _check_name(code)
        if code in (LEDGER, ADMIN, PROVISIONER, SIGNER):
            raise AuthError(f"bureau code {code!r} is reserved for a service user",
                            zh=f"单位代码 {code!r} 保留给服务用户", code=code)
    if len(set(codes)) != len(codes):
        raise AuthError("a bureau code appears twice", zh="有单位代码重复出现", codes=codes)
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    out: dict[str, Identity] = {}
    for name in [*codes, LEDGER, ADMIN, SIGNER]:
        path = seed_path(directory, name)
        if not path.exists():
            # A seed that appeared meanwhile (which the server may already trust) wins.
            write_private(path, nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER) + b"\n", keep_existing=True)
        out[name] = load_identity(directory, name)
    spare = seed_path(directory, PROVISIONER)
    if provisioner and not spare.exists():
        write_private(spare, nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER) + b"\n", keep_existing=True)
    if spare.exists():
        out[PROVISIONER] = load_identity(directory, PROVISIONER)
    return out


def fresh_provisioner() -> Identity:
    """A one-shot provisioner whose seed lives only in this process's memory (the embedded server's)."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    kp = nkeys.from_seed(bytearray(seed))
    try:
        public = kp.public_key.decode()
    finally:
        kp.wipe()
    return Identity(name=PROVISIONER, role="provisioner", public_key=public, seed_file=None, seed=seed.decode())


def retire_provisioner(directory: Path) -> bool:
    """Delete the provisioner's seed after use; True if there was one.

    The servers still list its public key until their configuration is regenerated
    (``xiezhu nats-config``, which then leaves it out) and reloaded.
    """
    path = seed_path(directory, PROVISIONER)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def load_identity(directory: Path, name: str) -> Identity:
    """The identity of ``name`` from its seed file (which must exist and be 0600)."""
    _check_name(name)
    path = seed_path(directory, name)
    kp = nkeys.from_seed(bytearray(read_seed(path).encode()))
    try:
        public = kp.public_key.decode()
    finally:
        kp.wipe()
    return Identity(name=name, role=role_of(name), public_key=public, seed_file=path)


def copy_identity(source: Path, name: str, target: Path) -> Path:
    """Copy the seed of ``name`` from ``source`` to another machine's ``target`` (0700), mode 0600."""
    _check_name(name)
    seed = read_seed(seed_path(source, name))  # a clear error if it is missing, too open or no seed
    target = Path(target)
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    dst = seed_path(target, name)
    write_private(dst, seed.encode() + b"\n")  # the source is what the servers trust: it replaces a stale copy
    return dst


def read_seed(path: Path) -> str:
    """A user seed (``SU…``) from a file that only its owner can read; refuses anything else."""
    try:
        st = path.stat()
        if st.st_mode & 0o077:
            raise AuthError(f"{path} is open to others (mode {st.st_mode & 0o777:o}); chmod 600 it",
                            zh=f"{path} 可被他人读取（权限 {st.st_mode & 0o777:o}）；请执行 chmod 600",
                            path=str(path))
        seed = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise AuthError(f"no NATS seed {path}; run `xiezhu nats-config`",
                        zh=f"没有 NATS 种子 {path}；请运行 `xiezhu nats-config`", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise AuthError(f"cannot read NATS seed {path}: {e}",
                        zh=f"无法读取 NATS 种子 {path}：{e}", path=str(path)) from e
    try:
        prefix, _ = nkeys.decode_seed(bytearray(seed.encode()))
        raw = base64.b32decode(seed + "=" * (-len(seed) % 8))
    except (nkeys.NkeysError, binascii.Error) as e:
        raise AuthError(f"{path} is not an NKey seed", zh=f"{path} 不是 NKey 种子", path=str(path)) from e
    # nkeys does not check the CRC: a damaged seed would yield another key the server rejects.
    if len(raw) != 36 or bytes(nkeys.crc16_checksum(raw[:-2])) != raw[-2:]:
        raise AuthError(f"{path} is not an NKey seed (bad length or checksum)",
                        zh=f"{path} 不是 NKey 种子（长度或校验和有误）", path=str(path))
    if prefix != nkeys.PREFIX_BYTE_USER:
        raise AuthError(f"{path} is not an NKey user seed (SU…)",
                        zh=f"{path} 不是 NKey 用户种子（SU…）", path=str(path))
    return seed


def permissions(identity: Identity, bureaus: Iterable[str] = ()) -> Permissions:
    """Exactly the subjects ``identity`` needs, and nothing more.

    A bureau and the ledger each need, for their one durable pull consumer ``C`` on ``XZ``:
    ``CONSUMER.INFO.XZ.C`` (``pull_subscribe(durable=, stream=)`` looks the consumer up
    before binding; FastStream's pull subscriber calls the same), ``CONSUMER.MSG.NEXT.XZ.C``
    (each fetch) and ``$JS.ACK.XZ.C.>`` (ack, nak, term, in-progress).  Publishing to a
    stream needs no API subject: the ack comes back to the reply inbox.  Everyone reads
    the trust list; the provisioner alone publishes it.  The provisioner's consumers are
    those of ``bureaus`` (every bureau user of the configuration) and the ledger's.
    """
    inbox = f"{identity.inbox_prefix}.>"
    own: tuple[str, ...]
    if identity.role == "provisioner":
        return Permissions(_provisioner_api(bureaus), _ADMIN_DENIED_API, (inbox,))
    if identity.role == "admin":
        return Permissions(_admin_api(bureaus), _PROVISIONED_DENIED_API, (inbox, TRUST_SUBJECT))
    if identity.role == "signer":
        # It answers only the requests it is sent (the ledger's) and publishes each head it signs.
        return Permissions(publish_allow=(HEADS_SUBJECT, *_TRUST_READ, *_WITNESS_READ), publish_deny=_DENIED_API,
                           subscribe_allow=(inbox, SIGN_SUBJECT, TRUST_SUBJECT), allow_responses=True)
    if identity.role == "ledger":
        # Dead letters on exactly xzdlq.<receiver>.<reason>: the subject names the receiver and the
        # reason, and is the only thing `xiezhu dead-letters` believes (decision 38).
        # It publishes 区司法局's signed checkpoint heads, or asks the signer for them (decision 49).
        own = (f"{DLQ_PREFIX}.{LEDGER}.*", HEADS_SUBJECT, SIGN_SUBJECT)
        # `xiezhu audit --platform` compares the unwitnessed tail with XZ's stored messages, which the
        # ledger reads anyway: one message by sequence, nothing else of the stream API.  The legal arrival
        # is the sending stream's stored time of each message (decision 57): the ledger reads the original
        # XZ's copy names, by sequence, in each bureau's sending stream; no other user may.
        return Permissions(
            publish_allow=(*own, *_consumer_api(LEDGER_CONSUMER), *_TRUST_READ, *_WITNESS_READ,
                           *(f"{_JS_API}.STREAM.MSG.GET.{stream}" for stream in
                             (EVENTS_STREAM, *(sending_stream(code) for code in bureaus)))),
            publish_deny=_LEDGER_DENIED_API,
            subscribe_allow=(inbox, TRUST_SUBJECT, HEADS_SUBJECT),
        )
    else:
        # A bureau countersigns, on its own subject, the heads it saw (decision 49).
        own = (f"xz.{identity.name}.>", f"{DLQ_PREFIX}.{identity.name}.*", cosign_subject(identity.name))
        consumer = agent_consumer(identity.name)
    return Permissions(
        publish_allow=(*own, *_consumer_api(consumer), *_TRUST_READ, *_WITNESS_READ),
        publish_deny=_DENIED_API,
        subscribe_allow=(inbox, TRUST_SUBJECT, HEADS_SUBJECT),
    )


def _consumer_api(consumer: str) -> tuple[str, ...]:
    return (
        f"{_JS_API}.CONSUMER.INFO.{EVENTS_STREAM}.{consumer}",
        f"{_JS_API}.CONSUMER.MSG.NEXT.{EVENTS_STREAM}.{consumer}",
        f"$JS.ACK.{EVENTS_STREAM}.{consumer}.>",
    )


def _durables(bureaus: Iterable[str]) -> list[tuple[str, str]]:
    return [*((agent_consumer(code), inbox_filter(code)) for code in bureaus), (LEDGER_CONSUMER, EVENTS_SUBJECTS)]


def _streams(bureaus: Iterable[str]) -> list[str]:
    """Every stream of the layout: each bureau's sending and witness streams, then :data:`_STREAMS`."""
    codes = list(bureaus)
    return [*(sending_stream(code) for code in codes), *(witness_stream(code) for code in codes), *_STREAMS]


def _admin_api(bureaus: Iterable[str]) -> tuple[str, ...]:
    """The operations user's calls, each the one its code makes (nats-py's subjects):

    - ``provision`` checking what exists (``broker.streams.ensure_streams``/``ensure_consumers``
      with ``create=False``), ``Node.settle`` and the demo's summary: STREAM.INFO of every
      stream (the sending streams' limits and use included) and CONSUMER.INFO of each durable;
    - ``xiezhu dead-letters``: STREAM.INFO and STREAM.MSG.GET of ``XZ_DLQ``;
    - ``xiezhu keys …`` and the root's node: publishing ``xztrust.list`` (the ack comes back
      to the inbox) and reading it as everyone does;
    - :class:`broker.sources.SourceWatch`: STREAM.LEADER.STEPDOWN of ``XZ`` and ``XZ_WITNESS``
      when a source of theirs stalled (decision 69); a step-down moves no message.

    No CREATE: on an existing durable, CONSUMER.CREATE is create-or-update, and the filter in
    its subject is matched as a pattern (``xz.>`` allows ``xz.shenpi.>``), so a user allowed
    to create a consumer can re-configure it.  That is the one-shot provisioner's alone.
    """
    return (
        *(f"{_JS_API}.STREAM.INFO.{stream}" for stream in _streams(bureaus)),
        *(f"{_JS_API}.CONSUMER.INFO.{EVENTS_STREAM}.{name}" for name, _ in _durables(bureaus)),
        f"{_JS_API}.STREAM.MSG.GET.{DLQ_STREAM}",
        *(f"{_JS_API}.STREAM.LEADER.STEPDOWN.{stream}" for stream in (EVENTS_STREAM, WITNESS_STREAM)),
        *_TRUST_READ,
        *_WITNESS_READ,
        TRUST_SUBJECT,
    )


def _provisioner_api(bureaus: Iterable[str]) -> tuple[str, ...]:
    """The one-shot provisioner's calls: STREAM.INFO and STREAM.CREATE of each bureau's sending stream,
    ``XZ``, ``XZ_DLQ``, ``XZ_TRUST`` and ``XZ_WITNESS``; CONSUMER.INFO and the filtered CONSUMER.CREATE
    of each durable.  It is removed from the configuration once it has run (decision 34)."""
    durables = _durables(bureaus)
    return (
        *(f"{_JS_API}.STREAM.{verb}.{stream}" for stream in _streams(bureaus) for verb in ("INFO", "CREATE")),
        *(f"{_JS_API}.CONSUMER.INFO.{EVENTS_STREAM}.{name}" for name, _ in durables),
        *(f"{_JS_API}.CONSUMER.CREATE.{EVENTS_STREAM}.{name}.{subject}" for name, subject in durables),
    )


def server_config(identities: Mapping[str, Identity] | Iterable[Identity], *, jetstream_store_dir: Path | None,
                  sync_interval: str | None = "always") -> str:
    """The nats-server configuration: JetStream, and one NKey user per identity with its permissions.

    Only public keys appear in it.  ``sync_interval`` keeps the embedded server's fsync of
    every write (the launcher does not add its own config when it is given this one).
    ``jetstream_store_dir`` is None for :class:`broker.server.EmbeddedNats`: it passes
    ``-sd`` itself, and nats-server refuses a store_dir given twice.
    """
    js = [] if jetstream_store_dir is None else [f"  store_dir: {_q(str(jetstream_store_dir))}"]
    if sync_interval:
        js.append(f"  sync_interval: {_q(sync_interval)}")
    return "\n".join(["# Generated by xiezhu from the bureau registry: public NKeys and permissions only.",
                      "jetstream {", *js, "}", ""]) + authorization_config(identities)


def authorization_config(identities: Mapping[str, Identity] | Iterable[Identity]) -> str:
    """Only the ``authorization`` block, for a server whose own configuration ``include``s it (a cluster)."""
    ids = list(identities.values()) if isinstance(identities, Mapping) else list(identities)
    names = [i.name for i in ids]
    if len(set(names)) != len(names):
        raise AuthError("an identity appears twice", zh="有身份重复出现", names=names)
    bureaus = [i.name for i in ids if i.role == "bureau"]
    lines = ["authorization {", "  users = ["]
    for ident in ids:
        lines += _user_block(ident, bureaus)
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def _user_block(ident: Identity, bureaus: list[str]) -> list[str]:
    p = permissions(ident, bureaus)
    publish = _list("allow", p.publish_allow) + (_list("deny", p.publish_deny) if p.publish_deny else [])
    return [
        f"    # {ident.name} ({ident.role})",
        "    {",
        f"      nkey: {_q(ident.public_key)}",
        "      permissions: {",
        "        publish: {", *publish, "        }",
        "        subscribe: {", *_list("allow", p.subscribe_allow), "        }",
        *(["        allow_responses: true"] if p.allow_responses else []),
        "      }",
        "    },",
    ]


def connect_options(identity: Identity) -> dict[str, Any]:
    """Keyword arguments for ``nats.connect``: the seed (read once, through the 0600 check) and the inbox."""
    return {"nkeys_seed_str": identity.read_seed(), "inbox_prefix": identity.inbox_prefix}


def credentials_in(directory: Path, name: str) -> dict[str, Any]:
    """``connect_options`` of ``name`` from ``directory``; ``{}`` (anonymous) if there is no such directory.

    A data directory without ``nats-keys`` belongs to a deployment whose NATS has no users.
    """
    return connect_options(load_identity(directory, name)) if Path(directory).is_dir() else {}



def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise AuthError(f"{name!r} cannot name a NATS user: lower-case letters, digits and '-'",
                        zh=f"{name!r} 不能用作 NATS 用户名：应为小写字母、数字和“-”", name=name)


def _q(value: str) -> str:
    # A JSON string is a valid quoted nats-server config string; quoting also stops "$JS…"
    # being read as a config variable.
    return json.dumps(value)


def _list(key: str, values: Iterable[str]) -> list[str]:
    return [f"          {key}: [", *(f"            {_q(v)}," for v in values), "          ]"]
