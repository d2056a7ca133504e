#!/usr/bin/env python3
"""Small SMTP load client for the end-to-end benchmark (stdlib only).

Two modes, used where Postfix's smtp-source does not fit:

  smtpload.py list HOST PORT SENDER TEMPLATE COUNT SIZE [DOMAINS]
      One message of SIZE bytes to COUNT recipients, TEMPLATE formatted with {i}, the
      recipient number, and {d}, that number modulo DOMAINS (default 1), e.g.
      'user{i}@example.org' or 'r{i}@d{d}.test'. MAIL, every RCPT and DATA are sent
      pipelined (RFC 2920) when the server offers PIPELINING, so the client costs the
      server as little as possible. Prints 'accepted RCPTS SECONDS START END': the
      time until the 250 after the final dot, and the Unix times of the connect and of
      that 250 (so the interpreter's start-up is not counted); exits non-zero unless
      every recipient was accepted.

  smtpload.py idle HOST PORT COUNT HOLD_SECONDS READY_FILE
      Opens COUNT SMTP sessions, reads each 220 greeting and sends EHLO (so every
      session is established and past its greeting), writes 'ready N' to READY_FILE
      (N < COUNT when the server answered a greeting with 421, its session limit),
      then holds them open and idle until HOLD_SECONDS pass or READY_FILE is removed,
      and closes them. Bounded by HOLD_SECONDS whatever happens.

Waiters, cheap enough to poll every 10 ms without disturbing the server under test; each
prints the wall-clock time (Unix seconds) the condition became true, or exits 1 once
TIMEOUT seconds pass. With E2E_GO=PATH in the environment a waiter starts polling only
once PATH exists (so it can be started, and its interpreter loaded, before the load):

  smtpload.py wait-files TIMEOUT COUNT DIRLIST   files in the directories named one per
                                                 line in DIRLIST reach COUNT in total
  smtpload.py wait-lines TIMEOUT FILE TEXT COUNT lines of FILE containing TEXT reach COUNT
  smtpload.py wait-empty TIMEOUT DIR...          no regular file left under any DIR
"""

import os
import socket
import sys
import time


def read_reply(f):
    """Reads one (possibly multi-line) SMTP reply; returns (code, text lines)."""
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("connection closed by server")
        lines.append(line.decode("latin-1").rstrip("\r\n"))
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), lines


def body(size):
    head = b"From: bench@example.com\r\nTo: list@example.org\r\nSubject: e2e benchmark\r\n\r\n"
    line = b"The quick brown fox jumps over the lazy dog, again and again.\r\n"
    out = bytearray(head)
    while len(out) < size:
        out += line
    return bytes(out[:size - 2]) + b"\r\n"


def mode_list(host, port, sender, template, count, size, domains="1"):
    count, size, domains = int(count), int(size), int(domains)
    start_wall = time.time()
    start = time.monotonic()
    s = socket.create_connection((host, int(port)), timeout=600)
    f = s.makefile("rb")
    code, _ = read_reply(f)
    if code != 220:
        sys.exit(f"greeting {code}")
    s.sendall(b"EHLO load.example.com\r\n")
    code, lines = read_reply(f)
    if code != 250:
        sys.exit(f"EHLO {code}")
    pipelining = any(line[4:].upper().startswith("PIPELINING") for line in lines)
    cmds = [f"MAIL FROM:<{sender}>\r\n".encode()]
    cmds += [f"RCPT TO:<{template.format(i=i, d=i % domains)}>\r\n".encode() for i in range(count)]
    cmds.append(b"DATA\r\n")
    accepted = 0
    if pipelining:
        s.sendall(b"".join(cmds))
        replies = [read_reply(f)[0] for _ in cmds]
    else:
        replies = []
        for c in cmds:
            s.sendall(c)
            replies.append(read_reply(f)[0])
    accepted = sum(1 for r in replies[1:-1] if r == 250)
    if replies[0] != 250 or replies[-1] != 354:
        sys.exit(f"MAIL {replies[0]} DATA {replies[-1]}")
    s.sendall(body(size) + b".\r\n")
    code, lines = read_reply(f)
    elapsed = time.monotonic() - start
    s.sendall(b"QUIT\r\n")
    try:
        read_reply(f)
    except ConnectionError:
        pass
    s.close()
    if code != 250:
        sys.exit(f"end of data {code} {lines}")
    print(f"accepted {accepted} {elapsed:.6f} {start_wall:.6f} {start_wall + elapsed:.6f}")
    if accepted != count:
        sys.exit(f"only {accepted} of {count} recipients accepted")


def mode_idle(host, port, count, hold, ready_file):
    count, hold = int(count), float(hold)
    deadline = time.monotonic() + hold
    socks = []
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                sys.exit("hold time ran out while connecting")
            s = socket.create_connection((host, int(port)), timeout=60)
            f = s.makefile("rb")
            code, _ = read_reply(f)
            if code == 421 and socks:
                # The server's session limit: hold what we have and report the count.
                print(f"server refused session {len(socks) + 1} with 421", file=sys.stderr)
                f.close()
                s.close()
                break
            if code != 220:
                sys.exit(f"greeting {code}")
            s.sendall(b"EHLO idle.example.com\r\n")
            code, _ = read_reply(f)
            if code != 250:
                sys.exit(f"EHLO {code}")
            socks.append((s, f))
        with open(ready_file + ".part", "w") as out:
            out.write(f"ready {len(socks)}\n")
        os.rename(ready_file + ".part", ready_file)
        while time.monotonic() < deadline and os.path.exists(ready_file):
            time.sleep(0.05)
    finally:
        for s, f in socks:
            f.close()
            s.close()


def poll(timeout, check, pace=lambda: 0.01):
    """Calls check() until it is true, sleeping pace() seconds between calls (10 ms unless
    the caller can predict that the condition is still far off), then prints the time."""
    go = os.environ.get("E2E_GO")
    deadline = time.monotonic() + float(timeout)
    while go and not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.001)
    deadline = time.monotonic() + float(timeout)
    while True:
        if check():
            print(f"{time.time():.6f}")
            return
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(pace())


def count_files(path):
    try:
        with os.scandir(path) as it:
            return sum(1 for e in it if e.is_file(follow_symlinks=False))
    except FileNotFoundError:
        return 0


def mode_wait_files(timeout, count, dirlist):
    count = int(count)
    with open(dirlist) as f:
        pending = [line.strip() for line in f if line.strip()]
    done = 0  # files in directories that are no longer rescanned
    seen = 0
    first = None  # (time, count) when files were first seen: the rate is measured from there

    def pace():
        # Listing one directory of thousands of files every 10 ms costs the machine under
        # test a few percent of a core; while the files seen so far predict that the end is
        # far off, poll less often (at most every 250 ms, and never later than a third of
        # the predicted remaining time), so the end is still caught within about 10 ms.
        nonlocal first
        if seen == 0:
            return 0.01
        now = time.monotonic()
        if first is None:
            first = (now, seen)
            return 0.01
        t0, n0 = first
        if seen <= n0 or now <= t0:
            return 0.01
        remaining = (count - seen) * (now - t0) / (seen - n0)
        return min(0.25, max(0.01, remaining / 3))

    def check():
        nonlocal done, pending, seen
        # With many directories (W2: one file expected in each), a directory that holds
        # a file is counted once and never rescanned; one big directory is rescanned.
        if len(pending) == 1:
            seen = done + count_files(pending[0])
            return seen >= count
        still = []
        for d in pending:
            n = count_files(d)
            if n:
                done += n
            else:
                still.append(d)
        pending = still
        seen = done
        return done >= count

    poll(timeout, check, pace)


def mode_wait_lines(timeout, path, text, count):
    count, needle = int(count), text.encode()
    seen, offset, partial = 0, 0, b""

    def check():
        nonlocal seen, offset, partial
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
        offset += len(chunk)
        lines = (partial + chunk).split(b"\n")
        partial = lines.pop()
        seen += sum(1 for line in lines if needle in line)
        return seen >= count

    poll(timeout, check)


def mode_wait_empty(timeout, *dirs):
    def check():
        for d in dirs:
            for _, _, files in os.walk(d):
                if files:
                    return False
        return True

    poll(timeout, check)


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "list" and len(sys.argv) in (8, 9):
        mode_list(*sys.argv[2:])
    elif len(sys.argv) >= 2 and sys.argv[1] == "idle" and len(sys.argv) == 7:
        mode_idle(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "wait-files":
        mode_wait_files(*sys.argv[2:])
    elif len(sys.argv) == 6 and sys.argv[1] == "wait-lines":
        mode_wait_lines(*sys.argv[2:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "wait-empty":
        mode_wait_empty(*sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
