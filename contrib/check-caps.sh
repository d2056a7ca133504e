#!/bin/sh
# How contrib/mta.service's CapabilityBoundingSet was checked without systemd as PID 1:
# run as root with `mta` on PATH; CAPS=-all,+... overrides the set (e.g. to drop one).
# Uses 127.0.0.1:25 and 127.0.0.1:19187; needs setpriv (util-linux), swaks and curl.
# Runs mta serve as root under the unit's capability bounding set and NoNewPrivileges,
# then: SMTP on port 25 to a user's Maildir, and an inject by an ordinary user (pickup).

CAPS="${CAPS:--all,+net_bind_service,+setuid,+setgid,+chown,+dac_override,+kill}"
T=$(mktemp -d /tmp/capcheck.XXXX); chmod 755 $T
R=$T/root
mta --root $R init --hostname example.org >/dev/null
echo "127.0.0.1:25" > $R/control/listen
echo "127.0.0.1:9" > $R/control/dnsservers
echo "127.0.0.1:19187" > $R/control/metrics
mkdir -p $T/home/joe/Maildir/new $T/home/joe/Maildir/cur $T/home/joe/Maildir/tmp
chown -R nobody:nogroup $T/home/joe
printf '=joe:joe:65534:65534:%s:::\n.\n' $T/home/joe > $R/users/assign
setpriv --no-new-privs --bounding-set=$CAPS --inh-caps=-all mta --root $R serve 2>$T/log &
PID=$!
sleep 1.5
timeout 20 swaks -s 127.0.0.1 -p 25 -f a@example.net -t joe@example.org --body "over smtp" >/dev/null
printf "Subject: pickup\n\nvia inject\n" | timeout 10 setpriv --reuid=nobody --regid=nogroup --clear-groups mta --root $R inject joe@example.org || echo "inject failed $?"
sleep 2
curl -m 5 -s http://127.0.0.1:19187/metrics | grep -E '^mta_(deliveries_total\{channel="local",result="success"\}|smtp_messages_total) ' || true
kill -TERM $PID; for i in $(seq 1 100); do kill -0 $PID 2>/dev/null || break; sleep 0.2; done; kill -9 $PID 2>/dev/null && echo "had to kill -9"; wait $PID; echo "exit $?"
echo "delivered: $(ls $T/home/joe/Maildir/new | wc -l)"
grep -E 'alert|warning|delivery [0-9]+:' $T/log || true
rm -rf $T
