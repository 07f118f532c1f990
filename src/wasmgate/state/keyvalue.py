"""``wasi:keyvalue`` (store, atomics, batch @0.2.0-draft2) and ``wasi:config/store``
(@0.2.0-draft) for components, beside the proxy-world host.

These are entries of the WASI host's tables (``wasihttp.interfaces`` merges them), so they
are linked the same way: by name, from the component's own type, any ``@0.2.x`` version
(pre-release tags included). Every implementation is ``fn(state, *args)`` on the value codecs'
shapes (a variant ``(case, payload)``, a result ``("ok", v)``/``("err", e)``, ``list<u8>`` as
``bytes``, a record a ``dict``).

Rules:
- ``store.open(label)`` applies the run's grants (``RequestState.grants``, a ``grants.RouteState``:
  a route's, or an embedded component's): a label the route's
  ``key_value_stores`` does not list is ``error.access-denied``; a granted label with no store
  configured is ``error.no-such-store``. A ``bucket`` is a handle on the backend; every failure
  of the backend (limits, a server that is down) is ``error.other(message)``, never a trap; the
  message names the store and the operation, never a value.
- ``atomics.increment`` is the backend's atomic increment. ``cas.new`` (and ``new-with-read``)
  reads the key's current value and its version (``Backend.cas_read``); ``swap`` writes only if
  nothing wrote the key since (a key changed and changed back fails too), else answers
  ``cas-failed`` with a fresh ``cas`` on the value now there (and, when the component's type has
  the later draft's shape ``tuple<cas, option<list<u8>>>``, that value too).
- ``batch`` is the backend's batch operations; ``get-many`` answers in the component's shape:
  ``list<option<tuple<key, value>>>`` (draft2) or ``list<tuple<key, option<value>>>``.
- ``wasi:config/store`` (and its earlier name ``wasi:config/runtime``): ``get`` and ``get-all``
  over the route's ``variables``; they never fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from wasmtime import component as cm

from . import grants
from .backends import Backend, CasRead, StoreError

if TYPE_CHECKING:  # the WASI host imports this module: no import back at run time
    from ..wasihttp.resources import RequestState

__all__ = ["IMPLEMENTATIONS", "RESOURCES", "typed"]


class _Resource:
    """The shape of the WASI host's resources (``wasihttp.resources.Resource``): a host
    type id, and nothing to do when the guest drops its handle."""

    TYPE: ClassVar[int] = 0

    def dropped(self, state: RequestState) -> None:
        pass


@dataclass(eq=False, slots=True)
class Bucket(_Resource):
    TYPE: ClassVar[int] = 501
    backend: Backend


@dataclass(eq=False, slots=True)
class Cas(_Resource):
    TYPE: ClassVar[int] = 502
    backend: Backend
    key: str
    seen: CasRead


def typed(factory: Any) -> Any:
    """Mark an implementation factory that needs the imported function's type (the host calls
    ``factory(func_type)`` at link time)."""
    factory.wasmgate_typed = True
    return factory


def _err(e: StoreError) -> tuple[str, Any]:
    if e.kind == "other":
        return ("err", ("other", e.message))
    return ("err", (e.kind, None))


def _grants(st: RequestState) -> grants.RouteState:
    found: grants.RouteState | None = st.grants
    return grants.NO_GRANTS if found is None else found


def store_open(st: RequestState, label: str) -> Any:
    try:
        return ("ok", Bucket(_grants(st).open(label)))
    except StoreError as e:
        return _err(e)


def _op(fn: Any) -> Any:
    def impl(st: RequestState, bucket: Bucket, *args: Any) -> Any:
        try:
            return ("ok", fn(bucket.backend, *args))
        except StoreError as e:
            return _err(e)

    return impl


def _list_keys(b: Backend, cursor: str | None) -> dict[str, Any]:
    page = b.list_keys(cursor)
    return {"keys": page.keys, "cursor": page.cursor}


def cas_new(st: RequestState, bucket: Bucket, key: str) -> Any:
    try:
        return ("ok", Cas(bucket.backend, key, bucket.backend.cas_read(key)))
    except StoreError as e:
        return _err(e)


def cas_new_with_read(st: RequestState, bucket: Bucket, key: str) -> Any:
    try:
        seen = bucket.backend.cas_read(key)
    except StoreError as e:
        return _err(e)
    return ("ok", (Cas(bucket.backend, key, seen), seen.value))


def cas_current(st: RequestState, cas: Cas) -> Any:
    return ("ok", cas.seen.value)


def _cas_failed_with_value(fty: cm.FuncType) -> bool:
    result = fty.result
    if not isinstance(result, cm.ResultType) or not isinstance(result.err, cm.VariantType):
        return False
    for name, payload in result.err.cases:
        if name == "cas-failed":
            return isinstance(payload, cm.TupleType)
    return False


@typed
def swap(fty: cm.FuncType) -> Any:
    with_value = _cas_failed_with_value(fty)

    def impl(st: RequestState, cas: Cas, value: bytes) -> Any:
        try:
            if cas.backend.cas_swap(cas.key, cas.seen, value):
                return ("ok", None)
            now = cas.backend.cas_read(cas.key)
        except StoreError as e:
            return ("err", ("store-error", _err(e)[1]))
        fresh = Cas(cas.backend, cas.key, now)
        return ("err", ("cas-failed", (fresh, now.value) if with_value else fresh))

    return impl


@typed
def get_many(fty: cm.FuncType) -> Any:
    result = fty.result
    pairs_outside = True  # draft2: list<option<tuple<key, value>>>
    if isinstance(result, cm.ResultType) and isinstance(result.ok, cm.ListType):
        pairs_outside = isinstance(result.ok.element, cm.OptionType)

    def impl(st: RequestState, bucket: Bucket, keys: list[str]) -> Any:
        try:
            values = bucket.backend.get_many(keys)
        except StoreError as e:
            return _err(e)
        pairs = list(zip(keys, values, strict=True))
        if pairs_outside:
            return ("ok", [None if v is None else (k, v) for k, v in pairs])
        return ("ok", pairs)

    return impl


def config_get(st: RequestState, key: str) -> Any:
    return ("ok", _grants(st).variable(key))


def config_get_all(st: RequestState) -> Any:
    return ("ok", _grants(st).all_variables())


_CONFIG = {"get": config_get, "get-all": config_get_all}

IMPLEMENTATIONS: dict[str, dict[str, Any]] = {
    "wasi:keyvalue/store": {
        "open": store_open,
        "[method]bucket.get": _op(lambda b, k: b.get(k)),
        "[method]bucket.set": _op(lambda b, k, v: b.set(k, v)),
        "[method]bucket.delete": _op(lambda b, k: b.delete(k)),
        "[method]bucket.exists": _op(lambda b, k: b.exists(k)),
        "[method]bucket.list-keys": _op(_list_keys),
    },
    "wasi:keyvalue/atomics": {
        "increment": _op(lambda b, k, d: b.increment(k, d)),
        "[static]cas.new": cas_new,
        "[static]cas.new-with-read": cas_new_with_read,
        "[method]cas.current": cas_current,
        "swap": swap,
    },
    "wasi:keyvalue/batch": {
        "get-many": get_many,
        "set-many": _op(lambda b, items: b.set_many(items)),
        "delete-many": _op(lambda b, keys: b.delete_many(keys)),
    },
    "wasi:config/store": _CONFIG,
    "wasi:config/runtime": _CONFIG,
}

RESOURCES: dict[str, dict[str, type[Any]]] = {
    "wasi:keyvalue/store": {"bucket": Bucket},
    "wasi:keyvalue/atomics": {"cas": Cas},
}
