"""Value codecs on the binding's public API: the fallback of ``engine.lowlevel.raw_codec``.

Converts between the values wasmtime-py 50's generic conversion produces and accepts (``Record``
objects, ``Variant`` or untagged payloads, ``ResourceAny``/``ResourceHost``) and the host's shapes
(see ``translate``), compiled once per type like the raw codecs.

Rules:
- Used only when the binding lacks what ``lowlevel.add_raw_func`` needs, and in the tests that
  check the raw codecs against it.
- The binding leaves a variant-like value untagged when the Python classes of its cases cannot
  overlap, and lowers an untagged value as the first case whose classes match it. For
  ``result<option<own<trailers>>, error-code>`` the ``ok`` case (``option`` includes ``None``,
  hence ``object``) captures everything, so the ``err`` case cannot be expressed: such a value is
  lowered as ``ok(none)`` here (the raw codecs have no such gap).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasmtime import component as cm

from ..engine.lowlevel import ResourceBridge

__all__ = ["PublicLift", "PublicLower", "binding_tags", "public_codec", "variant_cases"]

PublicLift = Callable[[Any, Any], Any]  # (store, binding value) -> host value
PublicLower = Callable[[Any, Any], Any]  # (store, host value) -> binding value

_SCALARS = (
    cm.Bool,
    cm.S8,
    cm.U8,
    cm.S16,
    cm.U16,
    cm.S32,
    cm.U32,
    cm.S64,
    cm.U64,
    cm.F32,
    cm.F64,
    cm.Char,
    cm.String,
    cm.EnumType,
)


def _same(store: Any, value: Any) -> Any:
    return value


def public_codec(ty: Any, bridge: ResourceBridge) -> tuple[PublicLift, PublicLower]:
    """(lift, lower) for the binding's ``ValType`` ``ty``."""
    if isinstance(ty, _SCALARS):
        return _same, _same
    if isinstance(ty, cm.ListType):
        element = ty.element
        if isinstance(element, cm.U8):
            return (lambda s, v: bytes(v)), (lambda s, v: bytes(v))
        e_lift, e_lower = public_codec(element, bridge)
        return (
            lambda s, v: [e_lift(s, x) for x in v],
            lambda s, v: [e_lower(s, x) for x in v],
        )
    if isinstance(ty, cm.TupleType):
        parts = [public_codec(t, bridge) for t in ty.elements]
        return (
            lambda s, v: tuple(p[0](s, x) for p, x in zip(parts, v, strict=True)),
            lambda s, v: tuple(p[1](s, x) for p, x in zip(parts, v, strict=True)),
        )
    if isinstance(ty, cm.RecordType):
        fields = [(n, *public_codec(t, bridge)) for n, t in ty.fields]

        def lift_record(s: Any, v: Any) -> Any:
            return {n: lift(s, getattr(v, n)) for n, lift, _ in fields}

        def lower_record(s: Any, v: Any) -> Any:
            rec = cm.Record()
            for n, _, lower in fields:
                setattr(rec, n, lower(s, v[n]))
            return rec

        return lift_record, lower_record
    if isinstance(ty, cm.FlagsType):
        return (lambda s, v: frozenset(v)), (lambda s, v: set(v))
    if isinstance(ty, cm.OptionType | cm.ResultType | cm.VariantType):
        return _variant_like(ty, bridge)
    if isinstance(ty, cm.OwnType | cm.BorrowType):
        owned = isinstance(ty, cm.OwnType)

        def lift_resource(s: Any, v: Any) -> Any:
            return bridge.lift(v.to_host(s).rep, owned)

        def lower_resource(s: Any, v: Any) -> Any:
            rep, type_id = bridge.lower(v)
            return cm.ResourceHost.own(rep, type_id)

        return lift_resource, lower_resource
    raise TypeError(f"public_codec: unsupported type {type(ty).__name__}")


def variant_cases(ty: Any) -> list[tuple[str, Any]]:
    """The (case, payload type or None) list of a variant, option or result type."""
    if isinstance(ty, cm.OptionType):
        return [("none", None), ("some", ty.payload)]
    if isinstance(ty, cm.ResultType):
        return [("ok", ty.ok), ("err", ty.err)]
    return list(ty.cases)


def binding_tags(cases: list[tuple[str, Any]]) -> bool:
    """Whether wasmtime-py 50 passes values of these cases as ``Variant`` objects: when the
    Python classes of two cases overlap (a case without payload counts as ``object``)."""
    seen: set[type] = set()
    for _, ty in cases:
        classes: set[type] = set()
        if ty is None:
            classes.add(object)
        else:
            ty.add_classes(classes)
        if classes & seen:
            return True
        seen |= classes
    return False


def _variant_like(ty: Any, bridge: ResourceBridge) -> tuple[PublicLift, PublicLower]:
    cases = variant_cases(ty)
    tagged = binding_tags(cases)
    is_option = isinstance(ty, cm.OptionType)
    codecs = {n: (None if t is None else public_codec(t, bridge)) for n, t in cases}
    selectors: list[tuple[str, tuple[type, ...] | None]] = []
    for name, t in cases:
        if t is None:
            selectors.append((name, None))
        else:
            found: set[type] = set()
            t.add_classes(found)
            selectors.append((name, tuple(found)))

    def case_of(v: Any) -> str:
        for name, sel in selectors:
            if (v is None) if sel is None else isinstance(v, sel):
                return name
        raise TypeError(f"value {v!r} fits no case")

    def lift(s: Any, v: Any) -> Any:
        if tagged:
            tag, payload = v.tag, v.payload
        else:
            tag, payload = case_of(v), v
        codec = codecs[tag]
        value = None if codec is None else codec[0](s, payload)
        if is_option:
            return value if tag == "some" else None
        return (tag, value)

    def lower(s: Any, v: Any) -> Any:
        if is_option:
            tag, payload = ("none", None) if v is None else ("some", v)
        else:
            tag, payload = v
        codec = codecs[tag]
        raw = None if codec is None else codec[1](s, payload)
        return cm.Variant(tag, raw) if tagged else raw

    return lift, lower
