#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets into tests/fuzz/corpus/<target>/.

Each seed is a small meaningful case in the target's input format (see the
comment at the top of each fuzz_<target>.cpp). Run after changing a format;
the files are committed. Inputs found by fuzzing (crashes turned regression
tests) live beside them under names of their own and are not touched here.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed_" + name), "wb") as f:
        f.write(data)


# --- fuzz_stream_reader: [limit code][S][script: S bytes][data] -----------------
# Commands: low 3 bits the kind, high 5 bits its argument (for a read: 0..3
# cancel after that many pieces if still waiting, else never).
FEED, REPEAT, READLINE, READUNTIL, READEXACTLY, READ, EOF, EXC = range(8)
KEEP = 4 << 3  # a read that is never cancelled
LIMIT_64K = 192  # the default limit; 224 + k: 2**k


def reader(name, limit, script, data):
    script = bytes(script)
    assert len(script) < 256
    write("stream_reader", name, bytes([limit, len(script)]) + script + data)


def seps(*ss):
    out = [len(ss) - 1]
    for s in ss:
        out += [len(s) - 1] + list(s)
    return out


reader("lines", LIMIT_64K, [READLINE | KEEP] * 4, b"one\ntwo\nthree\nfour")
reader("lines_chunked", 200, [FEED, 2, READLINE | KEEP, FEED, 1, READLINE | KEEP, 2, READLINE | KEEP],
       b"hello world\nsecond line\n")
reader("line_over_limit", 7, [FEED, 20, READLINE | KEEP, READLINE | KEEP], b"0123456789\nnext\n")
reader("readuntil_crlfcrlf", LIMIT_64K, [READUNTIL | KEEP] + seps(b"\r\n\r\n") + [READ | KEEP, 9],
       b"HEAD\r\n\r\nbody")
reader("readuntil_several", 3, [FEED, 10, READUNTIL | KEEP] + seps(b"\n", b"\r\n", b";") +
       [READUNTIL | KEEP] + seps(b"\n", b"\r\n", b";") + [READUNTIL | KEEP] + seps(b"ab", b"b"),
       b"ab\ncd\r\nef;xab")
reader("readuntil_overrun", 3, [FEED, 9, READUNTIL | KEEP] + seps(b"!") + [FEED, 0, READUNTIL | KEEP] + seps(b"!"),
       b"0123456789!")
reader("readexactly", LIMIT_64K, [READEXACTLY | KEEP, 0, 5, READEXACTLY | KEEP, 0, 0, EOF,
                                  READEXACTLY | KEEP, 0, 10], b"12345abc")
reader("read_to_eof", 130, [FEED, 3, READ | KEEP, 0, EOF], b"abcdefgh")
reader("cancelled_reads", 10, [READLINE | (1 << 3), FEED, 1, READLINE | KEEP,
                               READEXACTLY | (2 << 3), 0, 40, READ | KEEP, 0], b"partial line\nmore bytes")
reader("paused_transport", 4, [FEED, 20, READEXACTLY | KEEP, 1, 0x10, 0x00, READ | KEEP, 255], b"x" * 300)
reader("big_buffer", 224 + 21, [REPEAT, 255, READEXACTLY | KEEP, 1, 0x00, 0x01, READ | KEEP, 255,
                                REPEAT, 255, READLINE | KEEP], b"x\n")
reader("repeated_bytes", 40, [REPEAT, 3, READUNTIL | KEEP] + [0, 1, ord(";"), ord(";")] + [REPEAT, 0, FEED, 5,
                              READUNTIL | KEEP] + [0, 1, ord(";"), ord(";")], b"x;;abc")
reader("exception", 20, [FEED, 4, EXC | (31 << 3), READLINE | KEEP, READ | KEEP, 0], b"kept\n")


# --- fuzz_framed_decoder: [max_frame code][limit code][S][script][data] ----------
# Commands: low 2 bits the kind (0 feed, 1 next(), 2 read(), 3 EOF), the rest
# the argument (for a read: 0..3 cancel after that many pieces, else never).
F_FEED, F_NEXT, F_READ, F_EOF = range(4)
F_KEEP = 4 << 2
MAX_DEFAULT = 192


def frame(payload):
    return struct.pack("<I", len(payload)) + payload


def framed_seed(name, max_code, limit_code, script, data):
    script = bytes(script)
    assert len(script) < 256
    write("framed_decoder", name, bytes([max_code, limit_code, len(script)]) + script + data)


framed_seed("frames", MAX_DEFAULT, 63, [F_NEXT | F_KEEP] * 4,
            frame(b"hello") + frame(b"") + frame(b"world" * 10))
framed_seed("byte_by_byte", MAX_DEFAULT, 3, [F_NEXT | F_KEEP] * 3 + [0] * 40,
            frame(b"abc") + frame(b"0123456789"))
framed_seed("too_large", 8, 63, [F_FEED, 20, F_READ | F_KEEP, F_NEXT | F_KEEP],
            frame(b"0123456789") + frame(b"ok"))
framed_seed("truncated_payload", MAX_DEFAULT, 63, [F_NEXT | F_KEEP, F_NEXT | F_KEEP], frame(b"whole") + frame(b"cut")[:5])
framed_seed("truncated_prefix", MAX_DEFAULT, 63, [F_NEXT | F_KEEP, F_NEXT | F_KEEP], frame(b"x") + b"\x07\x00")
framed_seed("end_between_frames", MAX_DEFAULT, 63, [F_EOF, F_READ | F_KEEP], b"")
framed_seed("cancelled_in_payload", MAX_DEFAULT, 2, [F_FEED, 5, F_NEXT | (1 << 2), 2, F_NEXT | F_KEEP],
            frame(b"a payload cut by a cancel") + frame(b"next"))
framed_seed("cancelled_in_prefix", MAX_DEFAULT, 2, [F_FEED, 1, F_READ | (0 << 2), F_NEXT | F_KEEP], frame(b"p"))
framed_seed("paused_big_frame", MAX_DEFAULT, 1, [F_NEXT | F_KEEP, 40, 40, 40], frame(b"z" * 200))
framed_seed("largest_max", 255, 63, [F_NEXT | F_KEEP], b"\xff\xff\xff\xff" + b"partial")


# --- fuzz_http_request: [limits code][4 limit bytes if code < 128][S][script][data] --
HTTP_DEFAULT = [200]


def http_seed(name, limits, script, data):
    script = bytes(script)
    assert len(script) < 256
    write("http_request", name, bytes(limits) + bytes([len(script)]) + script + data)


GET = b"GET /index.html?a=1&b=%20x HTTP/1.1\r\nHost: localhost\r\nUser-Agent: seed\r\n\r\n"
POST = b"POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello=world"
http_seed("get", HTTP_DEFAULT, [], GET)
http_seed("get_in_pieces", HTTP_DEFAULT, [0, 3, 10, 1, 200], GET)
http_seed("post_body", HTTP_DEFAULT, [20, 40, 5], POST)
http_seed("pipelined", HTTP_DEFAULT, [30, 30, 30, 30, 30], GET + POST + b"\r\n" + GET)
http_seed("http10_keep_alive", HTTP_DEFAULT, [], b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
http_seed("bare_lf", HTTP_DEFAULT, [], b"GET / HTTP/1.1\nHost: x\n\n")
http_seed("no_host", HTTP_DEFAULT, [], b"GET / HTTP/1.1\r\n\r\n")
http_seed("chunked", HTTP_DEFAULT, [], b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
http_seed("two_lengths", HTTP_DEFAULT, [], b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
http_seed("version_2", HTTP_DEFAULT, [], b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
http_seed("traversal", HTTP_DEFAULT, [], b"GET /static/%2e%2E/secret HTTP/1.1\r\nHost: x\r\n\r\n")
http_seed("encoded_slash", HTTP_DEFAULT, [], b"GET /a%2Fb/%5c/c%00 HTTP/1.1\r\nHost: x\r\n\r\n")
http_seed("obs_fold", HTTP_DEFAULT, [], b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n")
http_seed("small_limits", [0, 20, 40, 3, 8], [5, 5, 5], b"GET /0123456789012345678 HTTP/1.1\r\nHost: x\r\n\r\n")
http_seed("body_over_limit", [0, 60, 100, 4, 4], [], b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde")
http_seed("header_count", [0, 60, 200, 1, 8], [], b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\n\r\n")


# --- fuzz_ws_frame: [role/mask byte (bit 0: 1 client, 0 server)][limit code][S][script][data]
def ws_frame(opcode, payload, fin=True, mask=None, length_form=None):
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126 and length_form is None:
        head = bytes([b0, m | n])
    elif n < 65536 and length_form != 127:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        head += bytes(mask)
    return head + payload


def ws_seed(name, flags, limit, script, data):
    script = bytes(script)
    assert len(script) < 256
    write("ws_frame", name, bytes([flags, limit, len(script)]) + script + data)


K = [1, 2, 3, 4]
SERVER, CLIENT, WS_1M = 0, 1, 200
ws_seed("text_masked", SERVER, WS_1M, [], ws_frame(1, b"Hello", mask=K))
ws_seed("text_pieces", SERVER, WS_1M, [0, 1, 2, 3], ws_frame(1, b"Hello", mask=K) + ws_frame(2, b"\x00\xff", mask=K))
ws_seed("fragmented", SERVER, WS_1M, [3, 3, 3],
        ws_frame(1, b"Hel", fin=False, mask=K) + ws_frame(9, b"ping", mask=K) + ws_frame(0, b"lo", mask=K))
ws_seed("client_unmasked", CLIENT, WS_1M, [], ws_frame(2, b"binary") + ws_frame(10, b"pong"))
ws_seed("close_with_reason", SERVER, WS_1M, [], ws_frame(8, struct.pack(">H", 1000) + b"bye", mask=K))
ws_seed("close_empty", CLIENT, WS_1M, [], ws_frame(8, b""))
ws_seed("close_bad_code", CLIENT, WS_1M, [], ws_frame(8, struct.pack(">H", 1005)))
ws_seed("len16", SERVER, WS_1M, [100, 100], ws_frame(2, b"x" * 300, mask=K))
ws_seed("len64_not_minimal", CLIENT, WS_1M, [], ws_frame(2, b"abc", length_form=127))
ws_seed("too_big", CLIENT, 100, [], ws_frame(2, b"y" * 101))
ws_seed("bad_utf8", CLIENT, WS_1M, [1], ws_frame(1, b"\xc3\x28") + ws_frame(1, "é".encode(), fin=False))
ws_seed("utf8_split", CLIENT, WS_1M, [2, 1, 1],
        ws_frame(1, "é€".encode()[:3], fin=False) + ws_frame(0, "é€".encode()[3:]))
ws_seed("unmasked_to_server", SERVER, WS_1M, [], ws_frame(1, b"no mask"))
ws_seed("reserved_bits", CLIENT, WS_1M, [], b"\xc1\x01a")
ws_seed("long_ping", CLIENT, WS_1M, [], ws_frame(9, b"p" * 126))
