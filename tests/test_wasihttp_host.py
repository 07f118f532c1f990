"""wasihttp.host and the raw value codecs: linking by name, denial values, and the raw codecs
of engine.lowlevel checked against the binding's public conversion."""

from __future__ import annotations

import ctypes
import gc
import sys
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from wasmtime import component as cm

from wasihttp_support import CROSSINGS, proxy, require_native
from wasmgate.engine import crossing, lowlevel
from wasmgate.engine.engine import get_engine
from wasmgate.engine.loader import load_guest
from wasmgate.errors import LinkError
from wasmgate.limits import Limits
from wasmgate.wasihttp import HttpRequest, ProxyHandler, resources
from wasmgate.wasihttp.codec import binding_tags, public_codec, variant_cases
from wasmgate.wasihttp.host import BRIDGE, denial, interface_key

ROOT = Path(__file__).resolve().parent.parent
DENIED = ROOT / "tests" / "guests" / "http_denied.wat"
SETTINGS = Limits(timeout=5.0, max_request_body=1 << 20, max_response_body=1 << 20)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("wasi:http/types@0.2.0", "wasi:http/types"),
        ("wasi:http/types@0.2.12", "wasi:http/types"),
        ("wasi:io/streams@0.2.0-rc-2023-11-10", "wasi:io/streams"),
        ("wasi:cli/terminal-stdout@0.2.3", "wasi:cli/terminal-stdout"),
        ("wasi:http/types@0.3.0", None),
        ("wasi:http/types", None),
        ("example:greeter/api@0.2.0", None),
        ("greet", None),
    ],
)
def test_interface_key(name: str, key: str | None) -> None:
    assert interface_key(name) == key


@pytest.mark.parametrize("how", CROSSINGS)
def test_denied_capabilities_give_the_interfaces_error_values(how: str) -> None:
    # The guest traps unless create-tcp-socket answers err(access-denied) and get-directories
    # an empty list; then it returns without answering.
    guest = load_guest(DENIED, get_engine())
    result = proxy(how, guest, SETTINGS).serve(HttpRequest("GET", "/"))
    assert (result.status, result.cause) == (500, "no-response"), result.reason


def test_denial_value_comes_from_the_result_type() -> None:
    engine = get_engine().engine
    guest = load_guest(DENIED, get_engine())
    imports = guest.as_component().type.imports(engine)
    create = imports["wasi:sockets/tcp-create-socket@0.2.0"].ty.exports(engine)
    assert denial(create["create-tcp-socket"].ty) == ("err", "access-denied")
    pre = imports["wasi:filesystem/preopens@0.2.0"].ty.exports(engine)
    assert denial(pre["get-directories"].ty) is None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("wasi:filesystem/preopens@0.2.0", "wasi:foo/bar@0.2.0", "imports wasi:foo/bar@0.2.0"),
        ("wasi:http/types@0.2.3", "wasi:http/types@0.3.0", "imports wasi:http/types@0.3.0"),
        ("wasi:http/incoming-handler@0.2.3", "wasi:http/handler@0.2.3", "exports no"),
    ],
)
def test_link_errors_name_the_import(old: str, new: str, message: str) -> None:
    text = DENIED.read_text().replace(old, new)
    guest = load_guest(text.encode(), get_engine(), name="changed.wat")
    with pytest.raises(LinkError, match=message):
        ProxyHandler(guest, SETTINGS)


# --- raw codecs against the public conversion --------------------------------------------


def _sample(ty: Any) -> Any:
    """A value of ``ty`` in the host's shapes, exercising every nested type."""
    ints = {cm.S8: -5, cm.U8: 250, cm.S16: -300, cm.U16: 60000, cm.S32: -70000, cm.U32: 4000000000}
    if type(ty) in ints:
        return ints[type(ty)]
    if isinstance(ty, cm.S64):
        return -(2**40)
    if isinstance(ty, cm.U64):
        return 2**63 + 5
    if isinstance(ty, cm.Bool):
        return True
    if isinstance(ty, cm.F32):
        return 1.5
    if isinstance(ty, cm.F64):
        return -2.25
    if isinstance(ty, cm.Char):
        return "é"
    if isinstance(ty, cm.String):
        return "héllo, wörld"
    if isinstance(ty, cm.ListType):
        if isinstance(ty.element, cm.U8):
            return bytes(range(256)) * 3
        return [_sample(ty.element), _sample(ty.element)]
    if isinstance(ty, cm.TupleType):
        return tuple(_sample(t) for t in ty.elements)
    if isinstance(ty, cm.RecordType):
        return {n: _sample(t) for n, t in ty.fields}
    if isinstance(ty, cm.EnumType):
        return ty.names[-1]
    if isinstance(ty, cm.FlagsType):
        return frozenset(ty.names[:2])
    if isinstance(ty, cm.OptionType):
        return _sample(ty.payload)
    if isinstance(ty, cm.ResultType):
        if _public_gap(ty):
            return ("ok", None if ty.ok is None else _sample(ty.ok))
        return ("err", None if ty.err is None else _sample(ty.err))
    if isinstance(ty, cm.VariantType):
        name, t = ty.cases[-1]
        return (name, None if t is None else _sample(t))
    raise AssertionError(f"no sample for {ty}")


def _public_gap(ty: cm.ResultType) -> bool:
    """The binding's generic conversion cannot tell this result's err case from its ok case
    (the ok case's classes include ``object``): only ok values can be compared."""
    classes: set[type] = set()
    if ty.ok is not None:
        ty.ok.add_classes(classes)
    return not binding_tags(variant_cases(ty)) and object in classes


def _types() -> list[tuple[str, Any]]:
    engine = get_engine().engine
    guest = load_guest(ROOT / "tests" / "guests" / "comp_types.wat", get_engine())
    out = []
    for name, ext in guest.as_component().type.exports(engine).items():
        fty = ext.ty
        if isinstance(fty, cm.FuncType):
            for pname, t in fty.params:
                out.append((f"{name}.{pname}", t))
            if fty.result is not None:
                out.append((f"{name}->", fty.result))
    return out


TYPES = _types()


@pytest.mark.parametrize(("where", "ty"), TYPES, ids=[w for w, _ in TYPES])
def test_raw_codecs_agree_with_the_public_conversion(where: str, ty: Any) -> None:
    assert lowlevel.raw_funcs_supported()
    if isinstance(ty, cm.OptionType) and isinstance(ty.payload, cm.OptionType):
        with pytest.raises(TypeError, match="option<option<T>>"):
            lowlevel.raw_codec(ty, BRIDGE)
        return
    raw_lift, raw_lower = lowlevel.raw_codec(ty, BRIDGE)
    pub_lift, pub_lower = public_codec(ty, BRIDGE)
    if isinstance(ty, cm.OptionType | cm.ResultType | cm.VariantType):
        # our reading of the binding's tagging rule is the binding's own
        assert binding_tags(variant_cases(ty)) == ty._tagged()
    value = _sample(ty)
    store = wasmtime.Store(get_engine().engine)
    # raw lower -> the binding's own lift -> public shapes
    val = lowlevel._ffi.wasmtime_component_val_t()
    raw_lower(None, value, val)
    assert pub_lift(store, ty.convert_from_c(val)) == value
    # public shapes -> the binding's own lower -> raw lift
    val = lowlevel._ffi.wasmtime_component_val_t()
    ty.convert_to_c(store, pub_lower(store, value), ctypes.pointer(val))
    assert raw_lift(None, val) == value
    lowlevel._ffi.wasmtime_component_val_delete(ctypes.byref(val))


def test_raw_codecs_express_the_err_case_the_binding_cannot() -> None:
    # result<option<u32>, string> has the shape of future-trailers.get's inner
    # result<option<own<trailers>>, error-code>: the binding would send err as ok.
    (ty,) = [t for where, t in TYPES if where == "echo-maybe.r"]
    assert _public_gap(ty)
    raw_lift, raw_lower = lowlevel.raw_codec(ty, BRIDGE)
    for value in [("err", "no"), ("ok", None), ("ok", 7)]:
        val = lowlevel._ffi.wasmtime_component_val_t()
        raw_lower(None, value, val)
        assert raw_lift(None, val) == value
        assert val.of.result.is_ok == (value[0] == "ok")
        lowlevel._ffi.wasmtime_component_val_delete(ctypes.byref(val))


@pytest.mark.parametrize("how", CROSSINGS)
def test_a_resource_the_guest_drops_runs_its_drop_hook(
    how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the echo guest drops the request's headers (a fields) after reading them
    from wasmgate.wasihttp import resources

    drops: list[object] = []
    monkeypatch.setattr(resources.Fields, "dropped", lambda self, state: drops.append(self))
    guest = load_guest(ROOT / "examples" / "http" / "echo-http.wasm", get_engine())
    handler = proxy(how, guest, SETTINGS)
    result = handler.serve(HttpRequest("GET", "/", headers=((b"a", b"b"),)))
    assert result.status == 200, result.reason
    assert len(drops) == 1
    assert isinstance(drops[0], resources.Fields)
    assert drops[0].entries == [("a", b"b")]


def test_component_calls_keep_the_gil_and_still_work() -> None:
    held = lowlevel.hold_gil_in_component_calls()
    assert "wasmtime_component_resource_host_rep" in held
    assert lowlevel.hold_gil_in_component_calls() == held  # idempotent
    host = cm.ResourceHost.own(7, 1234)
    assert (host.rep, host.type, host.owned) == (7, 1234, True)


def test_raw_callbacks_go_with_their_linker() -> None:
    # a reloaded route drops its linker: the host's callbacks must not pile up
    guest = load_guest(ROOT / "examples" / "http" / "echo-http.wasm", get_engine())
    before = len(lowlevel._raw_callbacks)
    handler = proxy("python", guest, SETTINGS)
    assert len(lowlevel._raw_callbacks) > before
    assert handler.serve(HttpRequest("POST", "/", body=b"x")).status == 200
    del handler
    gc.collect()
    assert len(lowlevel._raw_callbacks) == before


def test_c_callbacks_go_with_their_linker() -> None:
    # each C host function's data holds the host's ``current``: the engine gives it back when
    # the linker goes, or every reload would keep a reloaded route's functions alive
    guest = load_guest(ROOT / "examples" / "http" / "echo-http.wasm", get_engine())
    gc.collect()
    before = _holders(resources.current)
    handler = proxy("c", guest, SETTINGS)
    linked = _holders(resources.current)
    assert handler.serve(HttpRequest("POST", "/", body=b"x")).status == 200
    del handler
    gc.collect()
    after = _holders(resources.current)
    assert (linked > before + 10, after) == (True, before)


def _holders(obj: object) -> int:
    return sys.getrefcount(obj) - 1  # not counting the argument's own reference


# --- the C crossings against the raw codecs -----------------------------------------------


def test_the_c_crossings_are_built_and_used_here() -> None:
    # setup builds the extension (a C compiler is on every supported machine): without it the
    # gateway still works, slower; this says so rather than testing the Python path twice
    require_native()
    assert crossing.available()
    guest = load_guest(ROOT / "examples" / "perf" / "hello-http.wasm", get_engine())
    assert ProxyHandler(guest, SETTINGS).linked.crossing == "c"
    with crossing.disabled():
        assert ProxyHandler(guest, SETTINGS).linked.crossing == "python"
    assert ProxyHandler(guest, SETTINGS, fast=False).linked.crossing == "public"


def _native() -> Any:
    require_native()
    return lowlevel.native()


def _val() -> Any:
    return lowlevel._ffi.wasmtime_component_val_t()


def _delete(val: Any) -> None:
    lowlevel._ffi.wasmtime_component_val_delete(ctypes.byref(val))


@pytest.mark.parametrize(("where", "ty"), TYPES, ids=[w for w, _ in TYPES])
def test_c_codecs_agree_with_the_raw_codecs(where: str, ty: Any) -> None:
    if isinstance(ty, cm.OptionType) and isinstance(ty.payload, cm.OptionType):
        with pytest.raises(TypeError, match="option<option<T>>"):
            crossing.plan(ty, BRIDGE)
        return
    native = _native()
    plan = crossing.plan(ty, BRIDGE)
    raw_lift, raw_lower = lowlevel.raw_codec(ty, BRIDGE)
    value = _sample(ty)
    # C lower -> raw lift, raw lower -> C lift, C -> C
    val = _val()
    native.lower(plan, None, value, ctypes.addressof(val))
    assert raw_lift(None, val) == value
    assert native.lift(plan, None, ctypes.addressof(val)) == value
    _delete(val)
    val = _val()
    raw_lower(None, value, val)
    assert native.lift(plan, None, ctypes.addressof(val)) == value
    _delete(val)


def _types_named(*names: str) -> dict[str, Any]:
    found = dict(TYPES)
    return {n: found[n] for n in names}


@pytest.mark.parametrize(
    ("where", "value", "error"),
    [
        ("echo-u16.v", 70000, OverflowError),
        ("echo-u16.v", -1, OverflowError),
        ("echo-s8.v", "7", TypeError),
        ("echo-char.c", "ab", TypeError),
        ("echo-char.c", "\ud800", ValueError),
        ("echo-string.s", b"bytes", TypeError),
        ("echo-string.s", "\ud800", UnicodeEncodeError),
        ("echo-strings.s", ["ok", 5], TypeError),
        ("echo-person.p", {"name": "x"}, KeyError),
        ("echo-result.r", ("maybe", None), ValueError),
        ("echo-result.r", "ok", TypeError),
        ("echo-shape.s", ("no-such-case", None), ValueError),
        ("echo-tuple.t", (1,), TypeError),
    ],
)
def test_c_lowering_refuses_a_wrong_value_and_leaves_it_droppable(
    where: str, value: Any, error: type[BaseException]
) -> None:
    # a host function returning the wrong shape is the guest's trap, never a crash: whatever
    # was written before the failure is dropped whole by the engine afterwards
    (ty,) = _types_named(where).values()
    val = _val()
    with pytest.raises(error):
        _native().lower(crossing.plan(ty, BRIDGE), None, value, ctypes.addressof(val))
    _delete(val)


def test_c_lifting_checks_each_values_kind() -> None:
    # a plan and a value of different kinds (never from the engine, which checks types) is an
    # error, not a read of the wrong union member
    types = dict(TYPES)
    val = _val()
    lowlevel.raw_codec(types["echo-string.s"], BRIDGE)[1](None, "text", val)
    with pytest.raises(TypeError, match="where U32 was expected"):
        _native().lift(crossing.plan(types["add.a"], BRIDGE), None, ctypes.addressof(val))
    _delete(val)


def test_the_c_crossings_stand_down_when_they_cannot_be_trusted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a binding whose value layout differs from the extension's, or WASMGATE_NATIVE=0: the
    # Python path serves, and the gateway works the same
    require_native()
    guest = load_guest(ROOT / "examples" / "perf" / "hello-http.wasm", get_engine())
    try:
        monkeypatch.setattr(lowlevel, "value_layout", lambda: {"val": 40})
        lowlevel.native.cache_clear()
        assert not crossing.available()
        monkeypatch.undo()
        monkeypatch.setenv(lowlevel.NATIVE_VARIABLE, "0")
        lowlevel.native.cache_clear()
        assert not crossing.available()
        handler = ProxyHandler(guest, SETTINGS)
        assert handler.linked.crossing == "python"
        assert handler.serve(HttpRequest("GET", "/")).status == 200
    finally:
        monkeypatch.undo()
        lowlevel.native.cache_clear()
    assert crossing.available()
