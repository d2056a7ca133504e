#!/bin/bash
# CPU time of mta's whole process tree per message, under W1's load (N messages of 2 KB to
# one maildir user over 10 smtp-source sessions; default 5,000), and the wall rate:
#
#   sudo benches/e2e/cpu_per_msg.sh target/release/mta [N]
#
# The sum of utime+stime (and of reaped children's) over the server's process tree, read
# from /proc before and after the load: a figure much steadier than the wall rate on a
# shared machine. Used to measure what the process split costs per message (BENCHMARKS.md,
# "The process split"). Needs root, smtp-source (postfix), nc and bc.
#
# With CPU_METRICS=1 the server has control/metrics and a curl scrapes it once a second
# during the load (issue 20's metrics cost; the scraper's own CPU is not counted).
#
# Runs one after another are not alike: each removes its 10,000 files at the end, and on
# ext4 without a journal every file created near inodes freed in the last minute costs
# more (2026-12-04: 0.62-0.78 ms of CPU per message right after another run, 0.37-0.43
# after a minute's wait). CPU_SETTLE=61 syncs and waits that long before the load;
# CPU_KEEP=1 leaves the files (remove the /var/tmp/cpu.* directories afterwards).
BIN=$1; N=${2:-5000}
D=$(mktemp -d /var/tmp/cpu.XXXXXX); chmod 755 $D
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$BIN --root $D/r init --hostname example.org >/dev/null
mkdir -p $D/home/joe/Maildir/{tmp,new,cur}; chown -R 65534:65534 $D/home/joe; chmod 755 $D/home
echo "=joe:joe:65534:65534:$D/home/joe:::" > $D/r/users/assign; echo . >> $D/r/users/assign
echo "127.0.0.1:$PORT" > $D/r/control/listen; echo 200 > $D/r/control/concurrencyperip
MPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
[ -n "${CPU_METRICS:-}" ] && echo "127.0.0.1:$MPORT" > $D/r/control/metrics
$BIN --root $D/r serve 2> $D/log & M=$!
for i in $(seq 50); do nc -z 127.0.0.1 $PORT 2>/dev/null && break; sleep 0.1; done
sleep 1
if [ -n "${CPU_SETTLE:-}" ]; then sync; sleep "$CPU_SETTLE"; fi
tree() { local p=$1; echo $p; for c in $(cat /proc/$p/task/*/children 2>/dev/null); do tree $c; done; }
cpu() { local t=0; for p in $(tree $M); do s=($(cut -d' ' -f14,15,16,17 /proc/$p/stat 2>/dev/null)); t=$((t + ${s[0]:-0} + ${s[1]:-0} + ${s[2]:-0} + ${s[3]:-0})); done; echo $t; }
C0=$(cpu)
T0=$(date +%s.%N)
if [ -n "${CPU_METRICS:-}" ]; then
    (while sleep 1; do curl -sf http://127.0.0.1:$MPORT/metrics >/dev/null || echo "scrape failed" >&2; done) & S=$!
fi
smtp-source -m $N -s 10 -l 2048 -f a@example.net -t joe@example.org 127.0.0.1:$PORT
for ((i = 0; i < 12000; i++)); do # at most ten minutes
    [ $(ls $D/home/joe/Maildir/new | wc -l) -ge $N ] && break
    kill -0 $M 2>/dev/null || { echo "mta serve died:" >&2; tail -3 $D/log >&2; break; }
    sleep 0.05
done
T1=$(date +%s.%N)
C1=$(cpu)
[ -n "${S:-}" ] && kill $S
HZ=$(getconf CLK_TCK)
echo "$(basename $BIN)${CPU_METRICS:+ (metrics scraped)} cpu_ms_per_msg $(echo "scale=3; ($C1-$C0)*1000/$HZ/$N" | bc) wall_msgs_per_s $(echo "scale=1; $N/($T1-$T0)" | bc) procs $(tree $M | wc -l)"
kill $M; wait $M 2>/dev/null
[ -n "${CPU_KEEP:-}" ] || rm -rf $D
