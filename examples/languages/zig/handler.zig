//! A WAGI handler in Zig: the query string, the X-Greeting header and the request body, as JSON.
//! Written for the Zig 0.17 standard library (PyPI `ziglang` 0.17), whose I/O goes through `std.Io`.
const std = @import("std");

pub fn main(init: std.process.Init) !void {
    const io = init.io;
    var in_buffer: [4096]u8 = undefined;
    var stdin = std.Io.File.stdin().readerStreaming(io, &in_buffer);
    const body = try stdin.interface.allocRemaining(init.gpa, .unlimited);
    defer init.gpa.free(body);

    const env = init.environ_map;
    var out_buffer: [4096]u8 = undefined;
    var stdout = std.Io.File.stdout().writerStreaming(io, &out_buffer);
    const out = &stdout.interface;
    try out.writeAll("Content-Type: application/json\n\n");
    try std.json.Stringify.value(.{
        .language = "Zig",
        .method = env.get("REQUEST_METHOD") orelse "",
        .query = env.get("QUERY_STRING") orelse "",
        .greeting = env.get("HTTP_X_GREETING") orelse "",
        .length = body.len,
        .body = body,
    }, .{}, out);
    try out.writeAll("\n");
    try out.flush();
}
