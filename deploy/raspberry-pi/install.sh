#!/bin/sh
# Install or upgrade the appliance on Raspberry Pi OS Bookworm or Debian 12, as root:
#
#   sudo sh deploy/raspberry-pi/install.sh [--prefix /opt/appliance] [--wheels DIR] [--no-start]
#        [--preset NAME | --offline] [--lists-mirror URL] [--head-office-url URL --head-office-root FILE]
#
# Idempotent: a second run upgrades the program in place and keeps /etc/appliance and /var/lib/appliance.
# --wheels DIR installs the Python packages from a folder of wheels (`pip wheel . -w DIR` on a connected
# machine) instead of the package index: for a centre with a poor link, and for the test suite's chroot.
# --no-start enables the services for the next boot but starts nothing now (a chroot, an image being
# prepared): the first boot comes up as the centre's router.
# --head-office-url and --head-office-root: where head office publishes its signed bundles and its root
# (1.root.json, the only trust anchor a centre has); the sync timer then takes every new bundle.
# The filter lists: a first install fetches and compiles the list catalogue's `recommended` preset
# (docs/lists.md); --preset NAME picks another (`minimal` for a slow or metered link), --offline keeps
# the bundled demo lists (preset `demo`), --lists-mirror URL fetches from head office's or a local copy
# first (`<URL>/<list name>/<file>`). On a second run these change the kept configuration's lines for them
# and nothing else. When the download fails, the appliance still starts, on the bundled lists, and says
# "protection is minimal: lists not downloaded yet" until the nightly update (or `appliance lists
# compile`) brings the lists in.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
prefix=/opt/appliance
wheels=""
start=yes
hq_url=""
hq_root=""
preset=""
mirror=""
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --wheels) wheels=$2; shift 2 ;;
        --no-start) start=no; shift ;;
        --head-office-url) hq_url=$2; shift 2 ;;
        --head-office-root) hq_root=$2; shift 2 ;;
        --preset) preset=$2; shift 2 ;;
        --offline) preset=demo; shift ;;
        --lists-mirror) mirror=$2; shift 2 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo sh $0)" >&2; exit 1; }
if [ -n "$hq_url" ] || [ -n "$hq_root" ]; then
    [ -n "$hq_url" ] && [ -f "$hq_root" ] || {
        echo "install.sh: give both --head-office-url URL and --head-office-root FILE (head office's 1.root.json)" >&2
        exit 2
    }
fi
say() { printf '\n== %s\n' "$*"; }

say "Debian packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq systemd python3 python3-venv nftables dnsmasq iproute2 procps sqlite3 ca-certificates >/dev/null

say "The appliance user and folders"
getent group appliance >/dev/null || groupadd --system appliance
getent passwd appliance >/dev/null || useradd --system --gid appliance --home-dir /var/lib/appliance \
    --no-create-home --shell /usr/sbin/nologin appliance
install -d -m 0750 -o appliance -g appliance /var/lib/appliance
install -d -m 0750 -o root -g appliance /etc/appliance
install -d -m 0755 "$prefix" "$prefix/docs"

say "The program, in $prefix/venv"
[ -x "$prefix/venv/bin/python" ] || python3 -m venv "$prefix/venv"
if [ -n "$wheels" ]; then
    # The appliance's own wheel is among them (built by `pip wheel`): nothing is built here.
    "$prefix/venv/bin/pip" install --quiet --no-index --find-links "$wheels" --upgrade childsafe-appliance
else
    "$prefix/venv/bin/pip" install --quiet --upgrade "$repo"
fi
cp "$repo"/docs/*.md "$prefix/docs/"
app="$prefix/venv/bin/appliance"

say "Configuration (kept if present)"
if [ ! -f /etc/appliance/appliance.yaml ]; then
    install -m 0640 -o root -g appliance "$here/appliance-pi.yaml" /etc/appliance/appliance.yaml
    [ -n "$preset" ] || preset=recommended
fi
if [ -n "$preset" ] || [ -n "$mirror" ]; then
    # Only lists.preset (and lists.fetch.mirror) change: the rest of a kept file stays as the centre has it.
    [ -n "$preset" ] || preset=$("$prefix/venv/bin/python" -c '
import sys
from pathlib import Path
from appliance.config import load_config
print(load_config(Path(sys.argv[1])).catalogue.preset or "recommended")' /etc/appliance/appliance.yaml)
    "$app" lists preset "$preset" ${mirror:+--mirror "$mirror"} --config /etc/appliance/appliance.yaml
fi
if [ -n "$hq_url" ]; then
    say "Head office's bundles"
    install -m 0644 -o root -g appliance "$hq_root" /etc/appliance/head-office-root.json
    grep -q '^sync:' /etc/appliance/appliance.yaml || printf '\nsync:\n  url: %s\n  ring: stable\n' "$hq_url" \
        >> /etc/appliance/appliance.yaml
fi

say "Services (systemd units)"
sh "$here/render-units.sh" /etc/systemd/system "$prefix"

say "Router rules (nftables)"
install -d -m 0755 /etc/nftables.d
"$app" router rules --config /etc/appliance/appliance.yaml > /etc/nftables.d/appliance.nft
nft -c -f /etc/nftables.d/appliance.nft
[ -f /etc/nftables.conf ] || printf '#!/usr/sbin/nft -f\nflush ruleset\n' > /etc/nftables.conf
grep -q 'nftables.d/appliance.nft' /etc/nftables.conf || echo 'include "/etc/nftables.d/appliance.nft"' >> /etc/nftables.conf
install -d -m 0755 /etc/sysctl.d
cat > /etc/sysctl.d/90-appliance.conf <<'SYSCTL'
# The appliance routes the children's network (IPv4 only: the LAN gets no IPv6 router advertisements).
net.ipv4.ip_forward = 1
net.ipv6.conf.all.forwarding = 0
SYSCTL

say "The children's and the staff network's interfaces (systemd-networkd; kept if present)"
# The LAN port with the children's gateway address, and the staff network's own interface: VLAN 60 on the
# same cable (eth1.60) in the shipped files, or a second port. systemd-networkd (part of Debian's systemd)
# manages only these links; the WAN port stays with the system's own network set-up (ifupdown on Debian,
# NetworkManager on Raspberry Pi OS, told here to leave these two alone).
install -d -m 0755 /etc/systemd/network
for file in "$here"/network/*; do
    [ -f "/etc/systemd/network/$(basename "$file")" ] || install -m 0644 "$file" /etc/systemd/network/
done
interfaces=$("$prefix/venv/bin/python" -c '
import sys
from pathlib import Path
from appliance.config import load_config
router = load_config(Path(sys.argv[1])).router
print(router.lan_interface, router.staff_interface or "")' /etc/appliance/appliance.yaml)
if [ -d /etc/NetworkManager ]; then
    install -d -m 0755 /etc/NetworkManager/conf.d
    unmanaged=""
    for name in $interfaces; do unmanaged="${unmanaged:+$unmanaged;}interface-name:$name"; done
    cat > /etc/NetworkManager/conf.d/90-appliance.conf <<NM
# The appliance's LAN interfaces belong to systemd-networkd (install.sh wrote this).
[keyfile]
unmanaged-devices=$unmanaged
NM
fi

say "DHCP for the children's and the staff network (kept if present)"
install -d -m 0755 /etc/dnsmasq.d
[ -f /etc/dnsmasq.d/appliance.conf ] || cp "$here/dnsmasq-appliance.conf" /etc/dnsmasq.d/appliance.conf

say "SD card care: the system journal in memory"
install -d -m 0755 /etc/systemd/journald.conf.d
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n' > /etc/systemd/journald.conf.d/appliance.conf

say "The filter lists (downloaded and compiled: a few minutes for the recommended preset)"
log=/var/lib/appliance/install-compile.log
if ! runuser -u appliance -- env APPLIANCE_CONFIG=/etc/appliance/appliance.yaml "$app" lists compile >"$log" 2>&1; then
    index=$("$prefix/venv/bin/python" -c '
import sys
from pathlib import Path
from appliance.config import load_config
print(load_config(Path(sys.argv[1])).index_path)' /etc/appliance/appliance.yaml)
    [ -s "$index" ] || {
        cat "$log" >&2
        echo "install.sh: no list could be compiled, not even the bundled ones: see above" >&2
        exit 1
    }
    if grep -q "^Traceback" "$log"; then
        echo "The list compile stopped with an error (a fault in the appliance: please report it, with $log);"
        echo "the lists compiled before stay in force."
    elif grep -q "protection is minimal" "$log"; then
        echo "protection is minimal: lists not downloaded yet. The appliance starts on the bundled demo lists;"
        echo "the nightly update (or: runuser -u appliance -- $app lists compile) fetches the lists once the"
        echo "connection works. What failed: $log"
    else
        echo "Some lists could not be fetched or read; the others are in force (details: $log):"
        grep -E "REJECTED|rejected:" "$log" || true
    fi
fi
grep -E "^(Compiled|Index:)" "$log" || true

say "The configuration, as the appliance will run it"
# After the compile, so that what it says of the lists (minimal or not) is what the services will serve.
"$app" check --config /etc/appliance/appliance.yaml

say "Enabled at boot"
# systemctl enable only makes links, so it works in a chroot or an image too.
systemctl enable --quiet systemd-networkd nftables dnsmasq appliance-dns appliance-proxy appliance-dashboard \
    appliance-alerts appliance-controls \
    appliance-lists.timer appliance-sync.timer appliance-refusals.timer \
    appliance-backup.timer
# networkd's wait-online would wait for the LAN links (no cable yet is fine): the WAN's own manager says
# when the machine is online.
systemctl disable --quiet systemd-networkd-wait-online.service 2>/dev/null || true

if [ "$start" = yes ] && [ -d /run/systemd/system ]; then
    say "Starting"
    systemctl daemon-reload
    sysctl -q --system
    # Restarted, not only started: a second run is an upgrade, and the running ones have the old program.
    systemctl restart systemd-networkd
    systemctl reload NetworkManager 2>/dev/null || true
    systemctl restart nftables dnsmasq appliance-dns appliance-proxy appliance-dashboard appliance-alerts \
        appliance-controls
    systemctl start appliance-lists.timer appliance-sync.timer appliance-refusals.timer appliance-backup.timer
fi

say "Done"
cat <<NEXT
Next:
  1. Edit /etc/appliance/appliance.yaml: the LAN address (dns.block_page_addresses), the staff network
     (router.staff_interface, router.staff_networks, dashboard.admin_networks), the interfaces (router:),
     the centre's name. Edit /etc/systemd/network/*appliance* and /etc/dnsmasq.d/appliance.conf to match,
     then run install.sh again. The switch carries the staff VLAN (60) on the staff ports only.
  2. Make the first administrator: runuser -u appliance -- $app users add NAME --role admin
  3. Install the appliance's certificate on the centre's own PCs: http://appliance.lan/ca
  4. Open the dashboard from the staff network: https://<the appliance's staff address>:8081/
Guide: $prefix/docs/raspberry-pi.md
NEXT
