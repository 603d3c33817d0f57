"""The one versioned wire encoding of stream entries.

An entry is a flat Redis hash: `v` (encoding version), `k` (model kind), `d`
(the model as JSON) and, when a trace is active, `tp` (W3C traceparent). A
reader rejects what it cannot decode with `WireError`, so the consumer can
dead-letter the entry rather than crash.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from tradebot.common.models import WIRE_MODELS, Message

WIRE_VERSION = b"1"
_MODELS_BY_KIND = {kind.encode(): model for kind, model in WIRE_MODELS.items()}


class WireError(ValueError):
    """A stream entry that does not decode to a known, valid model."""


def encode(message: Message, traceparent: str | None = None) -> dict[bytes, bytes]:
    fields = {b"v": WIRE_VERSION, b"k": message.kind.encode(), b"d": message.model_dump_json().encode()}
    if traceparent:
        fields[b"tp"] = traceparent.encode()
    return fields


def decode(fields: Mapping[bytes, bytes]) -> Message:
    version = fields.get(b"v")
    if version != WIRE_VERSION:
        raise WireError(f"unsupported wire version {version!r} (this reader speaks {WIRE_VERSION!r})")
    model = _MODELS_BY_KIND.get(fields.get(b"k", b""))
    if model is None:
        kind = fields.get(b"k", b"").decode(errors="replace")
        raise WireError(f"unknown message kind {kind!r}; known: {sorted(WIRE_MODELS)}")
    try:
        return model.model_validate_json(fields.get(b"d", b""))
    except ValidationError as error:
        raise WireError(f"invalid {model.kind}: {error.errors(include_url=False)}") from None


def traceparent_of(fields: Mapping[bytes, bytes]) -> str | None:
    raw = fields.get(b"tp")
    return raw.decode() if raw else None
