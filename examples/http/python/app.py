"""A wasi:http echo in Python (componentize-py): the request's method, path and headers come back
as ``x-method``, ``x-path`` and ``x-echo-<name>`` response headers, its body as the response body.
``/status/NNN`` answers with status NNN; ``/env`` answers the environment, one ``K=V`` a line."""

import os

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import types

CHUNK = 4096  # the most blocking-write-and-flush takes at once


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: types.IncomingRequest, response_out: types.ResponseOutparam) -> None:
        method = request.method()
        if isinstance(method, types.Method_Other):
            name = method.value
        else:
            name = type(method).__name__.removeprefix("Method_").upper()
        path = request.path_with_query() or "/"
        fields = [("x-method", name.encode()), ("x-path", path.encode())]
        with request.headers() as headers:
            fields += [("x-echo-" + key, value) for key, value in headers.entries()]
        body = b""
        if path == "/env":
            body = "".join(f"{k}={v}\n" for k, v in sorted(os.environ.items())).encode()
        else:
            incoming = request.consume()
            with incoming.stream() as stream:
                parts = []
                while True:
                    try:
                        parts.append(stream.blocking_read(65536))
                    except Err:  # stream-error.closed: the end of the body
                        break
            body = b"".join(parts)
            types.IncomingBody.finish(incoming)
        response = types.OutgoingResponse(types.Fields.from_list(fields))
        if path.startswith("/status/"):
            response.set_status_code(int(path.removeprefix("/status/")))
        out_body = response.body()
        types.ResponseOutparam.set(response_out, Ok(response))
        with out_body.write() as out:
            for i in range(0, len(body), CHUNK):
                out.blocking_write_and_flush(body[i : i + CHUNK])
        types.OutgoingBody.finish(out_body, None)
