// A wasi:http handler in JavaScript (componentize-js: StarlingMonkey's fetch event): the query
// string, the X-Greeting header and the request body, as JSON.
addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const body = new Uint8Array(await request.arrayBuffer());
  const reply = {
    language: "JavaScript",
    method: request.method,
    query: new URL(request.url).search.slice(1),
    greeting: request.headers.get("x-greeting") ?? "",
    length: body.length,
    body: new TextDecoder().decode(body),
  };
  return new Response(JSON.stringify(reply) + "\n", {
    headers: { "content-type": "application/json" },
  });
}
