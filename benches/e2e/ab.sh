#!/bin/bash
# A/B of two mta builds on the end-to-end workloads, mta alone, alternating rounds, and a
# table of medians (issue 14's "within 5% of before"):
#
#   sudo benches/e2e/ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [OUTDIR]
#
# E2E_WORKLOADS (default "W1 W2 W3 W4 W5") and the other run.sh knobs pass through. Each
# round runs run.sh once per build, old first in odd rounds and new first in even ones:
# the second run of a pair pays for the first one's disk writeback, so a fixed order would
# favour the build that always runs first. Every run.sh makes its own work directory, so
# no run inherits another's grown directories; those directories are removed only after
# the last round (E2E_KEEP=1 to run.sh): on ext4 without a journal the inode allocator
# skips every inode freed in the last minute, or six while its table block is dirty, so
# one run's clean-up would slow the next run's file creation. Results and logs stay in
# OUTDIR.
set -u
OLD=$1; NEW=$2; ROUNDS=${3:-5}; OUT=${4:-$(mktemp -d /var/tmp/mta-ab.XXXXXX)}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
for ((r = 1; r <= ROUNDS; r++)); do
    order="old new"; [ $((r % 2)) -eq 0 ] && order="new old"
    for side in $order; do
        bin=$OLD; [ "$side" = new ] && bin=$NEW
        echo "== round $r $side $(date -u +%T)" >&2
        MTA_BIN=$bin E2E_ONLY=mta E2E_INTEROP=0 E2E_KEEP=1 E2E_WORKLOADS="${E2E_WORKLOADS:-W1 W2 W3 W4 W5}" \
            E2E_OUT="$OUT/$side-$r.txt" bash "$HERE/run.sh" >"$OUT/$side-$r.stdout" 2>"$OUT/$side-$r.stderr" ||
            echo "round $r $side: run.sh failed (see $OUT/$side-$r.stderr)" >&2
    done
done
# The runs' work directories, kept until now (run.sh says "run.sh: kept DIR").
sed -n 's/^run\.sh: kept //p' "$OUT"/*.stderr | while read -r dir; do
    case $dir in */mta-e2e.*) rm -rf "$dir" ;; esac
done
python3 - "$OUT" <<'PY'
import collections, glob, statistics, sys
out = sys.argv[1]
d = collections.defaultdict(lambda: collections.defaultdict(list))
for side in ("old", "new"):
    for f in sorted(glob.glob(f"{out}/{side}-*.txt")):
        for line in open(f):
            p = line.split()
            if len(p) < 3 or p[0].startswith("#") or p[0] == "workload":
                continue
            try:
                d[(p[0], p[1])][side].append(float(p[2]))
            except ValueError:
                pass
print(f"{'workload':8} {'metric':24} {'old':>10} {'new':>10} {'new/old':>8}  rounds (old / new)")
for (w, m), v in d.items():
    if v["old"] and v["new"]:
        a, b = statistics.median(v["old"]), statistics.median(v["new"])
        print(f"{w:8} {m:24} {a:10.3f} {b:10.3f} {b / a if a else 0:8.3f}  {v['old']} / {v['new']}")
PY
echo "results in $OUT" >&2
