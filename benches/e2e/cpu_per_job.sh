#!/bin/bash
# CPU time of mta's whole process tree per remote job, and the disk's cache flushes: one
# message to N recipients over D domains (default 20,000 over 2,000), routed by smtproutes
# to a loopback smtp-sink, the load of a ten-times-larger W4:
#
#   sudo benches/e2e/cpu_per_job.sh target/release/mta [N] [D]
#
# Prints the CPU ticks each process name used (mta-queue, mta-remote, ...), then
# cpu_us_per_job, the flushes and the wall time. Used for issue 14's per-job cost of the
# process split (BENCHMARKS.md). Needs root, smtp-sink (postfix), nc, bc and python3.
BIN=$1; N=${2:-20000}; DOM=${3:-2000}
HERE=$(cd "$(dirname "$0")" && pwd)
D=$(mktemp -d /var/tmp/cpujob.XXXXXX); chmod 755 "$D"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port); SINK=$(free_port)
"$BIN" --root "$D/r" init --hostname example.org >/dev/null
echo "127.0.0.1:$PORT" >"$D/r/control/listen"
echo $((N + 100)) >"$D/r/control/maxrcpt"
for ((i = 0; i < DOM; i++)); do echo "d$i.test:127.0.0.1:$SINK"; done >"$D/r/control/smtproutes"
smtp-sink -u nobody -m 1000 "127.0.0.1:$SINK" 1024 >/dev/null 2>&1 & S=$!
"$BIN" --root "$D/r" serve 2>"$D/log" & M=$!
for i in $(seq 50); do nc -z 127.0.0.1 "$PORT" 2>/dev/null && break; sleep 0.1; done
sleep 1
STAT=/sys/class/block/$(basename "$(df --output=source "$D" | tail -1)")/stat
flushes() { if [ -r "$STAT" ]; then awk '{ print ($16 == "" ? 0 : $16) }' "$STAT"; else echo 0; fi; }
tree() { local p=$1; echo "$p"; for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do tree "$c"; done; }
cpu() { local t=0; for p in $(tree $M); do s=($(cut -d' ' -f14,15,16,17 /proc/$p/stat 2>/dev/null)); t=$((t + ${s[0]:-0} + ${s[1]:-0} + ${s[2]:-0} + ${s[3]:-0})); done; echo $t; }
percomm() { for p in $(tree $M); do s=($(cut -d' ' -f14,15 /proc/$p/stat 2>/dev/null)); echo "$(cat /proc/$p/comm 2>/dev/null) $((${s[0]:-0} + ${s[1]:-0}))"; done | awk '{ a[$1] += $2 } END { for (k in a) print k, a[k] }' | sort; }
P0=$(percomm); C0=$(cpu); F0=$(flushes); T0=$(date +%s.%N)
python3 "$HERE/smtpload.py" list 127.0.0.1 "$PORT" bench@example.com 'r{i}@d{d}.test' "$N" 2048 "$DOM" >/dev/null ||
    echo "submission failed" >&2
for ((i = 0; i < 6000; i++)); do # at most ten minutes
    [ "$(grep -c ': success' "$D/log")" -ge "$N" ] && break
    kill -0 $M 2>/dev/null || { echo "mta serve died:" >&2; tail -3 "$D/log" >&2; break; }
    sleep 0.1
done
T1=$(date +%s.%N); C1=$(cpu); F1=$(flushes); P1=$(percomm)
HZ=$(getconf CLK_TCK)
join <(echo "$P0") <(echo "$P1") | awk '{ printf "%s %d ticks  ", $1, $3 - $2 } END { print "" }'
echo "$(basename "$BIN") cpu_us_per_job $(echo "scale=1; ($C1-$C0)*1000000/$HZ/$DOM" | bc) flushes $((F1 - F0)) wall_s $(echo "$T1-$T0" | bc)"
kill $M $S; wait $M 2>/dev/null; rm -rf "$D"
