"""A wasi:http handler in Python (componentize-py): the query string, the X-Greeting header and
the request body, as JSON."""

import json

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    Method_Other,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        method = request.method()  # Method_Get(), ..., or Method_Other("PROPFIND")
        if isinstance(method, Method_Other):
            name = method.value
        else:
            name = type(method).__name__.removeprefix("Method_").upper()
        _, _, query = (request.path_with_query() or "").partition("?")
        with request.headers() as headers:
            greeting = b"".join(headers.get("x-greeting")[:1]).decode()
        body = read_all(request.consume())
        reply = {
            "language": "Python",
            "method": name,
            "query": query,
            "greeting": greeting,
            "length": len(body),
            "body": body.decode(errors="replace"),
        }
        respond(response_out, json.dumps(reply).encode() + b"\n")


def read_all(body: IncomingBody) -> bytes:
    chunks = []
    with body.stream() as stream:
        while True:
            try:
                chunks.append(stream.blocking_read(65536))
            except Err:  # stream-error.closed: the end of the body
                break
    IncomingBody.finish(body)
    return b"".join(chunks)


def respond(response_out: ResponseOutparam, data: bytes) -> None:
    response = OutgoingResponse(Fields.from_list([("content-type", b"application/json")]))
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    with body.write() as stream:
        for at in range(0, len(data), 4096):  # blocking-write-and-flush takes 4096 bytes at most
            stream.blocking_write_and_flush(data[at : at + 4096])
    OutgoingBody.finish(body, None)
