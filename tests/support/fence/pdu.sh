#!/bin/bash
# Run one simulated switched PDU: net-snmp's snmpd on ADDR:PORT (UDP), with the outlet subtree of PROFILE
# answered by pdu_handler.py from the state files in DIR. It execs snmpd in the foreground (snmpd starts the
# handler as its child): kill the caller's child, or better its process group, to stop the PDU.
#
#   pdu.sh DIR ADDR PORT PROFILE OUTLETS RW_COMMUNITY
#
# PROFILE: apc-rpdu | apc-masterswitch | tripplite (see pdu_handler.py); OUTLETS: how many outlets.
# RW_COMMUNITY may read and write; "public" may only read (both from 127.0.0.0/8: a client talking to
# 127.x.y.z sends from 127.0.0.1). Any other community gets no answer at all (an SNMP agent drops a request
# with an unknown community without a word).
# Writes DIR/snmpd.conf; logs to DIR/snmpd.log. Settings that matter (measured, see the fence lab notes):
# -C (ignore /etc/snmp), -m '' (Debian ships no MIB files), persistentDir under [snmp], -I -smux (no SMUX).
set -euo pipefail
if [ $# -ne 6 ]; then
    echo "usage: $0 DIR ADDR PORT PROFILE OUTLETS RW_COMMUNITY" >&2
    exit 2
fi
dir=$1 addr=$2 port=$3 profile=$4 outlets=$5 community=$6
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

case "$profile" in
# sysObjectID is what fence_apc_snmp reads to pick its OID table.
apc-rpdu) subtree=.1.3.6.1.4.1.318.1.1.12 objectid=.1.3.6.1.4.1.318.1.3.4.5 descr="APC Switched Rack PDU (simulated)" ;;
# an APC sysObjectID fence_apc_snmp does not list: it then uses its MasterSwitch fallback table.
apc-masterswitch) subtree=.1.3.6.1.4.1.318.1.1.4.4.2.1 objectid=.1.3.6.1.4.1.318.1.3.4.2 descr="APC MasterSwitch (simulated)" ;;
tripplite) subtree=.1.3.6.1.4.1.850.10.2.3.5.1 objectid=.1.3.6.1.4.1.850.1 descr="Tripp Lite PDU (simulated)" ;;
*) echo "$0: unknown profile $profile (apc-rpdu, apc-masterswitch, tripplite)" >&2; exit 2 ;;
esac

mkdir -p "$dir/persist"
cat >"$dir/snmpd.conf" <<CONF
# snmpd configuration written by $0 (see snmpd.conf(5))
[snmp] persistentDir $dir/persist
sysObjectID $objectid
sysDescr $descr
sysName failoverd-test-pdu
rocommunity public 127.0.0.0/8
rwcommunity $community 127.0.0.0/8
pass_persist $subtree $here/pdu_handler.py $profile $dir $outlets
CONF

exec snmpd -f -Lo -C -m '' -I -smux -c "$dir/snmpd.conf" -p "$dir/snmpd.pid" "udp:$addr:$port" </dev/null >>"$dir/snmpd.log" 2>&1
