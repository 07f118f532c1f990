// A wasi:http echo in JavaScript (componentize-js / StarlingMonkey, fetch-event style): the
// request's method, path and headers come back as x-method, x-path and x-echo-<name> response
// headers, its body as the response body. /status/NNN answers with status NNN.
addEventListener("fetch", (event) => event.respondWith(echo(event.request)));

async function echo(request) {
  const url = new URL(request.url);
  const path = url.pathname + url.search;
  const headers = new Headers({ "x-method": request.method, "x-path": path });
  for (const [name, value] of request.headers) headers.append("x-echo-" + name, value);
  const body = new Uint8Array(await request.arrayBuffer());
  const status = path.startsWith("/status/") ? Number(path.slice(8)) : 200;
  return new Response(body, { status, headers });
}
