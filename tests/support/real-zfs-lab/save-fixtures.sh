#!/bin/bash
# save-fixtures.sh CAPTURES FIXTURES: copy the real outputs of the commands failoverd ran in the real-zfs-lab
# guests (CAPTURES = target/real-zfs-lab/captures/<ZFS_VERSION>) to FIXTURES (tests/fixtures/openzfs-<release>/
# real-zfs-lab), one file per command, under stable names the parser and judge tests include.
# Each file: `### CMD: <argv>`, stdout, `### STDERR:` + stderr (if any), `### RC: <exit code>`.
set -euo pipefail
src=$1
dst=$2
mkdir -p "$dst"
# pick CASE GUEST "EXACT COMMAND" NAME [NTH]: the NTH (default 1st, in time order) capture of that command
pick() {
    local case=$1 guest=$2 cmd=$3 name=$4 nth=${5:-1} f
    f=$(grep -lxF "### CMD: $cmd" "$src/$case/$guest"/*.txt 2>/dev/null | sort -t/ -k1 -V |
        while read -r x; do printf '%s %s\n' "$(basename "$x" .txt | cut -d. -f2-)" "$x"; done | sort -n | sed -n "${nth}p" | cut -d' ' -f2) || true
    if [ -z "$f" ]; then
        echo "save-fixtures: no capture of '$cmd' on $guest in $case" >&2
        return 0
    fi
    cp "$f" "$dst/$name.txt"
    echo "$name.txt <- $case/$guest/$(basename "$f")"
}
pick crash oss-b "zdb -e -C ost0pool" zdb-e-C-ost0pool-active-oss-a
pick crash oss-b "zpool import -f -o cachefile=none ost0pool" zpool-import-f-ost0pool
pick crash oss-b "zpool status -x ost0pool" zpool-status-x-ost0pool
pick crash oss-b "zfs list -H ost0pool/data" zfs-list-H-ost0pool-data
pick crash oss-b "mount -t zfs ost0pool/data /srv/ost0" mount-t-zfs-ost0pool-data
pick crash oss-b "zpool list -H -o name,health ost0pool" zpool-list-H-name-health-ost0pool
pick crash oss-b "zpool list -H -o name,health" zpool-list-H-name-health-discovery
pick crash oss-b "ipmitool -I lanplus -H 10.99.0.1 -p 623 -U admin -E -L ADMINISTRATOR -C 3 -N 1 -R 2 chassis power off" ipmitool-chassis-power-off
pick crash oss-b "ipmitool -I lanplus -H 10.99.0.1 -p 623 -U admin -E -L ADMINISTRATOR -C 3 -N 1 -R 2 chassis power status" ipmitool-chassis-power-status-off
pick migrate oss-a "umount /srv/ost0" umount-srv-ost0
pick migrate oss-a "zpool export ost0pool" zpool-export-ost0pool
pick migrate oss-b "zdb -e -C ost0pool" zdb-e-C-ost0pool-exported-oss-a
pick migrate oss-b "zpool import -o cachefile=none ost0pool" zpool-import-ost0pool-exported
pick multihost-off oss-b "zdb -e -C mmpoffpool" zdb-e-C-mmpoffpool-active-oss-a
pick multihost-off oss-b "zpool import -f -o cachefile=none mmpoffpool" zpool-import-f-mmpoffpool
# /proc/mounts right after the mount of ost0pool/data on oss-b (verify-mount)
f=$(grep -l "^ost0pool/data /srv/ost0 zfs" "$src/crash/oss-b"/*.txt 2>/dev/null | xargs -r grep -lxF "### CMD: cat /proc/mounts" | head -1) || true
[ -n "$f" ] && cp "$f" "$dst/cat-proc-mounts-ost0-mounted.txt" && echo "cat-proc-mounts-ost0-mounted.txt <- crash/oss-b/$(basename "$f")"
# the harness's own reads of the resumed owner in the lying-bmc case (not run by failoverd; same framing)
if [ -s "$src/lying-bmc/oss-a-pools-after-resume.txt" ]; then
    { echo "### CMD: zpool list -H -o name,health"; cat "$src/lying-bmc/oss-a-pools-after-resume.txt"; echo "### RC: 0"; } \
        >"$dst/zpool-list-H-name-health-suspended.txt"
    echo "zpool-list-H-name-health-suspended.txt <- lying-bmc/oss-a-pools-after-resume.txt"
fi
for f in oss-a-status-after-resume oss-b-scrub doctor; do
    for c in lying-bmc multihost-off; do
        [ -s "$src/$c/$f.txt" ] && cp "$src/$c/$f.txt" "$dst/harness-$c-$f.txt" && echo "harness-$c-$f.txt <- $c/$f.txt"
    done
done
exit 0
