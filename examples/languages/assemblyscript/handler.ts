// A WAGI handler in AssemblyScript: the query string, the X-Greeting header and the request body,
// as JSON. Compiled with @assemblyscript/wasi-shim, which provides `process` (env, stdin, stdout).
import { fd_write } from "@assemblyscript/wasi-shim/assembly/bindings/wasi_snapshot_preview1";

function env(name: string): string {
  return process.env.has(name) ? process.env.get(name) : "";
}

// A JSON string: quotes and backslashes escaped, control characters as \u00XX, the rest as is.
function json(s: string): string {
  const parts = new Array<string>();
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c != 0x22 && c != 0x5c && c >= 0x20) continue;
    parts.push(s.substring(start, i));
    parts.push(c < 0x20 ? "\\u00" + (c < 0x10 ? "0" : "") + c.toString(16) : "\\" + s.charAt(i));
    start = i + 1;
  }
  parts.push(s.substring(start));
  return '"' + parts.join("") + '"';
}

function readBody(): ArrayBuffer {
  let data = new Uint8Array(4096);
  let length = 0;
  for (;;) {
    if (length == data.length) {
      const bigger = new Uint8Array(data.length * 2);
      bigger.set(data);
      data = bigger;
    }
    const n = process.stdin.read(data.buffer, length);
    if (n <= 0) break;
    length += n;
  }
  return data.buffer.slice(0, length);
}

// process.stdout.write makes one fd_write call; a large response needs as many as it takes.
function writeAll(text: string): void {
  const bytes = String.UTF8.encode(text);
  const iov = memory.data(16);
  let ptr = changetype<usize>(bytes);
  let left = <usize>bytes.byteLength;
  while (left > 0) {
    store<usize>(iov, ptr);
    store<usize>(iov, left, sizeof<usize>());
    if (fd_write(1, iov, 1, iov + 2 * sizeof<usize>()) != 0) return;
    const written = load<usize>(iov, 2 * sizeof<usize>());
    ptr += written;
    left -= written;
  }
}

const body = readBody();
writeAll(
  "Content-Type: application/json\n\n" +
    '{"language":"AssemblyScript"' +
    ',"method":' + json(env("REQUEST_METHOD")) +
    ',"query":' + json(env("QUERY_STRING")) +
    ',"greeting":' + json(env("HTTP_X_GREETING")) +
    ',"length":' + body.byteLength.toString() +
    ',"body":' + json(String.UTF8.decode(body)) +
    "}\n",
);
