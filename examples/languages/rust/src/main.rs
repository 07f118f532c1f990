//! A WAGI handler in Rust: the query string, the X-Greeting header and the request body, as JSON.
use std::env;
use std::io::{self, Read, Write};

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

fn var(name: &str) -> Vec<u8> {
    env::var(name).unwrap_or_default().into_bytes()
}

fn main() -> io::Result<()> {
    let mut body = Vec::new();
    io::stdin().read_to_end(&mut body)?;
    let mut out = io::stdout().lock();
    out.write_all(b"Content-Type: application/json\n\n{\"language\":\"Rust\"")?;
    for (name, value) in [
        ("method", var("REQUEST_METHOD")),
        ("query", var("QUERY_STRING")),
        ("greeting", var("HTTP_X_GREETING")),
    ] {
        write!(out, ",\"{}\":", name)?;
        out.write_all(&json(&value))?;
    }
    write!(out, ",\"length\":{},\"body\":", body.len())?;
    out.write_all(&json(&body))?;
    out.write_all(b"}\n")?;
    out.flush()
}
