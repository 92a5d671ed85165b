#!/bin/bash
# Run one simulated BMC: OpenIPMI's ipmi_sim on ADDR:PORT (UDP, RMCP/RMCP+), whose chassis power is
# chassis.sh's state in DIR. It execs ipmi_sim in the foreground, so the caller's child IS ipmi_sim: kill it
# to stop the BMC.
#
#   bmc.sh DIR ADDR PORT USER PASSWORD
#
# Writes DIR/lan.conf and DIR/bmc.emu, starts from an empty DIR/sim-state (users and LAN parameters changed
# over IPMI persist there and would override lan.conf) and logs to DIR/ipmi_sim.log. Settings that matter
# (measured, see the fence lab notes): -n (no console on stdin: without a TTY ipmi_sim aborts otherwise),
# explicit -c and -s (the Debian build's defaults point under /usr); clients must use cipher suite 3
# (`ipmitool -C 3`): ipmi_sim does not implement "Get Channel Cipher Suites" and ipmitool would stall 10 s.
set -euo pipefail
if [ $# -ne 5 ]; then
    echo "usage: $0 DIR ADDR PORT USER PASSWORD" >&2
    exit 2
fi
dir=$1 addr=$2 port=$3 user=$4 password=$5
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$dir"
[ -f "$dir/power" ] || echo on >"$dir/power"

cat >"$dir/lan.conf" <<CONF
# ipmi_sim configuration written by $0 (see ipmi_lan(5))
name "failoverd-test-bmc"
set_working_mc 0x20
  startlan 1
    addr $addr $port
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "$here/chassis.sh $dir"
  #    num enabled name      password     priv  max-sessions auths
  user 2   true    "$user"   "$password"  admin 10           none md2 md5 straight
CONF

cat >"$dir/bmc.emu" <<'EMU'
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02
mc_enable 0x20
EMU

rm -rf "$dir/sim-state"
mkdir -p "$dir/sim-state"
exec ipmi_sim -n -c "$dir/lan.conf" -f "$dir/bmc.emu" -s "$dir/sim-state" </dev/null >>"$dir/ipmi_sim.log" 2>&1
