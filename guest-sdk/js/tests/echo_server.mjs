/**
 * A local HTTP server for e2e.mjs (a port of
 * guest-sdk/python/tests/echo_server.py): answers every request with a
 * JSON echo of it (method, path, headers, body), `/status/N` with status N.
 *
 * Usage: node echo_server.mjs PORT_FILE (binds 127.0.0.1 on a free port,
 * writes the port to PORT_FILE, serves until killed).
 */

import { writeFileSync } from "node:fs";
import http from "node:http";

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const m = /^\/status\/(\d+)$/.exec(req.url ?? "");
    const payload = Buffer.from(
      JSON.stringify({
        method: req.method,
        path: req.url,
        headers: req.headers,
        body: body.toString("utf8"),
        body_hex: body.toString("hex"),
      }),
    );
    res.writeHead(m ? Number(m[1]) : 200, {
      "content-type": "application/json",
      "x-echo": "1",
      "content-length": payload.length,
    });
    res.end(payload);
  });
});

server.listen(0, "127.0.0.1", () => {
  writeFileSync(process.argv[2], String(server.address().port));
});
