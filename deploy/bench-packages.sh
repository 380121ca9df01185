#!/bin/sh
# Debian packages the DNS benchmark (bench/dns.py) needs: dnsperf (the load generator) and dnsmasq-base
# (the peer, and the upstream both sides ask). Installs what is missing when run as root; otherwise
# names what to install. Idempotent.
set -eu
PATH="$PATH:/usr/sbin:/sbin"
need=""
command -v dnsperf >/dev/null 2>&1 || need="$need dnsperf"
command -v dnsmasq >/dev/null 2>&1 || need="$need dnsmasq-base"
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq $need
else
    echo "Please install these Debian packages first (as root): $need" >&2
    exit 1
fi
