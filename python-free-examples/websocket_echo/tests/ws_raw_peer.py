#!/usr/bin/env python3
"""websocket_echo against raw sockets: handshakes and frames no library
would send. Usage: ws_raw_peer.py PORT

HTTP: the page, 404, and each refused handshake (426, 400, 403, 405).
Sessions (8): frames split byte by byte, a character split between
fragments, a ping between fragments; then one per protocol error: an
unmasked frame, a reserved opcode, a reserved bit, invalid UTF-8 (1007), a
fragmented ping, a continuation with nothing to continue, a close frame
with a code nobody may send. Prints "raw: ... ok" per check and
"raw: all ok"; exits 1 on the first failure."""
import base64
import hashlib
import json
import os
import socket
import struct
import sys

PORT = int(sys.argv[1])
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def check(condition, what):
    if not condition:
        print(f"raw: FAILED: {what}", flush=True)
        sys.exit(1)


def connect():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    return s


def read_response_head(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return status, fields, rest


def http(request):
    """One request on a fresh connection: status, fields, body."""
    with connect() as s:
        s.sendall(request)
        status, fields, body = read_response_head(s)
        length = int(fields.get("content-length", "0"))
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, fields, body


def handshake_request(key, extra=b"", version=b"13", connection=b"Upgrade", method=b"GET"):
    return (method + b" /websocket HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: " % PORT +
            connection + b"\r\nSec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: " + version + b"\r\n" +
            extra + b"\r\n")


def frame(opcode, payload, fin=True, mask=True, rsv=0):
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class Session:
    """A WebSocket session opened by hand; reads the server's frames."""

    def __init__(self):
        self.sock = connect()
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(handshake_request(key))
        status, fields, self.buffer = read_response_head(self.sock)
        check(status == 101, f"handshake status {status}")
        expected = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        check(fields.get("sec-websocket-accept") == expected, f"Sec-WebSocket-Accept {fields}")
        check(fields.get("upgrade", "").lower() == "websocket", f"Upgrade {fields}")
        check(fields.get("connection", "").lower() == "upgrade", f"Connection {fields}")

    def _need(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def read_frame(self):
        """(fin, opcode, payload), or None at the end of the stream."""
        if not self._need(2):
            check(self.buffer == b"", "the stream ended inside a frame")
            return None
        b0, b1 = self.buffer[0], self.buffer[1]
        check(b1 & 0x80 == 0, "a server frame is masked")
        check(b0 & 0x70 == 0, "a server frame has RSV bits")
        n, at = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, at = struct.unpack("!H", self.buffer[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, at = struct.unpack("!Q", self.buffer[2:10])[0], 10
        check(self._need(at + n), "the stream ended inside a frame")
        payload = self.buffer[at:at + n]
        self.buffer = self.buffer[at + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def expect_close(self, code):
        f = self.read_frame()
        check(f is not None and f[1] == 8, f"expected a close frame, got {f}")
        got = struct.unpack("!H", f[2][:2])[0]
        check(got == code, f"close code {got}, wanted {code} ({f[2][2:]!r})")
        return f[2][2:].decode()

    def expect_end(self):
        check(self.read_frame() is None, "more after the close frame")
        self.sock.close()


def page_and_http_errors():
    status, fields, body = http(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    check(status == 200 and b'<p id="log">' in body and fields["content-type"].startswith("text/html"), "the page")
    status, _, _ = http(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    check(status == 404, f"unknown path: {status}")
    status, _, _ = http(b"GET / HTTP/1.1\nHost: x\n\n")
    check(status == 400, f"bare LF: {status}")
    print("raw: page, 404 and malformed HTTP ok", flush=True)


def refused_handshakes():
    key = base64.b64encode(os.urandom(16))
    status, fields, body = http(handshake_request(key, version=b"8"))
    check(status == 426 and fields.get("sec-websocket-version") == "13", f"version 8: {status} {fields}")
    status, _, body = http(handshake_request(b"c2hvcnQ="))
    check(status == 400 and b"16 random bytes" in body, f"short key: {status} {body}")
    status, _, body = http(handshake_request(key, connection=b"keep-alive"))
    check(status == 400 and b"Connection: Upgrade" in body, f"no Connection: Upgrade: {status} {body}")
    status, _, body = http(handshake_request(key, extra=b"Origin: http://evil.example\r\n"))
    check(status == 403, f"foreign origin: {status} {body}")
    status, fields, _ = http(handshake_request(key, method=b"POST"))
    check(status == 405 and fields.get("allow") == "GET", f"POST: {status}")
    print("raw: refused handshakes (426, 400, 403, 405) ok", flush=True)


def good_session():
    s = Session()
    message = json.dumps({"output": "€uro"}, ensure_ascii=False).encode()
    euro = message.index("€".encode())
    # A text message in three fragments, the euro sign cut after its first
    # byte, a ping between fragments, everything written a byte at a time.
    wire = (frame(1, message[:euro + 1], fin=False) + frame(9, b"ping!") +
            frame(0, message[euro + 1:euro + 2], fin=False) + frame(0, message[euro + 2:]))
    for i in range(len(wire)):
        s.sock.send(wire[i:i + 1])
    check(s.read_frame() == (True, 10, b"ping!"), "the pong")
    fin, opcode, payload = s.read_frame()
    check(opcode == 1 and json.loads(payload)["echo"] == {"output": "€uro"}, f"the reply {payload!r}")
    big = json.dumps({"output": "x" * 300}).encode()  # a 16-bit length each way
    s.sock.sendall(frame(1, big))
    fin, opcode, payload = s.read_frame()
    check(opcode == 1 and json.loads(payload)["echo"] == {"output": "x" * 300}, "the 300-byte reply")
    s.sock.sendall(frame(8, struct.pack("!H", 1000) + b"bye"))
    s.expect_close(1000)
    s.expect_end()
    print("raw: byte-by-byte frames, split character, ping between fragments ok", flush=True)


def protocol_errors():
    cases = [
        ("unmasked frame", frame(1, b'{"a": 1}', mask=False), 1002),
        ("reserved opcode", frame(3, b""), 1002),
        ("reserved bit", frame(1, b'{"a": 1}', rsv=0x40), 1002),
        ("invalid UTF-8", frame(1, b'{"a": "\xc0\xaf"}'), 1007),
        ("fragmented ping", frame(9, b"", fin=False), 1002),
        ("continuation first", frame(0, b"x"), 1002),
        ("close code 1006", frame(8, struct.pack("!H", 1006)), 1002),
    ]
    for what, wire, code in cases:
        s = Session()
        s.sock.sendall(wire)
        reason = s.expect_close(code)
        s.expect_end()
        print(f"raw: {what}: {code} ok ({reason})", flush=True)


page_and_http_errors()
refused_handshakes()
good_session()
protocol_errors()
print("raw: all ok", flush=True)
