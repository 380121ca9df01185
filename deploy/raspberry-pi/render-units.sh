#!/bin/sh
# render-units.sh OUTDIR PREFIX: the systemd units of systemd/ with the install prefix filled in and the
# shared hardening (systemd/hardening.conf) in each service. install.sh writes them to /etc/systemd/system;
# tests/deploy renders them into a folder and has systemd-analyze verify them.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$1
prefix=$2
mkdir -p "$out"
for unit in "$here"/systemd/*.service "$here"/systemd/*.timer; do
    sed -e "s|@PREFIX@|$prefix|g" -e "/@HARDENING@/{r $here/systemd/hardening.conf" -e "d}" "$unit" \
        > "$out/$(basename "$unit")"
done
