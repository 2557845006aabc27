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
