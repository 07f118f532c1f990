"""A wasi:http counter in Python (componentize-py) on wasi:keyvalue and wasi:config.

GET /count[?store=X]  increments "hits" in store X (default "default"): "count=N"
GET /cas              adds one to "cas-hits" by compare-and-swap, retrying on conflict: "cas=N"
GET /batch            set-many, get-many, list-keys pages, delete-many: one line per step
GET /config           every variable, one "name=value" a line; /config/NAME one value
A store error answers 403 (access-denied), 404 (no-such-store) or 503 (other), with the error
in the body."""

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import atomics, batch, types, wasi_config_store, wasi_keyvalue_store

kv = wasi_keyvalue_store


def count(store: str) -> str:
    with kv.open(store) as bucket:
        return f"count={atomics.increment(bucket, 'hits', 1)}\n"


def cas() -> str:
    with kv.open("default") as bucket:
        tries = 0
        while True:
            tries += 1
            handle = atomics.Cas.new(bucket, "cas-hits")
            current = handle.current()
            value = str(int(current or b"0") + 1).encode()
            try:
                atomics.swap(handle, value)
                return f"cas={value.decode()}\n"
            except Err as e:
                if not isinstance(e.value, atomics.CasError_CasFailed) or tries > 1000:
                    raise
                e.value.value.__exit__(None, None, None)  # drop the fresh handle; retry


def batch_steps() -> str:
    lines = []
    with kv.open("default") as bucket:
        batch.set_many(bucket, [(f"b{i:02}", str(i).encode()) for i in range(25)])
        got = batch.get_many(bucket, ["b00", "missing", "b24"])
        lines.append("get-many " + repr(got))
        keys, cursor, pages = [], None, 0
        while True:
            page = bucket.list_keys(cursor)
            keys += [k for k in page.keys if k.startswith("b")]
            pages += 1
            cursor = page.cursor
            if cursor is None:
                break
        lines.append(f"list-keys {len(set(keys))} keys")
        batch.delete_many(bucket, [f"b{i:02}" for i in range(25)])
        lines.append(
            "after delete-many " + repr(bucket.get("b00")) + " " + repr(bucket.exists("b24"))
        )
        bucket.set("plain", b"\x00\xff")
        lines.append("get " + repr(bucket.get("plain")))
    return "\n".join(lines) + "\n"


def config(path: str) -> str:
    name = path.removeprefix("/config").removeprefix("/")
    if name:
        return f"{name}={wasi_config_store.get(name)}\n"
    return "".join(f"{k}={v}\n" for k, v in sorted(wasi_config_store.get_all()))


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: types.IncomingRequest, response_out: types.ResponseOutparam) -> None:
        path, _, query = (request.path_with_query() or "/").partition("?")
        status = 200
        try:
            if path == "/count":
                store = query.removeprefix("store=") if query.startswith("store=") else "default"
                text = count(store)
            elif path == "/cas":
                text = cas()
            elif path == "/batch":
                text = batch_steps()
            elif path.startswith("/config"):
                text = config(path)
            else:
                status, text = 404, "not found\n"
        except Err as e:
            error = e.value
            status = {"Error_AccessDenied": 403, "Error_NoSuchStore": 404}.get(
                type(error).__name__, 503
            )
            text = f"error={type(error).__name__} {getattr(error, 'value', '')}\n"
        body = text.encode()
        response = types.OutgoingResponse(types.Fields.from_list([("content-type", b"text/plain")]))
        response.set_status_code(status)
        out_body = response.body()
        types.ResponseOutparam.set(response_out, Ok(response))
        with out_body.write() as out:
            out.blocking_write_and_flush(body)
        types.OutgoingBody.finish(out_body, None)
