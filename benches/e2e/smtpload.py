#!/usr/bin/env python3
"""Small SMTP load client for the end-to-end benchmark (stdlib only).

Three modes, used where Postfix's smtp-source does not fit:

  smtpload.py list HOST PORT SENDER TEMPLATE COUNT SIZE [DOMAINS]
      One message of SIZE bytes to COUNT recipients, TEMPLATE formatted with {i}, the
      recipient number, and {d}, that number modulo DOMAINS (default 1), e.g.
      'user{i}@example.org' or 'r{i}@d{d}.test'. MAIL, every RCPT and DATA are sent
      pipelined (RFC 2920) when the server offers PIPELINING, so the client costs the
      server as little as possible. Prints 'accepted RCPTS SECONDS START END': the
      time until the 250 after the final dot, and the Unix times of the connect and of
      that 250 (so the interpreter's start-up is not counted); exits non-zero unless
      every recipient was accepted.

  smtpload.py tls HOST PORT SENDER RCPT COUNT SIZE SESSIONS CAFILE
      COUNT messages of SIZE bytes to RCPT, each on its own connection with STARTTLS
      (TLS 1.3 only; the server's certificate checked against CAFILE for the name
      'localhost', so the handshake is a real one), SESSIONS connections at a time (one
      thread each, spread over one process per core): greeting, EHLO, STARTTLS, EHLO again, then MAIL, RCPT and DATA
      (pipelined when offered), the message, the 250, QUIT. Prints 'sent COUNT SECONDS
      START END', from the first connect to the last 250 after the final dot, then
      'client cpu USER SYS SHARE in P processes' (the client's own CPU seconds and
      their share of the wall time, in cores) and the TLS version and cipher of the first session. Exits
      non-zero unless every message got its 250.

  smtpload.py idle HOST PORT COUNT HOLD_SECONDS READY_FILE [CAFILE]
      Opens COUNT SMTP sessions, reads each 220 greeting and sends EHLO (so every
      session is established and past its greeting), writes 'ready N' to READY_FILE
      (N < COUNT when the server answered a greeting with 421, its session limit),
      then holds them open and idle until HOLD_SECONDS pass or READY_FILE is removed,
      and closes them. Bounded by HOLD_SECONDS whatever happens. With CAFILE, each
      session also does STARTTLS (TLS 1.3, checked as in 'tls') and EHLO again before
      it idles.

Waiters, cheap enough to poll every 10 ms without disturbing the server under test; each
prints the wall-clock time (Unix seconds) the condition became true, or exits 1 once
TIMEOUT seconds pass. With E2E_GO=PATH in the environment a waiter starts polling only
once PATH exists (so it can be started, and its interpreter loaded, before the load):

  smtpload.py latency HOST PORT SENDER RCPT SIZE STOPFILE TIMEOUT [INTERVAL_MS]
                                                 one session, one message every
                                                 INTERVAL_MS (0: one after another)
                                                 until STOPFILE exists: p50/p99 of the
                                                 time from the final "." to its 250
  smtpload.py wait-files TIMEOUT COUNT DIRLIST   files in the directories named one per
                                                 line in DIRLIST reach COUNT in total
  smtpload.py wait-lines TIMEOUT FILE TEXT COUNT lines of FILE containing TEXT reach COUNT
  smtpload.py wait-empty TIMEOUT DIR...          no regular file left under any DIR
"""

import base64
import os
import resource
import socket
import ssl
import sys
import threading
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


def mode_latency(host, port, sender, rcpt, size, stop_file, timeout, interval_ms="0"):
    """One session sending a message every INTERVAL_MS milliseconds (0: one after the
    other) until STOP_FILE exists (or TIMEOUT seconds pass; at least one message), timing
    each `250` after DATA from the moment the final `.` was sent; prints "latency COUNT
    P50_MS P99_MS MAX_MS".

    Paced, the probe observes the load without being part of it: free-running, it is one
    more session as fast as the server answers: on a fast server, a sixth of the messages
    (and of the I/O counted per load message)."""
    data = body(int(size)) + b".\r\n"
    deadline = time.monotonic() + float(timeout)
    interval = float(interval_ms) / 1000
    next_start = time.monotonic()
    s = socket.create_connection((host, int(port)), timeout=600)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    if read_reply(f)[0] != 220:
        sys.exit("greeting")
    s.sendall(b"EHLO latency.example.com\r\n")
    read_reply(f)
    samples = []
    # At least one sample, even when the load ended before this session got going (a
    # smoke-size W1 can finish in a tenth of a second).
    while not samples or (not os.path.exists(stop_file) and time.monotonic() < deadline):
        if interval > 0:
            # A schedule, not a gap after each answer: a slow answer is followed at once
            # by the next message (never by a burst to catch up).
            pause = next_start - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            next_start = max(next_start + interval, time.monotonic())
        s.sendall(f"MAIL FROM:<{sender}>\r\n".encode())
        if read_reply(f)[0] != 250:
            sys.exit("MAIL")
        s.sendall(f"RCPT TO:<{rcpt}>\r\n".encode())
        if read_reply(f)[0] != 250:
            sys.exit("RCPT")
        s.sendall(b"DATA\r\n")
        if read_reply(f)[0] != 354:
            sys.exit("DATA")
        s.sendall(data[:-3])
        t = time.monotonic()
        s.sendall(data[-3:])
        code, lines = read_reply(f)
        samples.append(time.monotonic() - t)
        if code != 250:
            sys.exit(f"end of data {code} {lines}")
    s.sendall(b"QUIT\r\n")
    s.close()
    if not samples:
        print("latency 0 - - -")
        return
    samples.sort()
    def pct(p):
        return samples[min(len(samples) - 1, int(p * len(samples)))] * 1000
    print(f"latency {len(samples)} {pct(0.50):.3f} {pct(0.99):.3f} {samples[-1] * 1000:.3f}")


def tls_context(cafile):
    """A client context that checks the server's certificate against CAFILE only (no
    system roots to load), TLS 1.3 only."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def starttls(ctx, s, f, ehlo):
    """STARTTLS on a session past its EHLO (whose reply lines are `ehlo`): the 220, the
    handshake, EHLO again. Returns (TLS socket, its reader, the new EHLO lines)."""
    if not any(line[4:].upper().startswith("STARTTLS") for line in ehlo):
        raise ConnectionError("STARTTLS not offered")
    s.sendall(b"STARTTLS\r\n")
    code, lines = read_reply(f)
    if code != 220:
        raise ConnectionError(f"STARTTLS {code} {lines}")
    f.close()
    t = ctx.wrap_socket(s, server_hostname="localhost")
    tf = t.makefile("rb")
    t.sendall(b"EHLO load.example.com\r\n")
    code, lines = read_reply(tf)
    if code != 250:
        raise ConnectionError(f"EHLO after STARTTLS {code}")
    if t.version() != "TLSv1.3":
        raise ConnectionError(f"negotiated {t.version()}, not TLSv1.3")
    return t, tf, lines


def tls_message(ctx, host, port, sender, rcpt, data):
    """One message on its own connection with STARTTLS; returns (TLS version, cipher)."""
    s = socket.create_connection((host, port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        f = s.makefile("rb")
        code, _ = read_reply(f)
        if code != 220:
            raise ConnectionError(f"greeting {code}")
        s.sendall(b"EHLO load.example.com\r\n")
        code, lines = read_reply(f)
        if code != 250:
            raise ConnectionError(f"EHLO {code}")
        t, tf, lines = starttls(ctx, s, f, lines)
        s = t
        login = os.environ.get("SMTPLOAD_AUTH")
        if login:
            # AUTH PLAIN with an initial response (RFC 4954, RFC 4616): LOGIN:PASSWORD.
            user, _, password = login.partition(":")
            token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())
            t.sendall(b"AUTH PLAIN " + token + b"\r\n")
            code, reply = read_reply(tf)
            if code != 235:
                raise ConnectionError(f"AUTH {code} {reply}")
        cmds = [f"MAIL FROM:<{sender}>\r\n".encode(), f"RCPT TO:<{rcpt}>\r\n".encode(), b"DATA\r\n"]
        if any(line[4:].upper().startswith("PIPELINING") for line in lines):
            t.sendall(b"".join(cmds))
            replies = [read_reply(tf)[0] for _ in cmds]
        else:
            replies = []
            for c in cmds:
                t.sendall(c)
                replies.append(read_reply(tf)[0])
        if replies != [250, 250, 354]:
            raise ConnectionError(f"MAIL/RCPT/DATA {replies}")
        t.sendall(data)
        code, lines = read_reply(tf)
        if code != 250:
            raise ConnectionError(f"end of data {code} {lines}")
        described = (t.version(), t.cipher()[0])
        t.sendall(b"QUIT\r\n")
        try:
            read_reply(tf)
        except (ConnectionError, OSError):
            pass
        tf.close()
        return described
    finally:
        s.close()


def tls_share(ctx, host, port, sender, rcpt, data, count, sessions):
    """Sends `count` messages over `sessions` threads; returns (sent, the Unix time of the
    last 250, the first session's (version, cipher), the first error or None)."""
    lock = threading.Lock()
    state = {"next": 0, "sent": 0, "last": 0.0, "error": None, "described": None}

    def worker():
        while True:
            with lock:
                if state["next"] >= count or state["error"]:
                    return
                state["next"] += 1
            try:
                described = tls_message(ctx, host, port, sender, rcpt, data)
            except (OSError, ConnectionError) as e:
                with lock:
                    state["error"] = state["error"] or str(e)
                return
            done = time.time()
            with lock:
                state["sent"] += 1
                state["last"] = max(state["last"], done)
                state["described"] = state["described"] or described

    threads = [threading.Thread(target=worker) for _ in range(min(sessions, count))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return state["sent"], state["last"], state["described"], state["error"]


def mode_tls(host, port, sender, rcpt, count, size, sessions, cafile):
    count, size, sessions, port = int(count), int(size), int(sessions), int(port)
    ctx = tls_context(cafile)
    data = body(size) + b".\r\n"
    # One process per core (the handshakes and the Python around them then run in
    # parallel, not behind one interpreter lock), the sessions and messages split evenly.
    procs = max(1, min(os.cpu_count() or 1, sessions, count))
    start_wall = time.time()
    start = time.monotonic()
    children = []
    for k in range(procs):
        share = count // procs + (k < count % procs)
        threads = sessions // procs + (k < sessions % procs)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            code = 0
            try:
                sent, last, described, error = tls_share(ctx, host, port, sender, rcpt, data, share, threads)
                version, cipher = described or ("-", "-")
                os.write(w, f"{sent} {last:.6f} {version} {cipher} {error or ''}".encode())
            except BaseException as e:  # pylint: disable=broad-except
                os.write(w, f"0 0 - - {e}".encode())
                code = 1
            os._exit(code)
        os.close(w)
        children.append((pid, r))
    sent, last, described, errors = 0, 0.0, None, []
    for pid, r in children:
        chunks = []
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(r)
        os.waitpid(pid, 0)
        fields = b"".join(chunks).decode().split(" ", 4)
        if len(fields) < 5:
            errors.append("a client process died")
            continue
        sent += int(fields[0])
        last = max(last, float(fields[1]))
        described = described or (fields[2] != "-" and (fields[2], fields[3])) or None
        if fields[4]:
            errors.append(fields[4])
    wall = time.monotonic() - start
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    if errors or sent != count:
        sys.exit(f"sent {sent} of {count}: {errors[0] if errors else 'short'}")
    elapsed = last - start_wall
    print(f"sent {sent} {elapsed:.6f} {start_wall:.6f} {last:.6f}")
    print(f"client cpu {cpu.ru_utime:.3f} {cpu.ru_stime:.3f} {(cpu.ru_utime + cpu.ru_stime) / wall:.2f} in {procs} processes")
    print(f"tls {described[0]} {described[1]}")


def mode_idle(host, port, count, hold, ready_file, cafile=None):
    count, hold = int(count), float(hold)
    ctx = tls_context(cafile) if cafile else None
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
            code, lines = read_reply(f)
            if code != 250:
                sys.exit(f"EHLO {code}")
            if ctx:
                try:
                    s, f, _ = starttls(ctx, s, f, lines)
                except (OSError, ConnectionError) as e:
                    sys.exit(f"STARTTLS on session {len(socks) + 1}: {e}")
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


def poll(timeout, check, pace=lambda: 0.01, prepare=None):
    """Calls check() until it is true, sleeping pace() seconds between calls (10 ms unless
    the caller can predict that the condition is still far off), then prints the time.

    With E2E_GO set, nothing is checked before that file exists (the workload has been
    submitted); prepare(), when given, runs before that wait, so work that does not depend
    on the workload (reading what a log already holds) is not charged to it."""
    go = os.environ.get("E2E_GO")
    deadline = time.monotonic() + float(timeout)
    if prepare is not None:
        prepare()
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
    pending.reverse()  # a stack: the next directory to check is the last
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
        # In order, up to the first directory still empty: the check that finds the end
        # lists each directory once after its file arrived, instead of every pending one
        # each time (1,024 listings every 10 ms took most of a core from the servers).
        while pending:
            n = count_files(pending[-1])
            if not n:
                break
            done += n
            pending.pop()
        seen = done
        return done >= count

    poll(timeout, check, pace)


def mode_wait_lines(timeout, path, text, count):
    """Waits until `path` (the daemon's log) holds `count` lines containing `text`.

    The log is read once before the go signal (after W1 it holds tens of thousands of
    lines; reading them took 15-30 ms, which was charged to the workload when it happened
    after the go), then only what was appended, and only when the file grew (a stat per
    check), every 2 ms: a check costs microseconds, so polling faster than wait-files does
    costs the machine nothing measurable and takes the 10 ms granularity out of W3 and W4."""
    count, needle = int(count), text.encode()
    seen, offset, partial = 0, 0, b""

    def check():
        nonlocal seen, offset, partial
        try:
            if os.stat(path).st_size <= offset:
                return seen >= count
        except FileNotFoundError:
            return False
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
        offset += len(chunk)
        lines = (partial + chunk).split(b"\n")
        partial = lines.pop()
        seen += sum(1 for line in lines if needle in line)
        return seen >= count

    poll(timeout, check, lambda: 0.002, prepare=check)


def mode_wait_empty(timeout, *dirs):
    def check():
        for d in dirs:
            for _, _, files in os.walk(d):
                if files:
                    return False
        return True

    # Every 2 ms, as wait-lines: the two sides' "seconds until the queue is empty" are
    # caught with the same granularity (a walk of Postfix's near-empty queue directories
    # costs well under a millisecond).
    poll(timeout, check, lambda: 0.002)


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "list" and len(sys.argv) in (8, 9):
        mode_list(*sys.argv[2:])
    elif len(sys.argv) == 10 and sys.argv[1] == "tls":
        mode_tls(*sys.argv[2:])
    elif len(sys.argv) >= 2 and sys.argv[1] == "idle" and len(sys.argv) in (7, 8):
        mode_idle(*sys.argv[2:])
    elif len(sys.argv) in (9, 10) and sys.argv[1] == "latency":
        mode_latency(*sys.argv[2:])
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
