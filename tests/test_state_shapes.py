"""The keyvalue functions whose value shapes differ between drafts adapt to the imported type:
``swap``'s ``cas-failed`` payload (draft2: the new ``cas``; later: ``tuple<cas, option<value>>``)
and ``get-many``'s list (draft2: ``option<tuple<key, value>>``; later: ``tuple<key,
option<value>>``). The types come from real components (WAT), as the host reads them at link."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import wasmtime
from wasmtime import component as cm

from wasmgate.state import keyvalue
from wasmgate.state.backends import StoreLimits
from wasmgate.state.backends.sqlite import SqliteBackend

_ERR = '(type $err (variant (case "no-such-store") (case "access-denied") (case "other" string)))'
DRAFT2 = ("(own $cas)", "(list (option (tuple string (list u8))))")
LATER = ("(tuple (own $cas) (option (list u8)))", "(list (tuple string (option (list u8))))")


def _types(cas_failed: str, many: str) -> dict[str, cm.FuncType]:
    wat = f"""
(component
  (import "wasi:keyvalue/store@0.2.0-draft2" (instance $s
    (export "bucket" (type (sub resource)))))
  (alias export $s "bucket" (type $bucket))
  (import "wasi:keyvalue/atomics@0.2.0-draft2" (instance
    (export "bucket" (type $b (eq $bucket)))
    (export "cas" (type $cas (sub resource)))
    {_ERR}
    (export "error" (type $e (eq $err)))
    (type $caserr (variant (case "store-error" $e) (case "cas-failed" {cas_failed})))
    (export "cas-error" (type $ce (eq $caserr)))
    (export "swap" (func (param "cas" (own $cas)) (param "value" (list u8))
      (result (result (error $ce)))))))
  (import "wasi:keyvalue/batch@0.2.0-draft2" (instance
    (export "bucket" (type $b (eq $bucket)))
    {_ERR}
    (export "error" (type $e (eq $err)))
    (export "get-many" (func (param "bucket" (borrow $b)) (param "keys" (list string))
      (result (result {many} (error $e)))))))
)"""
    engine = wasmtime.Engine()
    component = cm.Component(engine, wat)
    out: dict[str, cm.FuncType] = {}
    for ext in component.type.imports(engine).values():
        for name, item in ext.ty.exports(engine).items():
            if isinstance(item.ty, cm.FuncType):
                out[name] = item.ty
    return out


@pytest.mark.parametrize("shapes", [DRAFT2, LATER], ids=["draft2", "later"])
def test_shapes_follow_the_imported_type(tmp_path: Path, shapes: tuple[str, str]) -> None:
    later = shapes is LATER
    types = _types(*shapes)
    backend = SqliteBackend("s", tmp_path / "kv.db", StoreLimits())
    backend.set("k", b"old")
    st: Any = None

    swap = keyvalue.swap(types["swap"])
    tag, cas = keyvalue.cas_new(st, keyvalue.Bucket(backend), "k")
    assert tag == "ok"
    assert keyvalue.cas_current(st, cas) == ("ok", b"old")
    backend.set("k", b"changed")
    backend.set("k", b"old")  # changed back: still a write since the cas was made
    tag, (case, payload) = swap(st, cas, b"new")
    assert (tag, case) == ("err", "cas-failed")
    assert backend.get("k") == b"old"
    fresh = payload[0] if later else payload
    assert isinstance(fresh, keyvalue.Cas)
    assert keyvalue.cas_current(st, fresh) == ("ok", b"old")
    if later:
        assert payload[1] == b"old"
    assert swap(st, fresh, b"new") == ("ok", None)
    assert backend.get("k") == b"new"

    get_many = keyvalue.get_many(types["get-many"])
    tag, values = get_many(st, keyvalue.Bucket(backend), ["k", "absent"])
    assert tag == "ok"
    if later:
        assert values == [("k", b"new"), ("absent", None)]
    else:
        assert values == [("k", b"new"), None]
