"""A stand-in for Solar Protocol's outside world, for bench.v1_clients: the DNS gateway and solarprotocol.net.

- HTTPS (``--tls-port``, a self-signed certificate for server.solarpowerforartists.com): ``?myip`` answers the
  caller's address, as dns-gateway/index.php does; ``?ip=X&key=K`` is a DNS update: recorded, answered
  ``updated solarprotocol.net to X`` for the right key, else ``api key not verified`` (index.php's words).
- HTTP (``--http-port``, where the bench's /etc/hosts sends solarprotocol.net): every request is recorded and
  answered 404, so a v1 client sees a network name that belongs to no node.

Every request becomes one JSON line in ``--record``: time, port, method, path, query, remote address, body.
Usage: python -m bench.v1_gateway --record FILE --cert PEM --key PEM --dns-key K [--address 0.0.0.0]
"""

from __future__ import annotations

import argparse
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()


def handler(record: str, dns_key: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def note(self, body: bytes) -> None:
            url = urlsplit(self.path)
            line = {
                "time": time.time(),
                "port": self.connection.getsockname()[1],
                "method": self.command,
                "path": url.path,
                "query": url.query,
                "remote": self.client_address[0],
                "host": self.headers.get("Host", ""),
                "body": body.decode("utf-8", "replace"),
            }
            with LOCK, open(record, "a", encoding="utf-8") as out:
                out.write(json.dumps(line) + "\n")

        def reply(self, status: int, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self.note(b"")
            if not isinstance(self.connection, ssl.SSLSocket):
                self.reply(404, "not a node: solarprotocol.net in this bench")
                return
            query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
            if "ip" in query:
                ok = query.get("key", [""])[0] == dns_key
                self.reply(200, f"updated solarprotocol.net to {query['ip'][0]}" if ok else "api key not verified")
            elif "myip" in query:
                self.reply(200, self.client_address[0])
            else:
                self.reply(200, "no match")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.note(self.rfile.read(min(length, 1 << 20)))
            self.reply(404, "not a node: solarprotocol.net in this bench")

    return Handler


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("--record", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--dns-key", required=True)
    p.add_argument("--address", default="0.0.0.0")
    p.add_argument("--tls-port", type=int, default=443)
    p.add_argument("--http-port", type=int, default=80)
    args = p.parse_args()
    kind = handler(args.record, args.dns_key)
    tls = ThreadingHTTPServer((args.address, args.tls_port), kind)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    tls.socket = context.wrap_socket(tls.socket, server_side=True)
    plain = ThreadingHTTPServer((args.address, args.http_port), kind)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    print(f"gateway on {args.address}:{args.tls_port} (TLS) and :{args.http_port}", flush=True)
    tls.serve_forever()


if __name__ == "__main__":
    main()
