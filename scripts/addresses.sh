#!/bin/bash
# Makes the addresses of one embedded SlapOS node local on lo, as root:
#   bash scripts/addresses.sh PREFIX       (e.g. fd6d:6169:6c00)
# Partition i has <prefix>::<i+2> (hexadecimal), for 32 partitions; each
# address gets a name in /etc/hosts. Idempotent; prints what it did.
# scripts/setup.sh runs it for SLAPOS_MAIL_IPV6_PREFIX, tests/harness.py for
# the prefix of each further node (a test worker's, a second computer's).
set -euo pipefail
IPV6_PREFIX=${1:?usage: $0 PREFIX}
if [ "$(cat /proc/sys/net/ipv6/conf/lo/disable_ipv6 2>/dev/null || echo 1)" != 0 ]; then
  sysctl -q -w net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.lo.disable_ipv6=0 \
    || { echo "addresses.sh: error: IPv6 is disabled on lo and cannot be enabled (net.ipv6.conf.lo.disable_ipv6)" >&2; exit 1; }
fi
present=$(ip -6 addr show dev lo)
added=0
for n in $(seq 2 33); do
  addr=$(printf '%s::%x' "$IPV6_PREFIX" "$n")
  grep -q "inet6 $addr/" <<<"$present" && continue
  ip -6 addr add "$addr/128" dev lo nodad
  added=$((added + 1))
done
echo "    $IPV6_PREFIX: $added added, $((32 - added)) already there"

# Names for those addresses, as a real node's addresses have: smtpd looks
# up the name of every client, and with no name (no DNS here) each lookup
# costs seconds, which would throttle the daemons and the benchmarks.
exec 8>/var/lock/slapos-mail-hosts.lock
flock 8
begin="# slapos-mail $IPV6_PREFIX (scripts/addresses.sh)"
end="# end slapos-mail $IPV6_PREFIX"
hosts=$(awk -v p="# slapos-mail $IPV6_PREFIX " -v e="$end" 'index($0, p) == 1 {skip = 1} !skip {print} $0 == e {skip = 0}' /etc/hosts)
{
  printf '%s\n' "$hosts" "$begin"
  for n in $(seq 2 33); do
    printf '%s::%x p%x-%s.slapos-mail.test\n' "$IPV6_PREFIX" "$n" "$n" "${IPV6_PREFIX//:/-}"
  done
  printf '%s\n' "$end"
} > /etc/hosts.slapos-mail
cat /etc/hosts.slapos-mail > /etc/hosts && rm /etc/hosts.slapos-mail
