"""The one versioned wire encoding of stream entries.

An entry is a flat Redis hash. Version 1 carries one message: `v`=1, `k` (its
kind), `d` (the model as JSON) and, when a trace is active, `tp` (its W3C
traceparent). Version 2 carries a batch of messages of one kind: `v`=2, `k`,
`n` (how many), `d` (a JSON array of them) and, when traced, `tp` (their
traceparents, space-separated, `-` for none). Redis spends the same on an
entry of one tick as on one of a hundred, so publishers batch (bench/stages.py).

A reader rejects what it cannot decode with `WireError`, so the consumer can
dead-letter the entry rather than crash; in a batch, each undecodable member is
rejected on its own and the others are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import msgspec

from tradebot.common.models import WIRE_MODELS, Message, text_problem, texts_valid

WIRE_VERSION = b"1"
BATCH_VERSION = b"2"
MAX_BATCH = 100
"""Messages per version-2 entry: enough to make Redis's per-entry cost vanish, small enough to read."""

_encoder = msgspec.json.Encoder()
_KINDS = {kind.encode(): kind for kind in WIRE_MODELS}
_decoders = {kind: msgspec.json.Decoder(model) for kind, model in WIRE_MODELS.items()}
_batch_decoders = {kind: msgspec.json.Decoder(list[model]) for kind, model in WIRE_MODELS.items()}  # type: ignore[valid-type]
_members = msgspec.json.Decoder(list[msgspec.Raw])
_NO_TRACE = b"-"


class WireError(ValueError):
    """A stream entry that does not decode to a known, valid model."""


class Entry(NamedTuple):
    """What one stream entry holds: its messages, their traceparents, and any rejected members."""

    messages: list[Message]
    traceparents: list[str | None]
    rejected: list[tuple[bytes, str]]  # (member JSON, reason) of a batch's undecodable members


def encode(message: Message, traceparent: str | None = None) -> dict[bytes, bytes]:
    """A version-1 entry: one message."""
    fields = {b"v": WIRE_VERSION, b"k": message.kind.encode(), b"d": _encoder.encode(message)}
    if traceparent:
        fields[b"tp"] = traceparent.encode()
    return fields


def encode_batch(
    messages: Sequence[Message], traceparents: Sequence[str | None] | None = None
) -> dict[bytes, bytes]:
    """A version-2 entry: messages of one kind (at most MAX_BATCH, by convention)."""
    fields = {
        b"v": BATCH_VERSION,
        b"k": messages[0].kind.encode(),
        b"n": b"%d" % len(messages),
        b"d": _encoder.encode(messages),
    }
    if traceparents and any(traceparents):
        fields[b"tp"] = b" ".join(tp.encode() if tp else _NO_TRACE for tp in traceparents)
    return fields


def encode_json(message: Message) -> bytes:
    """A message as the JSON of a version-1 entry's `d` (also what `prices:latest` holds)."""
    return _encoder.encode(message)


def decode_json(model: type[Message], raw: bytes | str) -> Message:
    """One message of `model` from its JSON; WireError when it is not valid."""
    try:
        message = _decoders[model.kind].decode(raw)
    except msgspec.DecodeError as error:
        raise WireError(f"invalid {model.kind}: {error}") from None
    problem = text_problem(message)
    if problem:
        raise WireError(f"invalid {model.kind}: {problem}")
    return message


def decode_entry(fields: Mapping[bytes, bytes]) -> Entry:
    """Every message of an entry of either version; WireError when the entry as a whole is unreadable."""
    version = fields.get(b"v")
    if version != WIRE_VERSION and version != BATCH_VERSION:
        speaks = f"{WIRE_VERSION!r} and {BATCH_VERSION!r}"
        raise WireError(f"unsupported wire version {version!r} (this reader speaks {speaks})")
    kind = _KINDS.get(fields.get(b"k", b""))
    if kind is None:
        unknown = fields.get(b"k", b"").decode(errors="replace")
        raise WireError(f"unknown message kind {unknown!r}; known: {sorted(WIRE_MODELS)}")
    raw = fields.get(b"d", b"")
    traces = fields.get(b"tp")
    if version == WIRE_VERSION:
        message = decode_json(WIRE_MODELS[kind], raw)
        return Entry([message], [traces.decode() if traces else None], [])
    kept: list[int] | None = None
    rejected: list[tuple[bytes, str]] = []
    try:
        messages = _batch_decoders[kind].decode(raw)
        if not texts_valid(WIRE_MODELS[kind], messages, raw):
            messages, kept, rejected = _decode_members(kind, raw)
    except msgspec.DecodeError:
        messages, kept, rejected = _decode_members(kind, raw)
    if not traces:
        return Entry(messages, [None] * len(messages), rejected)
    traceparents = [None if tp == _NO_TRACE else tp.decode() for tp in traces.split(b" ")]
    if len(traceparents) != len(messages) + len(rejected):
        raise WireError(f"{len(traceparents)} traceparents for a batch of {len(messages) + len(rejected)}")
    if kept is not None:
        traceparents = [traceparents[i] for i in kept]
    return Entry(messages, traceparents, rejected)


def _decode_members(kind: str, raw: bytes) -> tuple[list[Message], list[int], list[tuple[bytes, str]]]:
    """The slow path of a batch that did not decode whole: member by member."""
    try:
        members = _members.decode(raw)
    except msgspec.DecodeError as error:
        raise WireError(f"invalid {kind} batch: {error}") from None
    messages, kept, rejected = [], [], []
    for index, member in enumerate(members):
        try:
            messages.append(decode_json(WIRE_MODELS[kind], member))
            kept.append(index)
        except WireError as error:
            rejected.append((bytes(member), str(error)))
    return messages, kept, rejected


def decode(fields: Mapping[bytes, bytes]) -> Message:
    """The one message of an entry (version 1, or a version-2 batch of one)."""
    entry = decode_entry(fields)
    if entry.rejected:
        raise WireError(entry.rejected[0][1])
    if len(entry.messages) != 1:
        raise WireError(f"the entry holds {len(entry.messages)} messages; read it with decode_entry")
    return entry.messages[0]


def traceparent_of(fields: Mapping[bytes, bytes]) -> str | None:
    raw = fields.get(b"tp")
    return raw.decode() if raw else None
