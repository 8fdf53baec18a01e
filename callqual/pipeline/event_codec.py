"""The collector's output as plain values, for ``analyze --split``'s hand-over between two processes.

Why not pickle: pickle walks each wire model's field dict key by key in
Python-level reduce calls, and the parent, the busier of the two processes
(it runs the detector), then paid ~8-10 us a message to load (issue 14). Here
an event crosses as its field dict itself (nested SDP media and RTCP blocks
as theirs), which ``marshal`` writes and reads in C, field names as shared
references; the parent rebuilds each model unvalidated from its dict, as
``WireModel.trusted`` does: the values were a valid model in this program a
moment ago. Field order, fields-set and values come back exactly as they left.

An item is a tick's time (a float), an event's field dict (every field set,
as the collector always builds them), ``(field dict, fields set)``, or the
source rules' verdict on the next event (``SourceVerdict``: rare, pickled
into a bytes value). The class is the event's ``kind``. A value ``marshal``
would not give back as it is (a ``str`` subclass; a numpy scalar, which
marshal writes as *bytes*) sends that batch's models through ``pickle``
instead (checked in the child, at ~0.5 us an event).
"""

import marshal
import pickle
from types import UnionType
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from callqual.detector.source_rules import SourceVerdict
from callqual.schemas import AnyEvent
from callqual.schemas.base import WireModel
from callqual.schemas.events import (
    MalformedSipEvent,
    RtcpEvent,
    RtcpReportBlock,
    RtpStreamReport,
    SdpMedia,
    SipMessageEvent,
)

__all__ = ["CodecError", "Item", "decode_batch", "encode_batch"]

#: One item of the collector's output: an event, the time of a tick, or the next event's verdict.
Item = AnyEvent | float | SourceVerdict

#: The first byte of an encoded batch: how the rest was written.
_MARSHAL: Final = b"M"
_PICKLE: Final = b"P"

_set = object.__setattr__
_new = object.__new__


class CodecError(ValueError):
    """Bytes that are not a batch this module encoded (a broken or foreign sender)."""


class _Shape:
    """How one wire model class crosses: its fields, and which of them hold a list of models."""

    __slots__ = ("all_set", "cls", "containers", "nested", "numeric")

    def __init__(self, cls: type[WireModel], nested: tuple[str, "_Shape"] | None = None) -> None:
        self.cls = cls
        #: The fields-set of every model rebuilt with all fields set: one set shared by all of
        #: them, not a copy each (~0.3 us an event). Safe for these frozen models: pydantic only
        #: reads it, and ``model_copy`` copies it before adding to it; nothing here mutates it.
        self.all_set: set[str] = set(cls.model_fields)
        #: (field name, shape of its models), for the one field that holds a list of models
        self.nested = nested
        #: the other fields that may hold a list or dict (of scalars), whose items are checked
        self.containers = tuple(
            name
            for name, info in cls.model_fields.items()
            if _top_types(info.annotation) & {list, dict} and (nested is None or name != nested[0])
        )
        #: the fields that may hold a number or bytes: those are what may be a numpy scalar or a
        #: buffer (text fields need no check: marshal refuses a str subclass)
        self.numeric = tuple(
            name for name, info in cls.model_fields.items() if _top_types(info.annotation) & _NUMERIC
        )


_NUMERIC: Final = {int, float, bool, bytes}


def _top_types(annotation: Any) -> set[Any]:
    """The types a field so annotated may hold at its top level (``X | None``, ``Annotated``, ``Literal``)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, UnionType):
        return set().union(*(_top_types(arg) for arg in args))
    if origin is Annotated:
        return _top_types(args[0])
    if origin is Literal:
        return {type(arg) for arg in args}
    return {origin or annotation}


_SDP: Final = _Shape(SdpMedia)
_BLOCK: Final = _Shape(RtcpReportBlock)
_BY_KIND: Final = {
    "sip_message": _Shape(SipMessageEvent, ("sdp", _SDP)),
    "sip_malformed": _Shape(MalformedSipEvent),
    "rtp_stream": _Shape(RtpStreamReport),
    "rtcp": _Shape(RtcpEvent, ("blocks", _BLOCK)),
}
_BY_CLASS: Final = {shape.cls: shape for shape in _BY_KIND.values()}


#: What ``marshal`` writes back as the same type. Anything else is suspect: marshal writes a
#: ``str`` subclass not at all, and a numpy scalar (any object with the buffer protocol) as
#: *bytes*, silently.
_SCALARS: Final = frozenset({str, int, float, bool, bytes, type(None)})


class _NotPlainError(Exception):
    """A value ``marshal`` would not give back as it is: the batch goes through pickle."""


def _check_plain(fields: dict[str, Any], shape: _Shape) -> None:
    """Raise :class:`_NotPlainError` unless every number is an exact int, float or bool, every
    bytes value exact bytes, and lists and dicts hold only such scalars and text.

    Text needs no check (marshal refuses a ``str`` subclass: ``encode_batch`` falls back); a
    nested list of models is checked model by model, by :func:`_encode`.
    """
    scalars = _SCALARS
    for name in shape.numeric:  # a loop of pointer tests once compiled, not a set per event
        if type(fields[name]) not in scalars:
            raise _NotPlainError(name)
    for name in shape.containers:
        value = fields[name]
        kind = type(value)
        if kind is list:
            if not set(map(type, value)) <= scalars:
                raise _NotPlainError(name)
        elif kind is dict and not set(map(type, value)) | set(map(type, value.values())) <= scalars:
            raise _NotPlainError(name)


def _encode(model: WireModel, shape: _Shape) -> Any:
    """``model``'s field dict (a shallow copy where a nested list is encoded), fields-set if partial."""
    fields = model.__dict__
    nested = shape.nested
    _check_plain(fields, shape)
    if nested is not None:
        name, inner = nested
        models = fields[name]
        if models:
            if type(models) is not list:
                raise _NotPlainError(name)
            fields = {**fields, name: [_encode(m, inner) for m in models]}
    fields_set = model.__pydantic_fields_set__
    if len(fields_set) == len(shape.all_set):
        return fields
    return (fields, sorted(fields_set))


def _decode(item: Any, shape: _Shape) -> WireModel:
    """The model :func:`_encode` encoded, rebuilt as ``WireModel.trusted`` builds one."""
    if type(item) is tuple:
        fields, fields_set = item[0], set(item[1])
    else:
        fields, fields_set = item, shape.all_set
    nested = shape.nested
    if nested is not None:
        name, inner = nested
        encoded = fields[name]
        if encoded:
            fields[name] = [_decode(m, inner) for m in encoded]
    model = _new(shape.cls)
    _set(model, "__dict__", fields)
    _set(model, "__pydantic_fields_set__", fields_set)
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


def _verdict(item: SourceVerdict) -> bytes:
    return pickle.dumps(tuple(item), protocol=pickle.HIGHEST_PROTOCOL)


def encode_batch(items: list[Item], extra: Any = None) -> bytes:
    """``items`` and ``extra`` (any plain value the receiver wants alongside them) as bytes."""
    shapes = _BY_CLASS
    try:
        encoded: list[Any] = [
            item
            if type(item) is float
            else _verdict(item)
            if type(item) is SourceVerdict
            else _encode(item, shapes[type(item)])  # type: ignore[arg-type, index]
            for item in items
        ]
        return _MARSHAL + marshal.dumps((extra, encoded))
    except (_NotPlainError, ValueError):  # a value marshal does not give back as it is: pickle keeps it
        return _PICKLE + pickle.dumps((extra, items), protocol=pickle.HIGHEST_PROTOCOL)


def decode_batch(data: bytes) -> tuple[Any, list[Item]]:
    """(extra, items) from :func:`encode_batch`'s bytes; :class:`CodecError` if they are not that."""
    try:
        if data[:1] == _PICKLE:  # the models themselves (pydantic's own pickling)
            extra, models = pickle.loads(memoryview(data)[1:])
            if type(models) is not list:
                raise CodecError(f"not an encoded batch: a {type(models).__name__}")
            return extra, models
        if data[:1] != _MARSHAL:
            raise CodecError(f"not an encoded batch (first byte {data[:1]!r})")
        extra, encoded = marshal.loads(memoryview(data)[1:])
        shapes = _BY_KIND
        items: list[Item] = []
        append = items.append
        for item in encoded:
            kind = type(item)
            if kind is float:
                append(item)
            elif kind is dict:  # _decode inlined for the common case: a call less an event
                shape = shapes[item["kind"]]
                nested = shape.nested
                if nested is not None and item[nested[0]]:
                    item[nested[0]] = [_decode(m, nested[1]) for m in item[nested[0]]]
                model = _new(shape.cls)
                _set(model, "__dict__", item)
                _set(model, "__pydantic_fields_set__", shape.all_set)
                _set(model, "__pydantic_extra__", None)
                _set(model, "__pydantic_private__", None)
                append(model)  # type: ignore[arg-type]  # the class is the event's kind
            elif kind is bytes:
                alerts, relayed = pickle.loads(item)
                if type(alerts) is not list or type(relayed) is not bool:
                    raise CodecError("not an encoded batch: a verdict of another shape")
                append(SourceVerdict(alerts, relayed))
            else:
                append(_decode(item, shapes[item[0]["kind"]]))  # type: ignore[arg-type]
    except CodecError:
        raise
    except (ValueError, EOFError, TypeError, KeyError, IndexError, pickle.UnpicklingError) as exc:
        raise CodecError(f"not an encoded batch: {type(exc).__name__}: {exc}") from None
    return extra, items
