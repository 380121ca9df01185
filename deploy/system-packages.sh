#!/bin/sh
# Debian packages the appliance's development set-up needs; with --test, also chromium and chromium-driver
# (the headless browser and its WebDriver for tests/browser, through Selenium) and nftables and iproute2
# (router mode's rules, tested in network namespaces by tests/deploy) and debootstrap (install.sh is run in
# a Debian 12 root made by the tests, which then boots it) and busybox (its udhcpc is the DHCP client of
# the children's devices there); with --bench, also what the
# benchmarks run against: dnsperf (the DNS load generator) and dnsmasq-base (the DNS peer, and the
# upstream both sides ask); e2guardian (the proxy peer), nginx-light (the origin) and wrk (the HTTP load
# generator) for bench/proxy.py. Installs what is missing when run as root (CI, a fresh Pi); otherwise
# names what to install. Idempotent.
set -eu
PATH="$PATH:/usr/sbin:/sbin"
need=""
python3 -c 'import ensurepip, venv' 2>/dev/null || need="$need python3-venv"
command -v make >/dev/null 2>&1 || need="$need make"
if [ "${1:-}" = "--test" ]; then
    command -v chromium >/dev/null 2>&1 || need="$need chromium"
    command -v chromedriver >/dev/null 2>&1 || need="$need chromium-driver"
    command -v nft >/dev/null 2>&1 || need="$need nftables"
    command -v ip >/dev/null 2>&1 || need="$need iproute2"
    command -v debootstrap >/dev/null 2>&1 || need="$need debootstrap"
    command -v busybox >/dev/null 2>&1 || need="$need busybox"
    command -v curl >/dev/null 2>&1 || need="$need curl"  # the Makefile fetches axe-core from npm
fi
if [ "${1:-}" = "--bench" ]; then
    command -v dnsperf >/dev/null 2>&1 || need="$need dnsperf"
    command -v dnsmasq >/dev/null 2>&1 || need="$need dnsmasq-base"
    command -v e2guardian >/dev/null 2>&1 || need="$need e2guardian"
    command -v nginx >/dev/null 2>&1 || need="$need nginx-light"
    command -v wrk >/dev/null 2>&1 || need="$need wrk"
fi
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
