#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""xchg: request/response workloads that exercise the exchange rules (Python
standard library only: sockets, ssl on OpenSSL, http.server and http.client).

  xchg.py server --listen ADDR:PORT --ready-file F [--tls CERT KEY] [--https]
                 [--cpus A,B]
  xchg.py client --connect ADDR:PORT [--conns N] [--exchanges E] [--req-size N]
                 [--resp-size N] [--delay-ms D] [--last ACTION] [--goodbye plain|more]
                 [--linger-ms L]
                 [--pipeline-gaps-us G,G,...] [--tls] [--nodelay 0|1] [--cpus A,B]
  xchg.py https-client --connect ADDR:PORT --conns N --requests R [--short]
  xchg.py connect --connect ADDR:PORT --attempts N

Framing (--https aside): a request is a 20-byte header, then body_len bytes:

    4s magic "XCHG" | u32 body_len | u32 resp_len | u32 delay_ms | u8 action | 3x

and the server, after delay_ms, does what `action` says:

    answer   send resp_len bytes
    close    close the connection without answering (nothing left unread: a FIN)
    reset    send resp_len bytes, then close with SO_LINGER 0 (a RST)
             (the client asks for none: the request is reset unanswered)
    silent   never answer (keep reading until the client closes)
    goodbye  nothing but its own close, at once (PostgreSQL's Terminate): the
             client closes too, right after or (--linger-ms) later

The server reads exactly one message at a time and answers it before reading
the next. Every role prints one JSON summary line on stdout (the server at
SIGTERM) with what send() and recv() returned, so that tests can check what an
observer saw against it.

client: --conns connections one after another, each doing --exchanges
exchanges (--last: the action of the last one; --goodbye: then a goodbye
message and close, `more` sending it with MSG_MORE so that it leaves in the
same segment as the FIN; --linger-ms: L ms between the goodbye and the close,
so that the server's FIN comes first). --pipeline-gaps-us: instead, per connection and per
gap G, two messages (the second G microseconds after the first) before reading
both answers. --nodelay sets TCP_NODELAY (default 1).

--cpus A,B: each connection runs on CPU A until its end, which runs on CPU B:
the client moves before it reads the last answer, the server once it has read
the client's FIN. The kernel then sees the connection's end on another CPU
than its earlier exchanges.

https-client: http.client over TLS (TCP_NODELAY, as http.client sets it);
--short: one request per connection (Connection: close), else --requests
keep-alive requests per connection.

connect: --attempts connect() calls that are expected to fail; reports the
errno names.
"""

import argparse
import errno
import http.client
import http.server
import json
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time

HDR = struct.Struct(">4sIIIB3x")
MAGIC = b"XCHG"
ACTIONS = {"answer": 0, "close": 1, "reset": 2, "silent": 3, "goodbye": 4}
ANSWER, CLOSE, RESET, SILENT, GOODBYE = range(5)


def split_hostport(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def recv_exact(sock, n, stats):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 16))
        if not chunk:
            return None if not buf else bytes(buf)
        stats["bytes_received"] += len(chunk)
        buf += chunk
    return bytes(buf)


def on_cpu(cpus, i):
    """Runs the calling thread on CPU cpus[i] (--cpus); nothing without it."""
    if cpus:
        os.sched_setaffinity(0, {cpus[i]})


def send_all(sock, data, stats, flags=0):
    view = memoryview(data)
    while view:
        n = sock.send(view, flags)
        stats["bytes_sent"] += n
        view = view[n:]


# ---- server ---------------------------------------------------------------------------


class Server:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.cpus = args.cpus
        self.stats = {"conns": 0, "messages": 0, "bytes_sent": 0, "bytes_received": 0,
                      "actions": {k: 0 for k in ACTIONS}}
        self.tls = None
        if args.tls:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.minimum_version = ssl.TLSVersion.TLSv1_3
            self.tls.load_cert_chain(args.tls[0], args.tls[1])
        host, port = split_hostport(args.listen)
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.lsock = socket.socket(fam, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            self.lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.lsock.bind((host, port))
        self.lsock.listen(128)

    def serve(self):
        while True:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        st = {"bytes_sent": 0, "bytes_received": 0, "messages": 0}
        acts = []
        on_cpu(self.cpus, 0)
        try:
            if self.tls:
                conn = self.tls.wrap_socket(conn, server_side=True)
            while True:
                hdr = recv_exact(conn, HDR.size, st)
                if not hdr or len(hdr) < HDR.size:
                    on_cpu(self.cpus, 1)
                    break
                magic, body_len, resp_len, delay_ms, action = HDR.unpack(hdr)
                if magic != MAGIC:
                    raise ValueError("bad magic %r" % magic)
                if body_len and recv_exact(conn, body_len, st) is None:
                    break
                st["messages"] += 1
                acts.append(action)
                if delay_ms:
                    time.sleep(delay_ms / 1000)
                if action == ANSWER:
                    send_all(conn, bytes(resp_len), st)
                elif action == CLOSE:
                    break
                elif action == RESET:
                    if resp_len:
                        send_all(conn, bytes(resp_len), st)
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                    break
                elif action == SILENT:
                    while recv_exact(conn, 1 << 16, st):
                        pass
                    break
                elif action == GOODBYE:
                    break
        except (OSError, ValueError) as e:
            sys.stderr.write("xchg server: %s\n" % e)
        finally:
            conn.close()
            names = {v: k for k, v in ACTIONS.items()}
            with self.lock:
                self.stats["conns"] += 1
                self.stats["messages"] += st["messages"]
                self.stats["bytes_sent"] += st["bytes_sent"]
                self.stats["bytes_received"] += st["bytes_received"]
                for a in acts:
                    self.stats["actions"][names.get(a, "answer")] += 1


class HTTPSHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"x" * 200
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.requests += 1

    def log_message(self, fmt, *args):
        pass


def https_server(args, ready):
    host, port = split_hostport(args.listen)

    class TLSServer(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True
        requests = 0

        def server_bind(self):
            if self.address_family == socket.AF_INET6:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(args.tls[0], args.tls[1])
    srv = TLSServer((host, port), HTTPSHandler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)

    def stop(*_):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    ready(srv.socket.getsockname()[1])
    srv.serve_forever()
    print(json.dumps({"requests": srv.requests}), flush=True)


def server_main(args):
    def ready(port):
        with open(args.ready_file + ".tmp", "w") as f:
            f.write(str(port))
        os.rename(args.ready_file + ".tmp", args.ready_file)

    if args.https:
        return https_server(args, ready)
    srv = Server(args)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=srv.serve, daemon=True).start()
    ready(srv.lsock.getsockname()[1])
    stop.wait()
    # Connections still open finish within a short grace.
    time.sleep(0.2)
    with srv.lock:
        print(json.dumps(srv.stats), flush=True)


# ---- clients --------------------------------------------------------------------------


def client_socket(args, host, port):
    sock = socket.create_connection((host, port), timeout=60)
    if args.nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(sock)
    return sock


def message(body_len, resp_len, delay_ms=0, action=ANSWER):
    return HDR.pack(MAGIC, body_len, resp_len, delay_ms, action) + bytes(body_len)


def client_main(args):
    host, port = split_hostport(args.connect)
    st = {"conns": 0, "exchanges": 0, "bytes_sent": 0, "bytes_received": 0, "errors": [],
          "timings": []}
    gaps = [int(g) for g in args.pipeline_gaps_us.split(",")] if args.pipeline_gaps_us else []
    last = ACTIONS[args.last]
    for _ in range(args.conns):
        on_cpu(args.cpus, 0)
        sock = client_socket(args, host, port)
        st["conns"] += 1
        try:
            if gaps:
                for gap in gaps:
                    send_all(sock, message(args.req_size, args.resp_size), st)
                    if gap:
                        time.sleep(gap / 1e6)
                    send_all(sock, message(args.req_size, args.resp_size), st)
                    for _ in range(2):
                        if recv_exact(sock, args.resp_size, st) is None:
                            raise OSError("connection closed early")
                    st["exchanges"] += 2
            for i in range(args.exchanges):
                action = last if i == args.exchanges - 1 else ANSWER
                want = args.resp_size if action == ANSWER else 0
                t0 = time.monotonic()
                send_all(sock, message(args.req_size, want, args.delay_ms, action), st)
                if i == args.exchanges - 1:
                    on_cpu(args.cpus, 1)
                if action == ANSWER:
                    got = recv_exact(sock, want, st)
                    if got is None or len(got) != want:
                        raise OSError("short answer")
                else:
                    # The server's end: EOF, a reset, or (silent) our own give-up.
                    sock.settimeout(args.wait_s)
                    try:
                        while recv_exact(sock, 1 << 16, st):
                            pass
                    except (ConnectionResetError, socket.timeout) as e:
                        st["errors"].append(type(e).__name__)
                st["timings"].append(round(time.monotonic() - t0, 4))
                st["exchanges"] += 1
            if args.goodbye:
                flags = socket.MSG_MORE if args.goodbye == "more" else 0
                send_all(sock, message(0, 0, 0, GOODBYE), st, flags)
                if args.linger_ms:
                    time.sleep(args.linger_ms / 1000)
        except OSError as e:
            st["errors"].append(str(e))
        finally:
            sock.close()
        if args.pause_ms:
            time.sleep(args.pause_ms / 1000)
    print(json.dumps(st), flush=True)
    return 0 if not st["errors"] or args.last != "answer" else 1


def https_client_main(args):
    host, port = split_hostport(args.connect)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    st = {"conns": 0, "requests": 0, "errors": [], "tls": None}
    per_conn = 1 if args.short else args.requests
    for _ in range(args.conns):
        conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=30)
        st["conns"] += 1
        try:
            for _ in range(per_conn):
                hdrs = {"Connection": "close"} if args.short else {}
                conn.request("GET", "/", headers=hdrs)
                resp = conn.getresponse()
                if resp.status != 200 or len(resp.read()) != 200:
                    raise OSError("bad response %d" % resp.status)
                st["requests"] += 1
                st["tls"] = conn.sock.version()
        except OSError as e:
            st["errors"].append(str(e))
        finally:
            conn.close()
        if args.pause_ms:
            time.sleep(args.pause_ms / 1000)
    print(json.dumps(st), flush=True)
    return 1 if st["errors"] else 0


def connect_main(args):
    host, port = split_hostport(args.connect)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    out = {"attempts": 0, "errors": {}, "connected": 0, "elapsed_s": []}
    for _ in range(args.attempts):
        sock = socket.socket(fam, socket.SOCK_STREAM)
        # Blocking: the kernel's own SYN retries bound it (tcp_syn_retries).
        t0 = time.monotonic()
        out["attempts"] += 1
        try:
            sock.connect((host, port))
            out["connected"] += 1
        except OSError as e:
            name = errno.errorcode.get(e.errno, "timeout" if isinstance(e, socket.timeout)
                                       else str(e))
            out["errors"][name] = out["errors"].get(name, 0) + 1
        out["elapsed_s"].append(round(time.monotonic() - t0, 3))
        sock.close()
        if args.pause_ms:
            time.sleep(args.pause_ms / 1000)
    print(json.dumps(out), flush=True)
    return 0


def cpu_pair(v):
    cpus = [int(x) for x in v.split(",")]
    if len(cpus) != 2:
        raise argparse.ArgumentTypeError("two CPUs, A,B")
    return cpus


def main():
    p = argparse.ArgumentParser(prog="xchg")
    sub = p.add_subparsers(dest="role", required=True)
    s = sub.add_parser("server")
    s.add_argument("--listen", required=True)
    s.add_argument("--ready-file", required=True)
    s.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    s.add_argument("--https", action="store_true")
    s.add_argument("--cpus", type=cpu_pair)
    c = sub.add_parser("client")
    c.add_argument("--connect", required=True)
    c.add_argument("--conns", type=int, default=1)
    c.add_argument("--exchanges", type=int, default=1)
    c.add_argument("--req-size", type=int, default=100)
    c.add_argument("--resp-size", type=int, default=200)
    c.add_argument("--delay-ms", type=int, default=0)
    c.add_argument("--last", choices=sorted(ACTIONS), default="answer")
    c.add_argument("--wait-s", type=float, default=30)
    c.add_argument("--goodbye", choices=("plain", "more"))
    c.add_argument("--linger-ms", type=int, default=0)
    c.add_argument("--pipeline-gaps-us", default="")
    c.add_argument("--tls", action="store_true")
    c.add_argument("--nodelay", type=int, default=1)
    c.add_argument("--pause-ms", type=int, default=0)
    c.add_argument("--cpus", type=cpu_pair)
    h = sub.add_parser("https-client")
    h.add_argument("--connect", required=True)
    h.add_argument("--conns", type=int, default=1)
    h.add_argument("--requests", type=int, default=1)
    h.add_argument("--short", action="store_true")
    h.add_argument("--pause-ms", type=int, default=0)
    k = sub.add_parser("connect")
    k.add_argument("--connect", required=True)
    k.add_argument("--attempts", type=int, default=1)
    k.add_argument("--pause-ms", type=int, default=0)
    args = p.parse_args()
    if args.role == "server":
        return server_main(args)
    if args.role == "client":
        return client_main(args)
    if args.role == "https-client":
        return https_client_main(args)
    return connect_main(args)


if __name__ == "__main__":
    sys.exit(main() or 0)
