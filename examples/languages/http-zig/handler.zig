//! A wasi:http handler in Zig: the query string, the X-Greeting header and the request body, as
//! JSON. No bindings generator is packaged, so the proxy world's imports are declared here by hand
//! in the canonical ABI: resources are i32 handles, a string or list is a (pointer, length) pair,
//! and more than one result value goes to a return area (an extern struct with the result's
//! layout) whose address is the last parameter. A wasm32-freestanding library: no WASI imports;
//! jco's wasm-tools makes it a component. Written for Zig 0.17 (PyPI `ziglang` 0.17).
const std = @import("std");

const Handle = i32;
const Bytes = extern struct { ptr: [*]u8, len: usize };
const Method = extern struct { case: u8, other: Bytes }; // variant: 0-8 known, 9 other(string)
const OptionBytes = extern struct { is_some: u8, value: Bytes };
const ResultHandle = extern struct { is_err: u8, handle: Handle };
const ResultBytes = extern struct { is_err: u8, value: Bytes }; // err: stream-error
const ResultUnit = extern struct { is_err: u8, error_code: [4]u64 }; // err: error-code (32 bytes)
const Values = extern struct { ptr: [*]const Bytes, len: usize }; // list<list<u8>>
const Entry = extern struct { name: Bytes, value: Bytes };

extern "wasi:http/types@0.2.12" fn @"[method]incoming-request.method"(Handle, *Method) void;
extern "wasi:http/types@0.2.12" fn @"[method]incoming-request.path-with-query"(Handle, *OptionBytes) void;
extern "wasi:http/types@0.2.12" fn @"[method]incoming-request.headers"(Handle) Handle;
extern "wasi:http/types@0.2.12" fn @"[method]incoming-request.consume"(Handle, *ResultHandle) void;
extern "wasi:http/types@0.2.12" fn @"[method]incoming-body.stream"(Handle, *ResultHandle) void;
extern "wasi:http/types@0.2.12" fn @"[method]fields.get"(Handle, [*]const u8, usize, *Values) void;
extern "wasi:http/types@0.2.12" fn @"[static]fields.from-list"([*]const Entry, usize, *ResultHandle) void;
extern "wasi:http/types@0.2.12" fn @"[constructor]outgoing-response"(Handle) Handle;
extern "wasi:http/types@0.2.12" fn @"[method]outgoing-response.body"(Handle, *ResultHandle) void;
extern "wasi:http/types@0.2.12" fn @"[method]outgoing-body.write"(Handle, *ResultHandle) void;
extern "wasi:http/types@0.2.12" fn @"[static]outgoing-body.finish"(Handle, i32, Handle, *ResultUnit) void;
// result<outgoing-response, error-code> flattens to 8 values; ok(response) uses two.
extern "wasi:http/types@0.2.12" fn @"[static]response-outparam.set"(Handle, i32, Handle, i32, i64, i32, i32, i32, i32) void;
extern "wasi:io/streams@0.2.12" fn @"[method]input-stream.blocking-read"(Handle, u64, *ResultBytes) void;
extern "wasi:io/streams@0.2.12" fn @"[method]output-stream.blocking-write-and-flush"(Handle, [*]const u8, usize, *ResultUnit) void;
extern "wasi:io/streams@0.2.12" fn @"[resource-drop]output-stream"(Handle) void;

const allocator = std.heap.wasm_allocator;

/// The host allocates the strings and lists it returns with this export.
export fn cabi_realloc(old: ?[*]u8, old_size: usize, alignment: usize, size: usize) ?[*]u8 {
    const new = allocator.rawAlloc(size, .fromByteUnits(alignment), @returnAddress()) orelse
        return null;
    if (old) |p| @memcpy(new[0..@min(old_size, size)], p[0..@min(old_size, size)]);
    return new;
}

fn handle(request: Handle, response_out: Handle) callconv(.c) void {
    serve(request, response_out) catch @panic("out of memory");
}

comptime {
    @export(&handle, .{ .name = "wasi:http/incoming-handler@0.2.12#handle" });
}

const methods = [_][]const u8{
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
};

fn check(is_err: u8) void {
    if (is_err != 0) @panic("the host answered an error");
}

fn serve(request: Handle, response_out: Handle) !void {
    var method: Method = undefined;
    @"[method]incoming-request.method"(request, &method);
    var path: OptionBytes = undefined;
    @"[method]incoming-request.path-with-query"(request, &path);
    const target = if (path.is_some == 1) path.value.ptr[0..path.value.len] else "";
    const query = if (std.mem.indexOfScalar(u8, target, '?')) |at| target[at + 1 ..] else "";
    const headers = @"[method]incoming-request.headers"(request);
    var greetings: Values = undefined;
    @"[method]fields.get"(headers, "x-greeting", 10, &greetings);
    const greeting = if (greetings.len > 0) greetings.ptr[0].ptr[0..greetings.ptr[0].len] else "";

    var body: std.ArrayList(u8) = .empty;
    var result: ResultHandle = undefined;
    @"[method]incoming-request.consume"(request, &result);
    check(result.is_err);
    @"[method]incoming-body.stream"(result.handle, &result);
    check(result.is_err);
    while (true) {
        var chunk: ResultBytes = undefined;
        @"[method]input-stream.blocking-read"(result.handle, 65536, &chunk);
        if (chunk.is_err != 0) break; // stream-error.closed: the end of the body
        try body.appendSlice(allocator, chunk.value.ptr[0..chunk.value.len]);
    }

    var json: std.Io.Writer.Allocating = .init(allocator);
    try std.json.Stringify.value(.{
        .language = "Zig",
        .method = if (method.case < methods.len)
            methods[method.case]
        else
            method.other.ptr[0..method.other.len],
        .query = query,
        .greeting = greeting,
        .length = body.items.len,
        .body = body.items,
    }, .{}, &json.writer);
    try json.writer.writeAll("\n");
    const reply = json.written();

    const content_type = [_]Entry{.{
        .name = .{ .ptr = @constCast("content-type"), .len = 12 },
        .value = .{ .ptr = @constCast("application/json"), .len = 16 },
    }};
    @"[static]fields.from-list"(&content_type, 1, &result);
    check(result.is_err);
    const response = @"[constructor]outgoing-response"(result.handle);
    @"[method]outgoing-response.body"(response, &result);
    check(result.is_err);
    const out_body = result.handle;
    @"[static]response-outparam.set"(response_out, 0, response, 0, 0, 0, 0, 0, 0);
    @"[method]outgoing-body.write"(out_body, &result);
    check(result.is_err);
    var done: ResultUnit = undefined;
    var at: usize = 0;
    while (at < reply.len) : (at += 4096) { // blocking-write-and-flush takes 4096 bytes at most
        const n = @min(reply.len - at, 4096);
        @"[method]output-stream.blocking-write-and-flush"(result.handle, reply[at..].ptr, n, &done);
        check(done.is_err);
    }
    @"[resource-drop]output-stream"(result.handle); // a stream goes before its body is finished
    @"[static]outgoing-body.finish"(out_body, 0, 0, &done);
    check(done.is_err);
}
