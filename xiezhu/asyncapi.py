"""The AsyncAPI document of the NATS side, generated from the code.

FastStream describes the channels and operations from a broker declared with the
subjects of :mod:`broker.streams` (one channel per event type, the agents' inboxes, the
dead letters, the trust list); the message schemas come from the msgspec types
themselves (:func:`msgspec.json.schema_components`): on the wire every event is a
:class:`~schemas.envelope.SealedEnvelope` whose payload opens, for its readers, to the
payload type of the channel.
"""
from __future__ import annotations

import json
from typing import Any, get_args

import msgspec
from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI

from aggregates.registry import Registry
from broker.streams import DLQ_PREFIX, DLQ_STREAM, EVENTS_STREAM, SENDING_PREFIX, TRUST_STREAM, TRUST_SUBJECT
from schemas.envelope import HDR_KEY, HDR_MSG_ID, HDR_SIG, Envelope, SealedEnvelope
from schemas.events import Payload
from schemas.trust import SignedTrustList

REF = "#/components/schemas/"


def payload_types() -> list[type[msgspec.Struct]]:
    """Every payload type of the wire union, in declaration order."""
    return [t for t in get_args(Payload)]


def _tag(t: type[msgspec.Struct]) -> str:
    return str(t.__struct_config__.tag)


def _doc(t: type) -> str:
    return " ".join((t.__doc__ or "").split())


def _headers() -> dict[str, Any]:
    return {"type": "object", "required": [HDR_MSG_ID, HDR_KEY, HDR_SIG], "properties": {
        HDR_MSG_ID: {"type": "string", "format": "uuid",
                     "description": "The event id; JetStream drops a re-publish within its duplicate window."},
        HDR_KEY: {"type": "string", "description": "The signing key's id in the trust list."},
        HDR_SIG: {"type": "string", "description": "Ed25519 signature over the exact body, base64."},
    }}


def asyncapi_document(registry: Registry, *, yaml_format: bool = False) -> str:
    """The document as JSON (or YAML)."""
    doc = asyncapi_dict(registry)
    if yaml_format:
        import yaml

        return str(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    return json.dumps(doc, ensure_ascii=False, indent=2)


def asyncapi_dict(registry: Registry) -> dict[str, Any]:
    """The AsyncAPI 3.0 document as a dict."""
    codes = registry.codes()
    broker = NatsBroker("nats://127.0.0.1:4222")
    types = payload_types()

    async def _doc_only(body: dict[str, Any]) -> None:  # pragma: no cover - never consumed
        return None

    for t in types:
        tag = _tag(t)
        broker.publisher(f"xz.{{sender}}.{{recipient}}.{tag}", title=tag, schema=dict,
                         description=f"{_doc(t)} Stream {SENDING_PREFIX}<sender> (the sender's limits), sourced by "
                                     f"{EVENTS_STREAM}; the body is a signed SealedEnvelope "
                                     f"whose payload opens to {t.__name__}.")
    broker.subscriber("xz.*.{recipient}.>", title="agent inbox",
                      description=f"A bureau's agent reads its mail through the durable consumer agent-<code> "
                                  f"of stream {EVENTS_STREAM}, filtered on its code. Bureaus: {', '.join(codes)}.")(
        _doc_only)
    broker.subscriber("xz.>", title="ledger",
                      description=f"区司法局's ledger records every event through the durable consumer 'ledger' of "
                                  f"{EVENTS_STREAM}.")(_doc_only)
    broker.publisher(f"{DLQ_PREFIX}.{{receiver}}.{{reason}}", title="dead letter", schema=dict,
                     description=f"Stream {DLQ_STREAM}: what a receiver rejected, the original body with "
                                 f"Xz-Reject-Code, Xz-Reject-Reason, Xz-Rejected-By and Xz-Original-Subject headers.")
    broker.publisher(TRUST_SUBJECT, title="trust list", schema=dict,
                     description=f"Stream {TRUST_STREAM}: every version of the trust list, signed by 区大数据局's "
                                 f"root key; readers take the last by direct get.")
    spec = AsyncAPI(broker, title="xiezhu NATS", version="1",
                    description="The subjects, the signed envelope and every event type bureaus exchange over NATS "
                                "JetStream (附件2 行政协助, the commitment cases, deadline notices, disputes).",
                    ).to_specification()
    doc: dict[str, Any] = json.loads(spec.to_json())

    _, components = msgspec.json.schema_components([SealedEnvelope, Envelope, SignedTrustList, *types],
                                                   ref_template=REF + "{name}")
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.clear()  # FastStream's placeholders ("object") give way to the real types
    schemas.update(components)
    messages = doc["components"].get("messages", {})
    by_title = {_tag(t): t for t in types}
    for name, message in messages.items():
        title = name.split(":", 1)[0]
        message.pop("correlationId", None)
        if title in by_title:
            t = by_title[title]
            message["payload"] = {"$ref": REF + "SealedEnvelope"}
            message["headers"] = _headers()
            message["summary"] = _doc(t)
            message["x-xiezhu-opened-payload"] = {"$ref": REF + t.__name__}
        elif title == "trust list":
            message["payload"] = {"$ref": REF + "SignedTrustList"}
        else:
            message["payload"] = {"$ref": REF + "SealedEnvelope"}
            message["headers"] = _headers()
    doc["servers"] = {"embedded": {"host": "127.0.0.1:4222", "protocol": "nats",
                                   "description": "`xiezhu nats-server`: one NKey user per bureau (decision 22)."}}
    for channel in doc.get("channels", {}).values():
        channel["servers"] = [{"$ref": "#/servers/embedded"}]
    for key in ("channels", "operations"):
        doc[key] = dict(sorted(doc.get(key, {}).items()))
    doc["components"]["messages"] = dict(sorted(messages.items()))
    return doc
