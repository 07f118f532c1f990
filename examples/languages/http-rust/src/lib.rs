//! A wasi:http handler in Rust: the query string, the X-Greeting header and the request body, as
//! JSON. Debian's Rust 1.63 has no wasm32-wasip2 target and no wit-bindgen (crates.io is not
//! reachable), so this is a wasm32-unknown-unknown library that declares the proxy world's
//! imports by hand in the canonical ABI: resources are i32 handles, a string or list is a
//! (pointer, length) pair, and more than one result value goes to a return area whose address is
//! the last parameter. jco's wasm-tools then makes it a component.
use std::alloc::{alloc, realloc, Layout};

type Handle = i32;

#[link(wasm_import_module = "wasi:http/types@0.2.12")]
extern "C" {
    #[link_name = "[method]incoming-request.method"]
    fn request_method(request: Handle, ret: *mut u8);
    #[link_name = "[method]incoming-request.path-with-query"]
    fn request_path(request: Handle, ret: *mut u8);
    #[link_name = "[method]incoming-request.headers"]
    fn request_headers(request: Handle) -> Handle;
    #[link_name = "[method]incoming-request.consume"]
    fn request_consume(request: Handle, ret: *mut u8);
    #[link_name = "[method]incoming-body.stream"]
    fn body_stream(body: Handle, ret: *mut u8);
    #[link_name = "[method]fields.get"]
    fn fields_get(fields: Handle, name: *const u8, len: usize, ret: *mut u8);
    #[link_name = "[static]fields.from-list"]
    fn fields_from_list(entries: *const [usize; 4], len: usize, ret: *mut u8);
    #[link_name = "[constructor]outgoing-response"]
    fn response_new(headers: Handle) -> Handle;
    #[link_name = "[method]outgoing-response.body"]
    fn response_body(response: Handle, ret: *mut u8);
    #[link_name = "[method]outgoing-body.write"]
    fn body_write(body: Handle, ret: *mut u8);
    #[link_name = "[static]outgoing-body.finish"]
    fn body_finish(body: Handle, has_trailers: i32, trailers: Handle, ret: *mut u8);
    // result<outgoing-response, error-code> flattens to 8 values; ok(response) uses two.
    #[link_name = "[static]response-outparam.set"]
    fn outparam_set(
        out: Handle,
        is_err: i32,
        response: Handle,
        _: i32,
        _: i64,
        _: i32,
        _: i32,
        _: i32,
        _: i32,
    );
}

#[link(wasm_import_module = "wasi:io/streams@0.2.12")]
extern "C" {
    #[link_name = "[method]input-stream.blocking-read"]
    fn stream_read(stream: Handle, len: u64, ret: *mut u8);
    #[link_name = "[method]output-stream.blocking-write-and-flush"]
    fn stream_write(stream: Handle, data: *const u8, len: usize, ret: *mut u8);
    #[link_name = "[resource-drop]output-stream"]
    fn output_stream_drop(stream: Handle);
}

/// The host allocates the strings and lists it returns with this export.
#[no_mangle]
pub unsafe extern "C" fn cabi_realloc(
    old: *mut u8,
    old_size: usize,
    align: usize,
    size: usize,
) -> *mut u8 {
    match (old_size, size) {
        (_, 0) => align as *mut u8, // nothing to hold: any aligned address will do
        (0, _) => alloc(Layout::from_size_align_unchecked(size, align)),
        _ => realloc(
            old,
            Layout::from_size_align_unchecked(old_size, align),
            size,
        ),
    }
}

/// The return area: results at fixed offsets, read as little-endian values.
#[repr(align(8))]
struct Ret([u8; 64]);

impl Ret {
    fn ok(&self) -> bool {
        self.0[0] == 0
    }
    fn i32(&self, offset: usize) -> i32 {
        i32::from_le_bytes(self.0[offset..offset + 4].try_into().unwrap())
    }
    /// The (pointer, length) at `offset`, taken as the Vec the host allocated.
    unsafe fn vec(&self, offset: usize) -> Vec<u8> {
        let len = self.i32(offset + 4) as usize;
        Vec::from_raw_parts(self.i32(offset) as *mut u8, len, len)
    }
    fn check(&self) {
        assert!(self.ok(), "the host answered an error");
    }
}

/// A JSON string: quotes and backslashes escaped, control characters as \u00XX, the rest as is.
fn json(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![b'"'];
    for &c in bytes {
        match c {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', c]),
            0..=0x1f => out.extend_from_slice(format!("\\u{:04x}", c).as_bytes()),
            _ => out.push(c),
        }
    }
    out.push(b'"');
    out
}

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

#[export_name = "wasi:http/incoming-handler@0.2.12#handle"]
pub unsafe extern "C" fn handle(request: Handle, response_out: Handle) {
    let mut ret = Ret([0; 64]);
    request_method(request, ret.0.as_mut_ptr()); // variant: case @0, other(string) @4
    let method = match METHODS.get(ret.0[0] as usize) {
        Some(name) => name.as_bytes().to_vec(),
        None => ret.vec(4),
    };
    request_path(request, ret.0.as_mut_ptr()); // option<string>: some @0, string @4
    let path = if ret.0[0] == 1 {
        ret.vec(4)
    } else {
        Vec::new()
    };
    let query = match path.iter().position(|&c| c == b'?') {
        Some(at) => &path[at + 1..],
        None => &[],
    };
    let name = "x-greeting";
    fields_get(
        request_headers(request),
        name.as_ptr(),
        name.len(),
        ret.0.as_mut_ptr(),
    );
    let values = std::slice::from_raw_parts(ret.i32(0) as *const [i32; 2], ret.i32(4) as usize);
    let greeting = match values.first() {
        Some(&[ptr, len]) => std::slice::from_raw_parts(ptr as *const u8, len as usize),
        None => &[],
    };

    let mut body = Vec::new();
    request_consume(request, ret.0.as_mut_ptr()); // result<incoming-body>: error @0, handle @4
    ret.check();
    body_stream(ret.i32(4), ret.0.as_mut_ptr());
    ret.check();
    let input = ret.i32(4);
    loop {
        stream_read(input, 65536, ret.0.as_mut_ptr()); // result<list<u8>, stream-error>
        if !ret.ok() {
            break; // stream-error.closed: the end of the body
        }
        body.extend_from_slice(&ret.vec(4));
    }

    let mut reply = b"{\"language\":\"Rust\"".to_vec();
    for (name, value) in [
        ("method", &method[..]),
        ("query", query),
        ("greeting", greeting),
    ] {
        reply.extend_from_slice(format!(",\"{}\":", name).as_bytes());
        reply.extend_from_slice(&json(value));
    }
    reply.extend_from_slice(format!(",\"length\":{},\"body\":", body.len()).as_bytes());
    reply.extend_from_slice(&json(&body));
    reply.extend_from_slice(b"}\n");

    let (key, value) = ("content-type", "application/json");
    let header = [
        key.as_ptr() as usize,
        key.len(),
        value.as_ptr() as usize,
        value.len(),
    ];
    fields_from_list(&header, 1, ret.0.as_mut_ptr()); // result<fields, header-error>
    ret.check();
    let response = response_new(ret.i32(4));
    response_body(response, ret.0.as_mut_ptr());
    ret.check();
    let out_body = ret.i32(4);
    outparam_set(response_out, 0, response, 0, 0, 0, 0, 0, 0);
    body_write(out_body, ret.0.as_mut_ptr());
    ret.check();
    let output = ret.i32(4);
    for chunk in reply.chunks(4096) {
        // blocking-write-and-flush takes 4096 bytes at most
        stream_write(output, chunk.as_ptr(), chunk.len(), ret.0.as_mut_ptr());
        ret.check();
    }
    output_stream_drop(output); // a stream goes before its body is finished
    body_finish(out_body, 0, 0, ret.0.as_mut_ptr());
    ret.check();
}
