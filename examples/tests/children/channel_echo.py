#!/usr/bin/env python3
"""A process pod's child in Python, standard library only: it serves the
pod's request channel as runtime_actor::ChannelSpec documents it.

Frames, both ways: a big-endian u32 length (of what follows), a u64 request
id, a kind byte (0: request or answer, 1: error answer) and the payload.
The channel is the socket on the descriptor named by $POD_CHANNEL_FD.

A request is answered with its payload in upper case; `fail TEXT` with the
error TEXT; `later MS TEXT` with TEXT after MS ms, while the requests that
follow are answered (so answers come out of order). End of file: exit 0.

With $SIGTERM_REPORT set, it waits for SIGTERM instead, which writes to
that file whether the channel was already at its end of file (`eof first`)
or not (`signal first`), then exits 0.
"""

import os
import signal
import socket
import struct
import sys
import threading
import time

HEADER = struct.Struct(">IQB")

channel = socket.socket(fileno=int(os.environ["POD_CHANNEL_FD"]))
# Not for the programs this child might start (the protocol's advice).
channel.set_inheritable(False)
incoming = channel.makefile("rb")
sending = threading.Lock()


def on_sigterm(_signum, _frame):
    try:
        at_end = channel.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        at_end = False
    with open(os.environ["SIGTERM_REPORT"], "w") as report:
        report.write("eof first" if at_end else "signal first")
    os._exit(0)


if "SIGTERM_REPORT" in os.environ:
    signal.signal(signal.SIGTERM, on_sigterm)


def answer(request_id, kind, payload):
    with sending:
        channel.sendall(HEADER.pack(9 + len(payload), request_id, kind) + payload)


def later(request_id, ms, text):
    threading.Timer(ms / 1000, answer, (request_id, 0, text)).start()


print("channel_echo ready", flush=True)
while True:
    length_bytes = incoming.read(4)
    if len(length_bytes) < 4:
        # Waits for the stop signal when asked to report on it. Not with
        # signal.pause(): a signal that lands between the check before it
        # and its system call would be waited for in vain.
        while "SIGTERM_REPORT" in os.environ:
            time.sleep(0.05)
        sys.exit(0)
    (length,) = struct.unpack(">I", length_bytes)
    body = incoming.read(length)
    if len(body) < length or length < 9:
        sys.exit("a truncated or short frame")
    request_id, _kind = struct.unpack(">QB", body[:9])
    payload = body[9:]
    if payload.startswith(b"fail "):
        answer(request_id, 1, payload[5:])
    elif payload.startswith(b"later "):
        _, ms, text = payload.split(b" ", 2)
        later(request_id, int(ms), text)
    else:
        answer(request_id, 0, payload.upper())
