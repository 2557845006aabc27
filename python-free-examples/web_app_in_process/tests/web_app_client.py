#!/usr/bin/env python3
"""Drives web_app_in_process over real sockets as an independent client
(Python's http.client, urllib and raw sockets: no qiloop, no httpkit).

Usage: web_app_client.py SERVER [server options...]

Scenario 1: routes, keep-alive, HEAD, 404/405, malformed requests (400,
505, 501), oversize ones (414, 431, 413), path traversal (400), then /bye
while an idle keep-alive connection is open: the server must answer,
close that connection, exit with status 0 and report nothing on stderr
through qiloop's logging (lines starting with "qiloop:").
Scenario 2: SIGTERM while a client is connected: the same clean exit.
Scenario 3: SIGTERM while a client pipelines requests and never reads the
responses: the same clean exit, within the same bound.
Every wait is bounded; the first failed check ends the run with status 1.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

WAIT = 10.0  # seconds, for anything the server should do promptly


def fail(message):
    print("FAIL: " + message, flush=True)
    raise SystemExit(1)


def check(condition, message):
    if not condition:
        fail(message)
    print("ok: " + message, flush=True)


class Server:
    """The program under test, on a free port, its stderr in a file."""

    def __init__(self, argv):
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv + ["--port", "0", "--tick", "50"], stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)
        self.lines = []
        first = self._readline()
        prefix = "web_app_in_process: serving http://127.0.0.1:"
        if not first.startswith(prefix):
            self.kill()
            fail("the first line should say where it serves, not %r" % first)
        self.port = int(first[len(prefix):].split("/")[0])
        self.url = "http://127.0.0.1:%d/" % self.port

    def _readline(self):
        got = []
        reader = threading.Thread(target=lambda: got.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(WAIT)
        if not got:
            self.kill()
            fail("no line from the server within %d s" % WAIT)
        self.lines.append(got[0])
        return got[0]

    def wait_exit(self):
        try:
            out, _ = self.proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.kill()
            fail("the server did not exit within %d s" % WAIT)
        self.lines += out.splitlines(keepends=True)
        self.stderr.seek(0)
        err = self.stderr.read().decode(errors="replace")
        return self.proc.returncode, "".join(self.lines), err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def raw(port, data, read_all=True):
    """Sends bytes on a connection of its own; returns the status and everything read until EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        s.sendall(data)
        reply = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
            if not read_all:
                break
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else None
    return status, reply


def get(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response, response.read()


def count(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/count" % port, timeout=WAIT) as reply:
        return json.loads(reply.read())["count"]


def scenario_routes_and_bye(argv):
    server = Server(argv)
    port = server.port
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        response, body = get(conn, "GET", "/")
        check(response.status == 200 and response.getheader("Content-Type").startswith("text/html"),
              "GET / is an HTML page")
        check(b'id="count"' in body and b'href="/bye"' in body and b"fetch('/count'" in body,
              "the page has the live counter, its polling script and the quit() link")
        response, body = get(conn, "GET", "/count")  # the same connection: keep-alive
        check(response.status == 200 and response.getheader("Connection") == "keep-alive",
              "a second request on the same connection (keep-alive)")
        state = json.loads(body)
        check(set(state) == {"count", "requests"} and state["requests"] >= 1, "GET /count is JSON: %s" % state)
        response, body = get(conn, "HEAD", "/")
        check(response.status == 200 and body == b"" and int(response.getheader("Content-Length")) > 0,
              "HEAD / has the length and no body")
        response, body = get(conn, "GET", "/nope")
        check(response.status == 404, "GET /nope is 404")
        response, body = get(conn, "POST", "/count", body=b"x")
        check(response.status == 405 and response.getheader("Allow") == "GET, HEAD", "POST /count is 405, Allow: GET, HEAD")
        conn.close()

        first = count(port)
        deadline = time.monotonic() + WAIT
        while count(port) <= first + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        check(count(port) > first + 2, "the counter advances (urllib, polling)")
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/missing" % port, timeout=WAIT)
            fail("urllib got no error for /missing")
        except urllib.error.HTTPError as e:
            check(e.code == 404, "urllib sees 404 for /missing")

        malformed = {
            b"GET / HTTP/1.1\nHost: x\n\n": 400,
            b"GARBAGE\r\n\r\n": 400,
            b"GET / HTTP/1.1\r\n\r\n": 400,  # no Host
            b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n": 400,
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n": 400,
            b"GET / HTTP/2.0\r\nHost: x\r\n\r\n": 505,
            b"POST /count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n": 501,
            b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab": 400,
        }
        for request, want in malformed.items():
            status, reply = raw(port, request)
            check(status == want and b"Connection: close" in reply, "%r -> %d, connection closed" % (request[:40], want))

        status, _ = raw(port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        check(status == 414, "a 9000-byte request line -> 414")
        status, _ = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n")
        check(status == 431, "a 17000-byte header field -> 431")
        many = b"".join(b"X-%d: v\r\n" % i for i in range(101))
        status, _ = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        check(status == 431, "101 header fields -> 431")
        status, _ = raw(port, b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n", read_all=True)
        check(status == 413, "a 2 MB Content-Length -> 413 before any body byte is sent")

        for target in [b"/../etc/passwd", b"/%2e%2e/etc/passwd", b"/count/..%2f..%2fetc%2fpasswd", b"/%2E%2e/",
                       b"/a%5c..%5cb", b"/%00", b"/%zz", b"http://127.0.0.1/"]:
            status, reply = raw(port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            check(status == 400 and b"root:" not in reply, "GET %s -> 400" % target.decode())
        status, reply = raw(port, b"GET /%252e%252e/etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        check(status == 404 and b"root:" not in reply, "GET /%252e%252e/etc/passwd -> 404 (decoded once: the name %2e%2e)")

        # A pipelined pair in one write: both answered, in order.
        status, reply = raw(port, b"GET /count HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        check(reply.count(b"HTTP/1.1 200 OK") == 1 and reply.index(b"200 OK") < reply.index(b"404 Not Found"),
              "two pipelined requests answered in order")

        idle = socket.create_connection(("127.0.0.1", port), timeout=WAIT)  # keep-alive, idle at /bye
        idle.sendall(b"GET /count HTTP/1.1\r\nHost: x\r\n\r\n")
        first_reply = idle.recv(65536)
        check(first_reply.startswith(b"HTTP/1.1 200 OK"), "an idle keep-alive connection is open")

        bye = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        response, body = get(bye, "GET", "/bye")
        check(response.status == 200 and b"goodbye" in body and response.getheader("Connection") == "close",
              "GET /bye says goodbye and closes")
        rest = idle.recv(65536)
        check(rest == b"", "the idle connection is closed by the server")
        idle.close()

        rc, out, err = server.wait_exit()
        check(rc == 0, "the program exits with status 0 after /bye (status %s)" % rc)
        check("web_app_in_process: stopping on /bye" in out, "it says it stops on /bye")
        check(not any(line.startswith("qiloop:") for line in err.splitlines()),
              "qiloop reports nothing on stderr (no leaked task, no unretrieved exception)")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=WAIT).close()
            fail("the port still accepts connections after the exit")
        except ConnectionRefusedError:
            check(True, "the port is closed")
    finally:
        server.kill()


def scenario_sigterm(argv):
    server = Server(argv)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT)
        response, _ = get(conn, "GET", "/count")
        check(response.status == 200, "a client is connected (keep-alive)")
        server.proc.send_signal(signal.SIGTERM)
        rc, out, err = server.wait_exit()
        check(rc == 0 and "stopping on SIGTERM" in out, "SIGTERM stops it cleanly (status %s)" % rc)
        check(not any(line.startswith("qiloop:") for line in err.splitlines()), "qiloop reports nothing on stderr")
        conn.close()
    finally:
        server.kill()


def scenario_sigterm_with_a_client_that_never_reads(argv):
    """A client pipelines requests for the page and reads nothing: the
    server's responses wait in drain() with its write buffer full. SIGTERM
    must still stop it promptly (that connection aborted)."""
    server = Server(argv)
    try:
        flood = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
        flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        flood.setblocking(False)
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        pending, sent, stalled_since = b"", 0, None
        deadline = time.monotonic() + WAIT
        # Send until the server stops taking requests for half a second: its
        # responses are stuck behind a client that does not read.
        while time.monotonic() < deadline:
            if not pending:
                pending = request * 64
            try:
                n = flood.send(pending)
                sent += n
                pending = pending[n:]
                stalled_since = None
            except BlockingIOError:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 0.5:
                    break
                time.sleep(0.02)
        check(stalled_since is not None, "the server stopped taking requests from a client that reads nothing "
              "(%d bytes sent)" % sent)
        server.proc.send_signal(signal.SIGTERM)
        rc, out, err = server.wait_exit()
        check(rc == 0 and "stopping on SIGTERM" in out, "SIGTERM stops it though a client never reads (status %s)" % rc)
        check("aborting the connections whose clients do not take their data" in out,
              "the connection of the client that never reads is aborted")
        check(not any(line.startswith("qiloop:") for line in err.splitlines()), "qiloop reports nothing on stderr")
        flood.close()
    finally:
        server.kill()


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    argv = sys.argv[1:]
    scenario_routes_and_bye(argv)
    scenario_sigterm(argv)
    scenario_sigterm_with_a_client_that_never_reads(argv)
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
