"""A long-running server for the history file's size (scripts/bench-history):
CPython's http.server (a thread per connection) answering JSON built from an
in-memory store with an LRU cache of rendered pages, and a client thread
requesting pages in a loop, for SECONDS (argv[1], default 180). Memory
churns (every request builds and drops its page) and drifts (the store
grows, the cache evicts): what a service does all day. Prints the number of
requests served."""
import http.client
import http.server
import json
import random
import sys
import threading
import time
from collections import OrderedDict

STORE = {}
CACHE = OrderedDict()
CACHE_SIZE = 500
LOCK = threading.Lock()


def page(key):
    with LOCK:
        hit = CACHE.get(key)
        if hit is not None:
            CACHE.move_to_end(key)
            return hit
    rows = STORE.setdefault(key % 5000, [])
    rows.append({"id": len(rows), "name": f"item-{key}-{len(rows)}", "tags": [str(key)] * 3})
    if len(rows) > 40:
        del rows[:20]
    body = json.dumps({"key": key, "rows": rows, "pad": "x" * (key % 2000)}).encode()
    with LOCK:
        CACHE[key] = body
        if len(CACHE) > CACHE_SIZE:
            CACHE.popitem(last=False)
    return body


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self):
        body = page(int(self.path.strip("/") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 180.0
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    rng = random.Random(1)
    end = time.monotonic() + secs
    n = 0
    conn = None
    while time.monotonic() < end:
        if conn is None or n % 100 == 0:
            # A new connection now and then: a new handler thread.
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1])
        conn.request("GET", f"/{int(rng.paretovariate(1.2) * 10) % 20000}")
        conn.getresponse().read()
        n += 1
    conn.close()
    srv.shutdown()
    print(f"requests={n}")


if __name__ == "__main__":
    main()
