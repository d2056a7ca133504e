#!/usr/bin/env bash
# End-to-end load benchmark: mta against Postfix, same machine, same run (issues 10, 17).
#
#   sudo benches/e2e/run.sh            # build mta (release), run W1-W6 on both, print the table
#
# Needs root, python3, openssl and Debian's postfix package (installed here with apt-get when
# missing, unconfigured: the script runs a private instance and stops it at the end).
#
# Both servers offer STARTTLS in every workload, with the same certificate (ECDSA P-256,
# self-signed for localhost and 127.0.0.1, made once per run with openssl): mta's
# control/servercert.pem, Postfix's smtpd_tls_cert_file/smtpd_tls_key_file (level may).
#
# W1  5,000 messages of 2 KB to one local maildir user over 10 sessions (smtp-source):
#     acceptance rate and end-to-end rate (until the last file is in new/).
# W2  one message to 1,024 local maildir users: seconds until all are in new/.
# W3  one message to 8,192 recipients whose delivery discards it (comment-only .qmail;
#     Postfix's discard transport): seconds until the queue is empty.
# W4  one message to 1,000 recipients over 100 domains, routed to a loopback smtp-sink
#     (concurrencyremote 20; Postfix's smtp maxproc 20): seconds until the queue is empty.
# W5  2,000 concurrent idle SMTP sessions (after EHLO): growth of the server's resident
#     memory (VmRSS summed over its whole process tree) per session.
# W6  1,000 messages of 2 KB to the W1 user, each on its own connection with STARTTLS
#     (TLS 1.3, certificate checked by the client), 10 connections at a time
#     (smtpload.py tls): messages/s until the last 250 after DATA.
# W5TLS  as W5, but each idle session has done STARTTLS and EHLO again before it idles.
# W4D mta only: W4 with DKIM signing (RSA-2048) against W4 without, both on restarted
#     servers; W1C mta only: W1 from outside with the SPF/DKIM/DMARC checks against a
#     loopback DNS responder (fakedns.py) against W1 from a relay client. Both notes.
# W1M mta only: after a warm-up, W1 on a restarted server alternately without and with
#     control/metrics scraped once a second, E2E_W1M_PAIRS (3) pairs; the median ratio is
#     the metrics' cost (a note).
# W7  mta only (Postfix's smtpd needs an external SASL server): W6 on a submission port,
#     each connection logging in with AUTH PLAIN (Argon2id hash at its default
#     parameters) before its message: messages/s, written as a note under the table.
#
# Interop (once per run, after the workloads, when both sides run; E2E_INTEROP=0 skips
# it): both servers at once on fresh directories, TLS both ways: Postfix's smtp client
# delivers to mta under smtp_tls_security_level encrypt (smtp_tls_policy_maps), and mta
# delivers to Postfix's smtpd under control/tlsdestinations encrypt and verify (the run's
# certificate in control/tlsca.pem), and Postfix's smtp client logs in to mta's submission
# port with SASL (smtp_sasl_auth_enable, a password map) over STARTTLS. Each side's log
# and the delivered messages are checked; a failure fails the run (after the table is
# printed).
#
# Everything runs under one temp dir on the disk (not tmpfs), as root (Postfix needs it).
# Each workload is bounded in time (E2E_TIMEOUT seconds, default 180) and every process
# the script starts is stopped on exit (trap EXIT). The table goes to stdout and to
# $E2E_OUT (default benches/e2e/results.txt); per-run details to $E2E_OUT.log.
#
# Knobs (environment): MTA_BIN (skip the build and use this binary), E2E_TIMEOUT and
# W4_TIMEOUT (bounds in seconds, default 180 and 60), E2E_KEEP=1 (keep the temp dir),
# E2E_TMP (parent of the temp dir, default /var/tmp), E2E_ROUNDS=N (run both sides N
# times, alternating, and report medians: a shared machine is noisy), E2E_SETTLE=61 (wait
# that many seconds before each side's W1; see settle), E2E_ONLY=mta|postfix
# (run one side, e.g. while profiling), E2E_WORKLOADS="W1 W3" (run only these; W1-W6, W5TLS), E2E_PERF=1 (`perf record -e cpu-clock -a -g`
# during mta's W1-W4 into $E2E_OUT.perf.data, at E2E_PERF_HZ samples per second, default 499; E2E_PERF_EVENTS replaces the event options, e.g. "-e raw_syscalls:sys_enter -e sched:sched_switch"), W1_MSGS, W2_RCPTS, W3_RCPTS, W4_RCPTS,
# W4_DOMAINS, W5_SESSIONS (also W5TLS's count), W6_MSGS (smaller sizes for a quick smoke
# run), E2E_INTEROP=0 (skip the interop step), E2E_IOPS=N (a slow disk: both servers'
# write requests capped at N per second through a cgroup; see io_cap_setup),
# E2E_LOCAL_CONC=N (local deliveries at once, the same for both servers: mta's
# concurrencylocal, Postfix's virtual_destination_concurrency_limit; default 64).
#
# W1 also reports the latency of the 250 after DATA (p50, p99, from one more session
# sending a message every E2E_PROBE_MS milliseconds during W1, default 20; 0 sends one
# after another, as this script did before 2026-12-04), and W1 and W2 the block device's
# write requests and cache flushes per message or delivery.
#
# The whole script is one { ... } block, so bash parses it before running it: editing
# the file during a run cannot change the run.
{
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${E2E_OUT:-$HERE/results.txt}
TIMEOUT=${E2E_TIMEOUT:-180}
W4_TIMEOUT=${W4_TIMEOUT:-60}
W1_MSGS=${W1_MSGS:-5000}
W1_SESSIONS=10
W2_RCPTS=${W2_RCPTS:-1024}
W3_RCPTS=${W3_RCPTS:-8192}
W4_RCPTS=${W4_RCPTS:-1000}
W4_DOMAINS=${W4_DOMAINS:-100}
W5_SESSIONS=${W5_SESSIONS:-2000}
W6_MSGS=${W6_MSGS:-1000}
W6_SESSIONS=10
MSG_SIZE=2048
BENCH_UID=65534
BENCH_GID=65534
LOAD="python3 $HERE/smtpload.py"
# Local deliveries at once, both servers. mta's delivery of a message spans two shared
# syncs (its data, then its name in new/), so on a capped disk, where a sync takes about
# 13 ms, 20 at once bounded W1 near 600 msgs/s with a backlog in the queue (BENCHMARKS.md,
# issue 22, ninth step); Postfix's rate did not move with it.
LOCAL_CONC=${E2E_LOCAL_CONC:-64}

die() { echo "run.sh: $*" >&2; exit 1; }
note() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT.log" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (Postfix's master and the per-uid delivery need it)"
# Postfix from Debian's package, unconfigured ("No configuration": no system instance is
# set up or started; this script runs its own private one).
if ! command -v postfix >/dev/null && command -v apt-get >/dev/null; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >&2; }
fi
for t in postfix postconf smtp-source smtp-sink python3 openssl; do
    command -v "$t" >/dev/null || die "missing $t (apt-get install postfix python3 openssl)"
done
# W5 needs two descriptors per session (client and server side) plus some slack.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((2 * ${W5_SESSIONS:-2000} + 1000)) ] \
    || die "open-file limit $(ulimit -n) too low for W5 (raise the hard limit)"

# --- build -------------------------------------------------------------------------------
# The revision measured, taken before this script writes its results file into the tree.
REV=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?')
if [ -z "${MTA_BIN:-}" ]; then
    (cd "$REPO" && cargo build --release -p mta-daemon) >&2
    target=${CARGO_TARGET_DIR:-target}
    case $target in /*) ;; *) target=$REPO/$target ;; esac
    MTA_BIN=$target/release/mta
fi
[ -x "$MTA_BIN" ] || die "no mta binary at $MTA_BIN"

# --- temp dir, process bookkeeping, cleanup ----------------------------------------------
WORK=$(mktemp -d "${E2E_TMP:-/var/tmp}/mta-e2e.XXXXXX")
chmod 755 "$WORK"
PIDS=()            # processes we started directly (killed on exit)
PF_CONF=""         # set once Postfix is configured (stopped on exit)
PERF_PID=""

cleanup() {
    local rc=$?
    set +e
    if [ -n "$PERF_PID" ]; then kill -INT "$PERF_PID" 2>/dev/null; wait "$PERF_PID" 2>/dev/null; fi
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ -n "$PF_CONF" ] && [ -f "$PF_CONF/main.cf" ]; then
        postfix -c "$PF_CONF" status >/dev/null 2>&1 && postfix -c "$PF_CONF" stop >/dev/null 2>&1
        for _ in $(seq 50); do postfix -c "$PF_CONF" status >/dev/null 2>&1 || break; sleep 0.1; done
        postfix -c "$PF_CONF" status >/dev/null 2>&1 && postfix -c "$PF_CONF" abort >/dev/null 2>&1
    fi
    if [ -n "${IO_CGROUP:-}" ] && [ -d "$IO_CGROUP" ]; then
        # Its processes are gone (stopped above); move any straggler out, then remove it.
        while read -r p; do echo "$p" >"$(dirname "$IO_CGROUP")/cgroup.procs"; done <"$IO_CGROUP/cgroup.procs" 2>/dev/null
        rmdir "$IO_CGROUP" 2>/dev/null
    fi
    if [ "${E2E_KEEP:-0}" = 1 ]; then
        echo "run.sh: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }'; }

# A message's file appears before the log line of the process that wrote it (Postfix logs
# through postlogd; mta's remote process logs after the peer's 250), so the checks that
# follow a file wait for their lines rather than grep once.
pf_logged() { # pf_logged RCPT REGEX: Postfix's maillog has a line for RCPT matching REGEX
    grep -F "to=<$1>" "$PF/maillog" | grep -q "$2"
}
log_count_at_least() { # log_count_at_least FILE ERE N
    [ "$(grep -cE "$2" "$1")" -ge "$3" ]
}
# wait_for SECONDS CMD...: polls CMD every 20 ms; 0 once it succeeds, 1 on timeout.
wait_for() {
    local limit=$1; shift
    local deadline
    deadline=$(awk -v n="$(now)" -v t="$limit" 'BEGIN { printf "%.3f", n + t }')
    until "$@"; do
        if awk -v n="$(now)" -v d="$deadline" 'BEGIN { exit !(n > d) }'; then return 1; fi
        sleep 0.02
    done
}

port_open() { python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null; }

# Sum of VmRSS (KB) over PID and all its descendants.
tree_rss_kb() {
    ps -e -o pid=,ppid=,rss= | awk -v root="$1" '
        { parent[$1] = $2; rss[$1] = $3 }
        END {
            total = 0
            for (p in rss) {
                q = p
                while (q != "" && q != 0 && q != 1 && q != root) q = parent[q]
                if (q == root) total += rss[p]
            }
            print total
        }'
}

# CPU ticks (user + system, children reaped included) summed over PID and all its
# descendants: the difference of two readings is what the tree used in between, processes
# that started or ended in between included (their parents reap them).
tree_cpu_ticks() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            total = 0
            for (p in parent) {
                q = p
                while (q != "" && q != 0 && q != 1 && q != root) q = parent[q]
                if (q != root) continue
                f = "/proc/" p "/stat"
                if ((getline line < f) > 0) {
                    sub(/^.*\) /, "", line)
                    split(line, a, " ")
                    total += a[12] + a[13] + a[14] + a[15] # utime stime cutime cstime
                }
                close(f)
            }
            print total
        }'
}

RESULTS=$WORK/results.raw   # lines: workload metric side value
: >"$RESULTS"
record() { echo "$1 $2 $3 $4" >>"$RESULTS"; note "$1 $2 $3 = $4"; }

MTA_PORT=$(free_port)
PF_PORT=$(free_port)
while [ "$PF_PORT" = "$MTA_PORT" ]; do PF_PORT=$(free_port); done
SINK_PORT=$(free_port)
while [ "$SINK_PORT" = "$MTA_PORT" ] || [ "$SINK_PORT" = "$PF_PORT" ]; do SINK_PORT=$(free_port); done
SUB_PORT=$(free_port) # mta's submission listener (W7, interop (c))
while [ "$SUB_PORT" = "$MTA_PORT" ] || [ "$SUB_PORT" = "$PF_PORT" ] || [ "$SUB_PORT" = "$SINK_PORT" ]; do SUB_PORT=$(free_port); done
: >"$OUT.log"
note "work dir $WORK; ports mta $MTA_PORT postfix $PF_PORT sink $SINK_PORT"

# --- the certificate both servers present (made once per run) ------------------------------
# ECDSA P-256, self-signed, for localhost and 127.0.0.1. Not a CA certificate (CA:FALSE):
# rustls's verifier refuses a CA certificate as a server's own (CaUsedAsEndEntity), and
# the interop step has mta verify Postfix's certificate with this file as its trust anchor.
# The clients (smtpload.py, mta under verify) trust exactly this file.
TLS_DIR=$WORK/tls
mkdir -p "$TLS_DIR"
chmod 700 "$TLS_DIR"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
    -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
    >>"$OUT.log" 2>&1 || die "openssl could not make the certificate (see $OUT.log)"
cat "$TLS_DIR/key.pem" "$TLS_DIR/cert.pem" >"$TLS_DIR/servercert.pem"
chmod 600 "$TLS_DIR/key.pem" "$TLS_DIR/servercert.pem"
chmod 644 "$TLS_DIR/cert.pem"
TLS_CA=$TLS_DIR/cert.pem

# --- the loopback sink for W4 (Postfix's smtp-sink, shared by both sides) -----------------
smtp-sink -u nobody -m 1000 "127.0.0.1:$SINK_PORT" 1024 >/dev/null 2>"$WORK/sink.log" &
PIDS+=($!)
wait_for 10 port_open "$SINK_PORT" || die "smtp-sink did not start"

# --- mailbox layout shared by both sides ----------------------------------------------------
# HOMES/w1/Maildir, HOMES/userN/Maildir (N < W2_RCPTS), HOMES/trash (comment-only .qmail).
make_homes() {
    local base=$1 i
    mkdir -p "$base/w1/Maildir/"{tmp,new,cur} "$base/trash"
    for ((i = 0; i < W2_RCPTS; i++)); do
        mkdir -p "$base/user$i/Maildir/"{tmp,new,cur}
    done
    printf '# discard everything\n' >"$base/trash/.qmail-default"
    chmod 644 "$base/trash/.qmail-default"
    chown -R "$BENCH_UID:$BENCH_GID" "$base"
    chmod 755 "$base"
}
user_newdirs() { # user_newdirs BASE: the 1,024 new/ dirs of W2
    local i
    for ((i = 0; i < W2_RCPTS; i++)); do echo "$1/user$i/Maildir/new"; done
}

# --- mta ------------------------------------------------------------------------------------
# Per round (set_round): a fresh root, homes, log and Postfix instance each time.
# The round's directory is marked a top directory (`chattr +T`, ext4's Orlov hint), so
# ext4 puts each side's root and homes in block groups of their own, away from each other
# and from earlier rounds and runs. Otherwise they share a few groups, and ext4 without a
# journal (this machine) skips every inode freed there in the last 60 s (360 s while its
# inode-table block is dirty) on each new file: one side's W2 paid for the inodes the
# other side's queue or an earlier run's cleanup had just freed (W2 profile: 27% of mta's
# worker time in find_inode_bit/recently_deleted). Each side still pays for what it frees.
# Under a top directory ext4 picks the group from a hash of the new directory's name, so
# the names carry the run's random suffix and the round: fixed names put every run's homes
# where the run before had just deleted its own.
MTA_ROOT="" MTA_HOMES="" MTA_LOG="" PF="" PF_HOMES=""
set_round() {
    local dir=$WORK/round$1 salt=${WORK##*.}-$1
    mkdir -p "$dir"
    chmod 755 "$dir"
    chattr +T "$dir" 2>/dev/null || true
    MTA_ROOT=$dir/mta-$salt
    MTA_HOMES=$dir/mta-homes-$salt
    MTA_LOG=$dir/mta.log
    PF=$dir/postfix-$salt
    PF_HOMES=$dir/postfix-homes-$salt
}
MTA_PID=""
mta_setup() {
    "$MTA_BIN" --root "$MTA_ROOT" init --hostname example.org >/dev/null
    make_homes "$MTA_HOMES"
    local c=$MTA_ROOT/control i
    printf '127.0.0.1:%s\n127.0.0.1:%s submission\n' "$MTA_PORT" "$SUB_PORT" >"$c/listen"
    echo benchpw | "$MTA_BIN" --root "$MTA_ROOT" passwd bench
    install -m 600 "$TLS_DIR/servercert.pem" "$c/servercert.pem"
    echo "$LOCAL_CONC" >"$c/concurrencylocal"
    echo 20 >"$c/concurrencyremote"
    echo $((W5_SESSIONS + 100)) >"$c/concurrencyincoming"
    # The abuse limits off, as for Postfix below (its per-client and recipient limits):
    # every load comes from 127.0.0.1, and W3 sends one message to W3_RCPTS recipients.
    echo $((W5_SESSIONS + 100)) >"$c/concurrencyperip"
    echo $((W3_RCPTS + W4_RCPTS + 100)) >"$c/maxrcpt"
    : >"$c/smtproutes"
    for ((i = 0; i < W4_DOMAINS; i++)); do echo "d$i.test:127.0.0.1:$SINK_PORT" >>"$c/smtproutes"; done
    {
        echo "=w1:bench:$BENCH_UID:$BENCH_GID:$MTA_HOMES/w1:::"
        for ((i = 0; i < W2_RCPTS; i++)); do
            echo "=user$i:bench:$BENCH_UID:$BENCH_GID:$MTA_HOMES/user$i:::"
        done
        echo "+trash-:bench:$BENCH_UID:$BENCH_GID:$MTA_HOMES/trash:-::"
        echo "."
    } >"$MTA_ROOT/users/assign"
}
mta_start() {
    in_io_cap "$MTA_BIN" --root "$MTA_ROOT" serve 2>>"$MTA_LOG" &
    MTA_PID=$!
    PIDS+=("$MTA_PID")
    wait_for 30 port_open "$MTA_PORT" || die "mta serve did not start (see $MTA_LOG)"
}
mta_stop() {
    kill -TERM "$MTA_PID" 2>/dev/null || true
    wait_for 30 bash -c "! kill -0 $MTA_PID 2>/dev/null" || kill -KILL "$MTA_PID" 2>/dev/null || true
    wait "$MTA_PID" 2>/dev/null || true
}
mta_done_msgs() { grep -c ' end msg ' "$MTA_LOG" || true; }

# --- Postfix --------------------------------------------------------------------------------
pf_setup() {
    local i
    PF_CONF=$PF/etc
    mkdir -p "$PF_CONF" "$PF/queue" "$PF/data"
    make_homes "$PF_HOMES"
    cat >"$PF_CONF/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PF/queue
data_directory = $PF/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.example.net
mydomain = example.net
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
biff = no
smtpd_recipient_limit = $((W3_RCPTS + 100))
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_recipient_rate_limit = 0
smtpd_peername_lookup = no
virtual_destination_concurrency_limit = $LOCAL_CONC
virtual_mailbox_domains = example.org
virtual_mailbox_base = $PF_HOMES
virtual_mailbox_maps = texthash:$PF_CONF/vmailbox, regexp:$PF_CONF/vtrash
virtual_uid_maps = static:$BENCH_UID
virtual_gid_maps = static:$BENCH_GID
virtual_minimum_uid = 100
transport_maps = regexp:$PF_CONF/transport
maillog_file = $PF/maillog
smtpd_tls_cert_file = $TLS_DIR/cert.pem
smtpd_tls_key_file = $TLS_DIR/key.pem
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
EOF
    # Users one by one (regexp tables may not substitute into virtual mailbox paths).
    {
        printf 'w1@example.org w1/Maildir/\n'
        for ((i = 0; i < W2_RCPTS; i++)); do printf 'user%d@example.org user%d/Maildir/\n' "$i" "$i"; done
    } >"$PF_CONF/vmailbox"
    printf '/^trash-[0-9]+@example\\.org$/\ttrash/Maildir/\n' >"$PF_CONF/vtrash"
    cat >"$PF_CONF/transport" <<EOF
/^trash-[0-9]+@example\.org\$/	discard:
/@d[0-9]+\.test\$/	smtp:[127.0.0.1]:$SINK_PORT
EOF
    # Debian's master.cf without chroot; smtpd may run W5_SESSIONS at once, smtp 20.
    cat >"$PF_CONF/master.cf" <<EOF
127.0.0.1:$PF_PORT inet n - n - $((W5_SESSIONS + 100)) smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       20      smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
    chown -R root:root "$PF_CONF"
    chown postfix:postfix "$PF/data"
    chmod 700 "$PF/data"
    postfix -c "$PF_CONF" check >>"$WORK/postfix-start.log" 2>&1 || true
}
pf_start() {
    (in_io_cap postfix -c "$PF_CONF" start) >>"$WORK/postfix-start.log" 2>&1 \
        || die "postfix did not start: $(tail -5 "$PF/maillog" 2>/dev/null)"
    wait_for 30 port_open "$PF_PORT" || die "postfix smtpd not listening"
}
pf_stop() {
    postfix -c "$PF_CONF" stop >/dev/null 2>&1 || true
    wait_for 30 bash -c "! postfix -c '$PF_CONF' status >/dev/null 2>&1" || postfix -c "$PF_CONF" abort >/dev/null 2>&1 || true
}
pf_master_pid() { tr -d ' ' <"$PF/queue/pid/master.pid"; }

# --- the workloads, each as a function of the side ----------------------------------------
# The waiters (smtpload.py wait-*) poll every 10 ms in one process and print the Unix time
# the condition became true; no fork per poll, so they barely load the server under test.
# Each is started before the load (its interpreter's start-up is not timed) and begins
# polling when its go-file appears.
WAITER=""
start_waiter() { # start_waiter NAME ARGS...
    local name=$1; shift
    rm -f "$WORK/$name.go"
    E2E_GO=$WORK/$name.go $LOAD "$@" >"$WORK/$name.done" &
    WAITER=$!
    PIDS+=("$WAITER")
}
DONE_AT=""
finish_waiter() { # finish_waiter NAME: DONE_AT = the time the condition held; 1 on timeout
    touch "$WORK/$1.go"
    DONE_AT=""
    wait "$WAITER" || return 1 # (not in a $(...) subshell: wait needs the parent shell)
    DONE_AT=$(cat "$WORK/$1.done")
}
MARK=0
queue_mark() { if [ "$1" = mta ]; then MARK=$(mta_done_msgs); fi; }
# start_queue_waiter SIDE NAME TIMEOUT: for the message about to be submitted leaving the queue.
start_queue_waiter() {
    if [ "$1" = mta ]; then
        start_waiter "$2" wait-lines "$3" "$MTA_LOG" " end msg " $((MARK + 1))
    else
        start_waiter "$2" wait-empty "$3" "$PF/queue/maildrop" "$PF/queue/incoming" "$PF/queue/active" "$PF/queue/deferred"
    fi
}
# submit SIDE PORT TEMPLATE COUNT [DOMAINS]: one message to COUNT recipients; prints the
# Unix time the client connected (the workload's start).
submit() {
    local out
    out=$($LOAD list 127.0.0.1 "$2" bench@example.com "$3" "$4" "$MSG_SIZE" "${5:-1}" 2>&1) || {
        echo "$1: $out" >>"$OUT.log"
        return 1
    }
    echo "$1: $out" >>"$OUT.log"
    echo "$out" | awk '/^accepted/ { print $4 }'
}

# settle: before each workload, write back what setup and earlier workloads left dirty
# (homes created, a previous run's files removed), so neither side's figure pays for
# writeback it did not cause; then let the waiter start polling.
# settle [SECONDS]: the wait after the sync, 0.5 s unless given. W1 passes E2E_SETTLE: on
# ext4 without a journal, inodes freed in the last minute slow every file creation near
# them, so the files the other side just deleted (Postfix unlinks a queue file per message)
# would tax this side's W1; with E2E_SETTLE=61 each side's W1 starts with that minute over.
settle() { sync; sleep "${1:-0.5}"; }

# The block device under the work dir and its I/O counters (write requests, cache flushes),
# so W1 can report the durable I/O each side needed per message.
DISK_STAT=/sys/class/block/$(basename "$(df --output=source "$WORK" | tail -1)")/stat
disk_counters() { # prints "writes flushes" (0 0 if the device has no stat file)
    if [ -r "$DISK_STAT" ]; then awk '{ print $5, ($16 == "" ? 0 : $16) }' "$DISK_STAT"; else echo 0 0; fi
}

# E2E_IOPS=N: a slow disk for both sides alike. Each server (and every process it starts:
# Postfix's master and its children, mta's workers) runs in a blkio cgroup whose writes to
# the work dir's device are capped at N requests per second: cgroup v2's io.max
# (wiops=N) where the io controller is available, else cgroup v1's
# blkio.throttle.write_iops_device (this machine: v1). The cap applies to the requests
# the servers' own threads submit (fsync, syncfs and direct writes, which is what
# durability costs); background writeback by the kernel's flusher threads escapes it
# under cgroup v1.
IO_CGROUP=""
io_cap_setup() {
    [ -n "${E2E_IOPS:-}" ] || return 0
    local dev v2=""
    dev=$(cat "$(dirname "$DISK_STAT")/dev")
    for root in /sys/fs/cgroup /sys/fs/cgroup/unified; do
        if grep -qw io "$root/cgroup.controllers" 2>/dev/null; then v2=$root; break; fi
    done
    if [ -n "$v2" ]; then
        echo +io >"$v2/cgroup.subtree_control" 2>/dev/null || true
        IO_CGROUP=$v2/mta-e2e-$$
        mkdir -p "$IO_CGROUP"
        echo "$dev wiops=$E2E_IOPS" >"$IO_CGROUP/io.max" || die "cannot set io.max"
        note "slow disk: cgroup v2 io.max $dev wiops=$E2E_IOPS ($IO_CGROUP)"
    elif [ -d /sys/fs/cgroup/blkio ]; then
        IO_CGROUP=/sys/fs/cgroup/blkio/mta-e2e-$$
        mkdir -p "$IO_CGROUP"
        echo "$dev $E2E_IOPS" >"$IO_CGROUP/blkio.throttle.write_iops_device" \
            || die "cannot set blkio.throttle.write_iops_device"
        note "slow disk: cgroup v1 blkio.throttle.write_iops_device $dev $E2E_IOPS ($IO_CGROUP)"
    else
        die "E2E_IOPS: no cgroup io or blkio controller"
    fi
}
# in_io_cap CMD...: joins the capped cgroup (without E2E_IOPS: nothing) and execs CMD, so
# call it in a subshell: `in_io_cap CMD &` (then $! is CMD's pid) or `(in_io_cap CMD)`.
in_io_cap() {
    if [ -n "$IO_CGROUP" ]; then echo "$BASHPID" >"$IO_CGROUP/cgroup.procs"; fi
    exec "$@"
}
io_cap_setup

# W1's 250 latency: one more session (smtpload.py latency) sends a message every
# E2E_PROBE_MS ms while smtp-source runs, to a discarding recipient (so W1's maildir count
# is not touched), and times each 250 after DATA; p50 and p99 go in the table. Paced, the
# probe watches W1 without joining it: sending as fast as it is answered, it was an
# eleventh session (15% of mta's messages, 10% of Postfix's), whose I/O the per-message
# counts divided among W1's messages, and which cost Postfix a sixth of its W1 rate.
LAT_RCPT=trash-999999@example.org

w1() {
    local side=$1 port=$2 homes=$3 t0 t1 t2 list=$WORK/w1-$1.dirs
    note "${W1_LABEL:-W1} $side: $W1_MSGS messages x $MSG_SIZE bytes over $W1_SESSIONS sessions"
    echo "$homes/w1/Maildir/new" >"$list"
    start_waiter "w1-$side" wait-files "$TIMEOUT" "$W1_MSGS" "$list"
    touch "$WORK/w1-$side.go" # a directory to watch: poll from the start
    settle "${E2E_SETTLE:-0.5}"
    local io0 io1
    io0=$(disk_counters)
    rm -f "$WORK/w1-$side.stop"
    $LOAD latency 127.0.0.1 "$port" bench@example.com "$LAT_RCPT" "$MSG_SIZE" \
        "$WORK/w1-$side.stop" "$TIMEOUT" "${E2E_PROBE_MS:-20}" >"$WORK/w1-$side.lat" 2>>"$OUT.log" &
    local lat_pid=$!
    t0=$(now)
    if ! timeout "$TIMEOUT" smtp-source -s "$W1_SESSIONS" -m "$W1_MSGS" -l "$MSG_SIZE" \
        -f bench@example.com -t w1@example.org -M load.example.com "127.0.0.1:$port" \
        >>"$OUT.log" 2>&1; then
        touch "$WORK/w1-$side.stop"; wait "$lat_pid" || true
        record "${W1_LABEL:-W1}" accept_msgs_per_s "$side" -; record "${W1_LABEL:-W1}" e2e_msgs_per_s "$side" -
        wait "$WAITER" || true
        return
    fi
    t1=$(now)
    touch "$WORK/w1-$side.stop"
    wait "$lat_pid" || true
    local lat
    lat=$(cat "$WORK/w1-$side.lat")
    note "${W1_LABEL:-W1} $side: 250 after DATA, concurrent probe session: $lat (count p50 p99 max, ms)"
    record "${W1_LABEL:-W1}" p50_250_ms "$side" "$(echo "$lat" | awk '{ print ($3 == "" ? "-" : $3) }')"
    record "${W1_LABEL:-W1}" p99_250_ms "$side" "$(echo "$lat" | awk '{ print ($4 == "" ? "-" : $4) }')"
    record "${W1_LABEL:-W1}" accept_msgs_per_s "$side" "$(div "$W1_MSGS" "$(elapsed "$t0" "$t1")")"
    if finish_waiter "w1-$side"; then
        t2=$DONE_AT
        io1=$(disk_counters)
        record "${W1_LABEL:-W1}" e2e_msgs_per_s "$side" "$(div "$W1_MSGS" "$(elapsed "$t0" "$t2")")"
        # Device requests per message (lower is better; background writeback included).
        record "${W1_LABEL:-W1}" disk_writes_per_msg "$side" "$(echo "$io0 $io1" | awk -v n="$W1_MSGS" '{ printf "%.2f", ($3 - $1) / n }')"
        record "${W1_LABEL:-W1}" disk_flushes_per_msg "$side" "$(echo "$io0 $io1" | awk -v n="$W1_MSGS" '{ printf "%.2f", ($4 - $2) / n }')"
    else
        record "${W1_LABEL:-W1}" e2e_msgs_per_s "$side" -
    fi
}

w2() {
    local side=$1 port=$2 homes=$3 t0 t1 list=$WORK/w2-$1.dirs
    note "W2 $side: one message to $W2_RCPTS local maildir users"
    user_newdirs "$homes" >"$list"
    start_waiter "w2-$side" wait-files "$TIMEOUT" "$W2_RCPTS" "$list"
    settle
    local io0 io1
    io0=$(disk_counters)
    t0=$(submit "$side" "$port" 'user{i}@example.org' "$W2_RCPTS") \
        || { record W2 seconds "$side" -; finish_waiter "w2-$side" || true; return; }
    if finish_waiter "w2-$side"; then
        t1=$DONE_AT
        io1=$(disk_counters)
        record W2 seconds "$side" "$(elapsed "$t0" "$t1")"
        # Device requests per maildir delivery (background writeback included).
        record W2 disk_writes_per_dlv "$side" "$(echo "$io0 $io1" | awk -v n="$W2_RCPTS" '{ printf "%.3f", ($3 - $1) / n }')"
        record W2 disk_flushes_per_dlv "$side" "$(echo "$io0 $io1" | awk -v n="$W2_RCPTS" '{ printf "%.3f", ($4 - $2) / n }')"
    else
        record W2 seconds "$side" -
    fi
}

w3() {
    local side=$1 port=$2 t0 t1
    note "W3 $side: one message to $W3_RCPTS discarding recipients"
    queue_mark "$side"
    start_queue_waiter "$side" "w3-$side" "$TIMEOUT"
    settle
    t0=$(submit "$side" "$port" 'trash-{i}@example.org' "$W3_RCPTS") \
        || { record W3 seconds "$side" -; finish_waiter "w3-$side" || true; return; }
    if finish_waiter "w3-$side"; then
        t1=$DONE_AT
        record W3 seconds "$side" "$(elapsed "$t0" "$t1")"
    else
        record W3 seconds "$side" -
    fi
}

w4() {
    local side=$1 port=$2 t0 t1 sent
    note "${W4_LABEL:-W4} $side: one message to $W4_RCPTS recipients over $W4_DOMAINS domains (loopback sink)"
    queue_mark "$side"
    # A shorter bound: a side without remote delivery would only wait out the timeout.
    start_queue_waiter "$side" "w4-$side" "$W4_TIMEOUT"
    settle
    t0=$(submit "$side" "$port" 'r{i}@d{d}.test' "$W4_RCPTS" "$W4_DOMAINS") || {
        record "${W4_LABEL:-W4}" seconds "$side" -; record "${W4_LABEL:-W4}" rcpts_per_s "$side" -
        finish_waiter "w4-$side" || true
        return
    }
    if finish_waiter "w4-$side"; then
        t1=$DONE_AT
        # Every recipient must have reached the sink, or the figure means nothing.
        if [ "$side" = mta ]; then
            sent=$(grep -c 'delivery [0-9]*: success' "$MTA_LOG" || true)
            sent=$((sent - MTA_LOCAL_SUCCESSES))
        else
            sent=$(grep 'status=sent' "$PF/maillog" | grep -c 'relay=127.0.0.1' || true)
        fi
        note "${W4_LABEL:-W4} $side: $sent recipient deliveries to the sink logged"
        record "${W4_LABEL:-W4}" seconds "$side" "$(elapsed "$t0" "$t1")"
        record "${W4_LABEL:-W4}" rcpts_per_s "$side" "$(div "$W4_RCPTS" "$(elapsed "$t0" "$t1")")"
    else
        record "${W4_LABEL:-W4}" seconds "$side" -
        record "${W4_LABEL:-W4}" rcpts_per_s "$side" -
    fi
}

# w5 LABEL SIDE PORT ROOT_PID [CAFILE]: LABEL W5 (idle after EHLO) or W5TLS (CAFILE given:
# idle after STARTTLS and a second EHLO).
w5() {
    local label=$1 side=$2 port=$3 root_pid=$4 cafile=${5:-} before after held client
    local ready=$WORK/$label-$side.ready
    note "$label $side: $W5_SESSIONS idle sessions${cafile:+ after STARTTLS}"
    [ -n "$root_pid" ] || { record "$label" rss_kb_per_session "$side" -; return; }
    sleep 2
    before=$(tree_rss_kb "$root_pid")
    $LOAD idle 127.0.0.1 "$port" "$W5_SESSIONS" "$TIMEOUT" "$ready" ${cafile:+"$cafile"} >>"$OUT.log" 2>&1 &
    client=$!
    PIDS+=("$client")
    if wait_for "$TIMEOUT" bash -c "test -f '$ready' || ! kill -0 $client 2>/dev/null" && [ -f "$ready" ]; then
        sleep 1
        after=$(tree_rss_kb "$root_pid")
        held=$(awk '{ print $2 }' "$ready")
        note "$label $side: tree RSS $before KB before, $after KB with $held sessions"
        if [ "$held" != "$W5_SESSIONS" ]; then
            note "$label $side: the server refused sessions beyond $held (421): per-session figure over $held"
            echo "$label $side held only $held of $W5_SESSIONS sessions (421 beyond)" >>"$WORK/notes"
        fi
        record "$label" rss_kb_per_session "$side" "$(div $((after - before)) "$held")"
        rm -f "$ready"
    else
        record "$label" rss_kb_per_session "$side" -
    fi
    wait "$client" 2>/dev/null || true
}

# CPU counters of the whole machine from /proc/stat: prints "busy total" in ticks.
machine_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat; }

# w6 SIDE PORT ROOT_PID
w6() {
    local side=$1 port=$2 root_pid=$3 out secs c0 c1 s0 s1
    note "W6 $side: $W6_MSGS messages x $MSG_SIZE bytes, each on its own connection with STARTTLS, $W6_SESSIONS at a time"
    settle
    c0=$(machine_ticks)
    s0=$(tree_cpu_ticks "$root_pid")
    if ! out=$(timeout "$TIMEOUT" $LOAD tls 127.0.0.1 "$port" bench@example.com w1@example.org \
        "$W6_MSGS" "$MSG_SIZE" "$W6_SESSIONS" "$TLS_CA" 2>&1); then
        echo "W6 $side: $out" >>"$OUT.log"
        record W6 tls_msgs_per_s "$side" -
        return
    fi
    c1=$(machine_ticks)
    s1=$(tree_cpu_ticks "$root_pid")
    echo "$out" | sed "s/^/W6 $side: /" >>"$OUT.log"
    secs=$(echo "$out" | awk '/^sent/ { print $3 }')
    # Is the client the bottleneck? Its own CPU (in cores, over the client's wall time)
    # against the server's (its whole process tree, deliveries during the load included)
    # and the whole machine's busy share over the same interval.
    note "W6 $side: $(echo "$out" | grep '^client cpu' | awk '{ print "client used", $5, "cores (" $3 " s user, " $4 " s sys, " $7 " processes)" }');" \
        "server used $(awk -v a="$s0" -v b="$s1" -v t="$secs" -v n="$W6_MSGS" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (t > 0) printf "%.2f cores (%.2f ms per message)", (b - a) / hz / t, 1000 * (b - a) / hz / n; else print "?" }');" \
        "machine busy $(echo "$c0 $c1" | awk -v n="$(nproc)" '{ if ($4 > $2) printf "%.0f%% of %d cores", 100 * ($3 - $1) / ($4 - $2), n; else print "?" }')"
    record W6 tls_msgs_per_s "$side" "$(div "$W6_MSGS" "$secs")"
}

W7_FAILED=0
w7() {
    local out secs rate
    note "W7 mta: $W6_MSGS messages, each on its own STARTTLS connection to the submission port with AUTH PLAIN"
    settle
    if ! out=$(SMTPLOAD_AUTH=bench:benchpw timeout "$TIMEOUT" $LOAD tls 127.0.0.1 "$SUB_PORT" \
        bench@example.com w1@example.org "$W6_MSGS" "$MSG_SIZE" "$W6_SESSIONS" "$TLS_CA" 2>&1); then
        echo "W7 mta: $out" >>"$OUT.log"
        echo "W7 mta: AUTH + message per STARTTLS connection failed: $(echo "$out" | tail -1)" >>"$WORK/notes"
        W7_FAILED=1
        return 0
    fi
    echo "$out" | sed "s/^/W7 mta: /" >>"$OUT.log"
    secs=$(echo "$out" | awk '/^sent/ { print $3 }')
    rate=$(div "$W6_MSGS" "$secs")
    note "W7 mta auth_tls_msgs_per_s = $rate"
    echo "W7 mta: AUTH PLAIN (Argon2id) + one message per STARTTLS connection: $rate msgs/s (round $round)" >>"$WORK/notes"
}

# W1M: the cost of the metrics (issue 20). W1 on a freshly restarted mta, alternately without
# control/metrics and with it and its endpoint scraped once a second, E2E_W1M_PAIRS times
# (default 3) after one unrecorded warm-up run. Each run gets a new, empty maildir `new/`
# (a directory that held 5,000 files stays large, and the run after it was 15% slower with
# no metrics at all). A note per pair and one with the median ratio (with metrics / without).
fresh_w1_maildir() {
    local new=$1/w1/Maildir/new
    mv "$new" "$new.old" && mkdir "$new" && chown --reference="$new.old" "$new" &&
        chmod --reference="$new.old" "$new" && rm -rf "$new.old"
}
median_of() { # the median of the numeric arguments ("-" ones skipped), or "-"
    printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -n |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
W1M_RATE=
w1m_run() { # label metrics(0|1) port homes: sets W1M_RATE
    local label=$1 with=$2 port=$3 homes=$4 mport scraper=
    rm -f "$MTA_ROOT/control/metrics"
    if [ "$with" = 1 ]; then
        mport=$(free_port)
        echo "127.0.0.1:$mport" >"$MTA_ROOT/control/metrics"
    fi
    mta_stop
    mta_start
    fresh_w1_maildir "$homes"
    if [ "$with" = 1 ]; then
        (
            while sleep 1; do
                { exec 3<>"/dev/tcp/127.0.0.1/$mport" && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3 >/dev/null; } 2>/dev/null || true
                exec 3<&- 2>/dev/null || true
            done
        ) &
        scraper=$!
    fi
    W1_LABEL=$label w1 mta "$port" "$homes"
    if [ -n "$scraper" ]; then
        kill "$scraper" 2>/dev/null || true
        wait "$scraper" 2>/dev/null || true
    fi
    rm -f "$MTA_ROOT/control/metrics"
    # Not printed: a $(...) subshell would lose mta_start's MTA_PID.
    W1M_RATE=$(awk -v l="$label" '$1 == l && $2 == "e2e_msgs_per_s" { v = $4 } END { print v }' "$WORK/w1m.results")
}
w1m() {
    local port=$1 homes=$2 main=$RESULTS pair a b ratios= withs= withouts=
    RESULTS=$WORK/w1m.results # the table compares mta with Postfix: these stay apart
    w1m_run W1W 0 "$port" "$homes"
    for ((pair = 1; pair <= ${E2E_W1M_PAIRS:-3}; pair++)); do
        w1m_run "W1B$pair" 0 "$port" "$homes"
        a=$W1M_RATE
        w1m_run "W1M$pair" 1 "$port" "$homes"
        b=$W1M_RATE
        withouts="$withouts $a"
        withs="$withs $b"
        ratios="$ratios $(awk -v a="$b" -v b="$a" 'BEGIN { if (b > 0 && a > 0) printf "%.3f", a / b; else print "-" }')"
        echo "W1M mta: pair $pair: with metrics scraped every second $b msgs/s, without $a msgs/s (round $round)" >>"$WORK/notes"
    done
    RESULTS=$main
    a=$(median_of $withouts)
    b=$(median_of $withs)
    echo "W1M mta: W1 with metrics scraped every second / without: median rates $b / $a msgs/s = $(awk -v a="$b" -v b="$a" 'BEGIN { if (b > 0 && a > 0) printf "%.3f", a / b; else print "-" }'); per pair:$ratios, median $(median_of $ratios) (round $round)" >>"$WORK/notes"
}

# W4D: the cost of DKIM signing (issue 19). W4 twice more on freshly restarted servers:
# without keys, then with an RSA-2048 key for the From: domain (example.com), so every
# remote job signs. A note with the ratio (signed / unsigned, target >= 0.8).
w4d() {
    local port=$1 main=$RESULTS a b
    RESULTS=$WORK/w4d.results
    mta_stop
    mta_start
    W4_LABEL=W4B w4 mta "$port"
    "$MTA_BIN" --root "$MTA_ROOT" dkim keygen example.com e2e >/dev/null 2>>"$OUT.log"
    mta_stop
    mta_start
    W4_LABEL=W4D w4 mta "$port"
    rm -rf "$MTA_ROOT/control/dkim"
    RESULTS=$main
    a=$(awk '$1 == "W4B" && $2 == "rcpts_per_s" { v = $4 } END { print v }' "$WORK/w4d.results")
    b=$(awk '$1 == "W4D" && $2 == "rcpts_per_s" { v = $4 } END { print v }' "$WORK/w4d.results")
    echo "W4D mta: W4 with DKIM signing (RSA-2048): $b rcpts/s, without: $a rcpts/s, ratio $(awk -v a="$b" -v b="$a" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }') (round $round)" >>"$WORK/notes"
}

# W1C: the cost of the checks on mail from outside (issue 19). W1 twice more on freshly
# restarted servers: from a relay client (no checks), then with relayclients empty (so the
# load counts as outside and every message is checked) against a loopback DNS responder
# (fakedns.py) publishing `v=spf1 ip4:127.0.0.1 -all` for the sender's domain. A note with
# the ratio (checked / unchecked).
w1c() {
    local port=$1 homes=$2 main=$RESULTS portfile=$WORK/fakedns.port dns a b
    RESULTS=$WORK/w1c.results
    python3 "$HERE/fakedns.py" "$portfile" "example.com=v=spf1 ip4:127.0.0.1 -all" &
    dns=$!
    PIDS+=("$dns")
    wait_for 10 test -s "$portfile" || die "fakedns.py did not start"
    cp "$MTA_ROOT/control/relayclients" "$WORK/relayclients.saved" 2>/dev/null || true
    cp "$MTA_ROOT/control/dnsservers" "$WORK/dnsservers.saved" 2>/dev/null || true
    # Baseline: the same server set-up, mail from a relay client (no checks).
    mta_stop
    mta_start
    find "$homes/w1/Maildir/new" -type f -delete
    W1_LABEL=W1N w1 mta "$port" "$homes"
    : >"$MTA_ROOT/control/relayclients"
    echo "127.0.0.1:$(cat "$portfile")" >"$MTA_ROOT/control/dnsservers"
    mta_stop
    mta_start
    find "$homes/w1/Maildir/new" -type f -delete
    W1_LABEL=W1C w1 mta "$port" "$homes"
    if ! grep -rqs 'spf=pass' "$homes/w1/Maildir/new" ; then
        echo "W1C mta: no Authentication-Results with spf=pass in the delivered mail" >>"$WORK/notes"
    fi
    rm -f "$MTA_ROOT/control/relayclients" "$MTA_ROOT/control/dnsservers"
    cp "$WORK/relayclients.saved" "$MTA_ROOT/control/relayclients" 2>/dev/null || true
    cp "$WORK/dnsservers.saved" "$MTA_ROOT/control/dnsservers" 2>/dev/null || true
    kill "$dns" 2>/dev/null || true
    RESULTS=$main
    a=$(awk '$1 == "W1N" && $2 == "e2e_msgs_per_s" { v = $4 } END { print v }' "$WORK/w1c.results")
    b=$(awk '$1 == "W1C" && $2 == "e2e_msgs_per_s" { v = $4 } END { print v }' "$WORK/w1c.results")
    echo "W1C mta: W1 from outside with SPF, DKIM and DMARC checks (loopback DNS): $b msgs/s, from a relay client: $a msgs/s, ratio $(awk -v a="$b" -v b="$a" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }') (round $round)" >>"$WORK/notes"
}

# --- the run ---------------------------------------------------------------------------------
# want W: true if workload W is selected (E2E_WORKLOADS, default all seven).
want() { case " ${E2E_WORKLOADS:-W1 W2 W3 W4 W5 W6 W5TLS W7 W1M W4D W1C} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
MTA_LOCAL_SUCCESSES=0
run_mta() {
    note "== mta ($MTA_BIN)"
    mta_setup
    mta_start
    if [ "${E2E_PERF:-0}" = 1 ]; then
        perf record -a ${E2E_PERF_EVENTS:--e cpu-clock -g -F ${E2E_PERF_HZ:-499}} -o "$OUT.perf.data" >/dev/null 2>>"$OUT.log" &
        PERF_PID=$!
    fi
    want W1 && w1 mta "$MTA_PORT" "$MTA_HOMES"
    want W2 && w2 mta "$MTA_PORT" "$MTA_HOMES"
    want W3 && w3 mta "$MTA_PORT"
    MTA_LOCAL_SUCCESSES=$(grep -c 'delivery [0-9]*: success' "$MTA_LOG" || true)
    want W4 && w4 mta "$MTA_PORT"
    if [ -n "$PERF_PID" ]; then
        kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true; PERF_PID=""
    fi
    want W6 && w6 mta "$MTA_PORT" "$MTA_PID"
    want W7 && w7
    want W1M && w1m "$MTA_PORT" "$MTA_HOMES"
    want W4D && w4d "$MTA_PORT"
    want W1C && w1c "$MTA_PORT" "$MTA_HOMES"
    # W5 and W5TLS each on a freshly started server, so idle processes and caches of the
    # workloads before do not count.
    mta_stop
    if want W5; then
        mta_start
        w5 W5 mta "$MTA_PORT" "$MTA_PID"
        mta_stop
    fi
    if want W5TLS; then
        mta_start
        w5 W5TLS mta "$MTA_PORT" "$MTA_PID" "$TLS_CA"
        mta_stop
    fi
    cp "$MTA_LOG" "$OUT.mta.log"
}
run_postfix() {
    note "== postfix ($(postconf -d -h mail_version 2>/dev/null || echo '?'))"
    pf_setup
    pf_start
    want W1 && w1 postfix "$PF_PORT" "$PF_HOMES"
    want W2 && w2 postfix "$PF_PORT" "$PF_HOMES"
    want W3 && w3 postfix "$PF_PORT"
    want W4 && w4 postfix "$PF_PORT"
    want W6 && w6 postfix "$PF_PORT" "$(pf_master_pid)"
    pf_stop
    if want W5; then
        pf_start
        w5 W5 postfix "$PF_PORT" "$(pf_master_pid)"
        pf_stop
    fi
    if want W5TLS; then
        pf_start
        w5 W5TLS postfix "$PF_PORT" "$(pf_master_pid)" "$TLS_CA"
        pf_stop
    fi
    cp "$PF/maillog" "$OUT.postfix.log" 2>/dev/null || true
}

ROUNDS=${E2E_ROUNDS:-1}
for ((round = 1; round <= ROUNDS; round++)); do
    set_round "$round"
    [ "$ROUNDS" = 1 ] || note "== round $round of $ROUNDS"
    case "${E2E_ONLY:-both}" in
        mta) run_mta ;;
        postfix) run_postfix ;;
        *) run_mta; run_postfix ;;
    esac
done

# --- interop: both servers at once, TLS both ways ------------------------------------------
# (a) Postfix's smtp client -> mta: a message submitted to Postfix for w1@pf2mta.test, which
#     Postfix routes to [127.0.0.1]:MTA_PORT with smtp_tls_security_level encrypt (an
#     smtp_tls_policy_maps entry) and mta takes as local (locals, rcpthosts).
# (b) mta -> Postfix's smtpd: messages submitted to mta for w1@mta2pf.test (tlsdestinations
#     encrypt) and w1@mta2pfv.test (verify: the certificate must chain to control/tlsca.pem,
#     the run's certificate, and name 127.0.0.1, the smtproutes host mta checks it against),
#     both routed to 127.0.0.1:PF_PORT; Postfix delivers them to its W1 maildir.
# Each side's log and the delivered messages are checked. Sets INTEROP to "passed" or to
# what failed; the caller fails the run after printing the table.
INTEROP=""
interop_fail() { INTEROP=${INTEROP:-"FAILED: $*"}; note "interop: FAILED: $*"; } # keeps the first
files_in() { find "$1" -type f 2>/dev/null | wc -l; }
has_files() { [ "$(files_in "$1")" -ge "$2" ]; } # has_files DIR N
interop() {
    local limit=60 c f
    note "== interop: Postfix and mta at once, TLS both ways"
    set_round interop
    mta_setup
    c=$MTA_ROOT/control
    echo pf2mta.test >>"$c/locals"
    echo pf2mta.test >>"$c/rcpthosts"
    echo sasl2mta.test >>"$c/locals"
    echo sasl2mta.test >>"$c/rcpthosts"
    echo "mta2pf.test:127.0.0.1:$PF_PORT" >>"$c/smtproutes"
    echo "mta2pfv.test:127.0.0.1:$PF_PORT" >>"$c/smtproutes"
    printf 'mta2pf.test:encrypt\nmta2pfv.test:verify\n' >"$c/tlsdestinations"
    cp "$TLS_CA" "$c/tlsca.pem"
    pf_setup
    postconf -c "$PF_CONF" -e "virtual_mailbox_domains = example.org, mta2pf.test, mta2pfv.test" \
        "smtp_tls_loglevel = 1" "smtp_tls_policy_maps = texthash:$PF_CONF/tls_policy"
    printf '[127.0.0.1]:%s encrypt\n[127.0.0.1]:%s encrypt\n' "$MTA_PORT" "$SUB_PORT" >"$PF_CONF/tls_policy"
    printf '/@pf2mta\\.test$/\tsmtp:[127.0.0.1]:%s\n' "$MTA_PORT" >>"$PF_CONF/transport"
    # (c) Postfix's smtp client logs in (SASL PLAIN, Cyrus's client plugins) to mta's
    # submission port, over STARTTLS.
    printf '/@sasl2mta\\.test$/\tsmtp:[127.0.0.1]:%s\n' "$SUB_PORT" >>"$PF_CONF/transport"
    printf '[127.0.0.1]:%s bench:benchpw\n' "$SUB_PORT" >"$PF_CONF/sasl_passwd"
    postconf -c "$PF_CONF" -e "smtp_sasl_auth_enable = yes" \
        "smtp_sasl_password_maps = texthash:$PF_CONF/sasl_passwd" \
        "smtp_sasl_security_options = noanonymous" "smtp_sasl_tls_security_options = noanonymous"
    printf 'w1@mta2pf.test w1/Maildir/\nw1@mta2pfv.test w1/Maildir/\n' >>"$PF_CONF/vmailbox"
    pf_start
    mta_start

    # (a) Postfix -> mta
    if ! $LOAD list 127.0.0.1 "$PF_PORT" bench@example.com w1@pf2mta.test 1 "$MSG_SIZE" >>"$OUT.log" 2>&1; then
        interop_fail "(a) Postfix refused the message for w1@pf2mta.test"
    elif ! wait_for "$limit" has_files "$MTA_HOMES/w1/Maildir/new" 1; then
        interop_fail "(a) no message from Postfix in mta's maildir after ${limit} s (Postfix: $(grep 'pf2mta' "$PF/maillog" | tail -1))"
    else
        f=$(find "$MTA_HOMES/w1/Maildir/new" -type f | head -1)
        grep -q "smtp: tls 127.0.0.1 TLSv1\." "$MTA_LOG" || interop_fail "(a) mta's log has no 'smtp: tls 127.0.0.1 TLSv1.' line"
        grep -q "with ESMTPS (TLSv1\." "$f" || interop_fail "(a) the delivered message has no 'with ESMTPS' Received line from mta"
        grep -q "TLS connection established to 127.0.0.1\[127.0.0.1\]:$MTA_PORT" "$PF/maillog" \
            || interop_fail "(a) Postfix's maillog shows no TLS connection to mta"
        wait_for "$limit" pf_logged w1@pf2mta.test "relay=127.0.0.1\[127.0.0.1\]:$MTA_PORT.*status=sent" \
            || interop_fail "(a) Postfix's maillog shows no status=sent to mta"
        [ -n "$INTEROP" ] || note "interop (a) Postfix -> mta: $(grep -o "TLS connection established to .*" "$PF/maillog" | head -1); mta: $(grep -m1 -o "smtp: tls 127.0.0.1 .*" "$MTA_LOG")"
    fi

    # (c) Postfix -> mta's submission port with SASL over STARTTLS
    if ! $LOAD list 127.0.0.1 "$PF_PORT" bench@example.com w1@sasl2mta.test 1 "$MSG_SIZE" >>"$OUT.log" 2>&1; then
        interop_fail "(c) Postfix refused the message for w1@sasl2mta.test"
    elif ! wait_for "$limit" has_files "$MTA_HOMES/w1/Maildir/new" 2; then
        interop_fail "(c) no message from Postfix's SASL client in mta's maildir after ${limit} s (Postfix: $(grep 'sasl2mta' "$PF/maillog" | tail -1); mta: $(grep 'auth ' "$MTA_LOG" | tail -1))"
    else
        grep -q "auth ok bench 127.0.0.1" "$MTA_LOG" || interop_fail "(c) mta's log has no 'auth ok bench 127.0.0.1' line"
        grep -l "with ESMTPSA (TLSv1\." "$MTA_HOMES/w1/Maildir/new"/* >/dev/null 2>&1 \
            || interop_fail "(c) no delivered message says 'with ESMTPSA'"
        wait_for "$limit" pf_logged w1@sasl2mta.test "status=sent" \
            || interop_fail "(c) Postfix's maillog shows no status=sent for w1@sasl2mta.test"
        [ -n "$INTEROP" ] || note "interop (c) Postfix SASL -> mta submission: $(grep -m1 -o "auth ok bench .*" "$MTA_LOG")"
    fi

    # (b) mta -> Postfix, under encrypt and under verify
    local d
    for d in mta2pf.test mta2pfv.test; do
        $LOAD list 127.0.0.1 "$MTA_PORT" bench@example.com "w1@$d" 1 "$MSG_SIZE" >>"$OUT.log" 2>&1 \
            || interop_fail "(b) mta refused the message for w1@$d"
    done
    if ! wait_for "$limit" has_files "$PF_HOMES/w1/Maildir/new" 2; then
        interop_fail "(b) $(files_in "$PF_HOMES/w1/Maildir/new") of 2 messages from mta in Postfix's maildir after ${limit} s; mta: $(grep -E 'delivery [0-9]+: (deferral|failure)' "$MTA_LOG" | tail -1)"
    else
        [ "$(grep -c "remote: tls 127.0.0.1 127.0.0.1 TLSv1\." "$MTA_LOG")" -ge 2 ] \
            || interop_fail "(b) mta's log has fewer than two 'remote: tls 127.0.0.1 127.0.0.1 TLSv1.' lines"
        wait_for "$limit" log_count_at_least "$MTA_LOG" 'delivery [0-9]+: success' 4 \
            || interop_fail "(b) mta's log has fewer than four 'delivery N: success' lines (two local, two remote)"
        [ "$(grep -c "TLS connection established from" "$PF/maillog")" -ge 2 ] \
            || interop_fail "(b) Postfix's maillog has fewer than two 'TLS connection established from' lines"
        for d in mta2pf.test mta2pfv.test; do
            wait_for "$limit" pf_logged "w1@$d" "status=sent" \
                || interop_fail "(b) Postfix's maillog shows no status=sent for w1@$d"
        done
        [ "$(grep -l "with ESMTPS" "$PF_HOMES/w1/Maildir/new"/* | wc -l)" -ge 2 ] \
            || interop_fail "(b) the messages Postfix delivered do not say 'with ESMTPS'"
        [ -n "$INTEROP" ] || note "interop (b) mta -> Postfix: $(grep -m1 -o "remote: tls .*" "$MTA_LOG"); Postfix: $(grep -m1 -o "TLS connection established from .*" "$PF/maillog")"
    fi
    mta_stop
    pf_stop
    cp "$MTA_LOG" "$OUT.interop.mta.log"
    cp "$PF/maillog" "$OUT.interop.postfix.log" 2>/dev/null || true
    [ -n "$INTEROP" ] || { INTEROP=passed; note "interop: passed"; }
}
if [ "${E2E_ONLY:-both}" = both ] && [ "${E2E_INTEROP:-1}" != 0 ]; then
    interop
fi

# --- the table: ratio = how many times better mta is (rates mta/postfix, times and memory
# postfix/mta), so > 1 always favours mta.
table() {
    printf '%-8s %-20s %12s %12s %8s\n' workload metric mta postfix ratio
    # With several rounds, each cell is the median of the rounds that produced a figure.
    awk '
        function median(key, side,    n, i, j, t, a) {
            n = cnt[key, side]
            if (n == 0) return "-"
            for (i = 1; i <= n; i++) a[i] = val[key, side, i] + 0
            for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            if (n % 2) return val_fmt(a[(n + 1) / 2])
            return val_fmt((a[n / 2] + a[n / 2 + 1]) / 2)
        }
        function val_fmt(x) { return (x >= 10) ? sprintf("%.1f", x) : sprintf("%.3f", x) }
        {
            key = $1 " " $2
            if (!(key in seen)) { order[++n] = key; seen[key] = 1 }
            if ($4 != "-") val[key, $3, ++cnt[key, $3]] = $4
        }
        END {
            for (i = 1; i <= n; i++) {
                split(order[i], k, " ")
                m = median(order[i], "mta"); p = median(order[i], "postfix")
                r = "-"
                if (m != "-" && p != "-" && m + 0 > 0 && p + 0 > 0) {
                    if (k[2] ~ /per_s$/) r = sprintf("%.2fx", m / p); else r = sprintf("%.2fx", p / m)
                }
                printf "%-8s %-20s %12s %12s %8s\n", k[1], k[2], m, p, r
            }
        }' "$RESULTS"
}
{
    echo "# mta e2e benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -r)"
    echo "# mta $REV, postfix $(postconf -d -h mail_version 2>/dev/null || echo '?')"
    echo "# ratio: how many times better mta is (rates mta/postfix; seconds and KB postfix/mta)"
    [ "$ROUNDS" = 1 ] || echo "# each figure: the median of $ROUNDS rounds (mta then postfix in each)"
    [ -z "${E2E_IOPS:-}" ] || echo "# slow disk: both servers' writes capped at $E2E_IOPS requests/s ($IO_CGROUP)"
    table
    if [ -f "$WORK/notes" ]; then sort -u "$WORK/notes" | sed 's/^/# note: /'; fi
    [ -z "$INTEROP" ] || echo "# interop with Postfix, TLS both ways (Postfix smtp -> mta encrypt; mta -> Postfix smtpd encrypt and verify): $INTEROP"
} | tee "$OUT"
case "$INTEROP" in FAILED*) die "interop with Postfix $INTEROP (logs: $OUT.interop.*.log)" ;; esac
[ "$W7_FAILED" = 0 ] || die "W7 (AUTH over STARTTLS) failed; see $OUT.log"
exit
}
