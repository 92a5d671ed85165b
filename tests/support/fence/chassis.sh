#!/bin/bash
# ipmi_sim chassis_control hook for failoverd's fencing tests (tests/support/fence/mod.rs starts it).
#
# lan.conf names it as:  chassis_control "<this script> <state dir>"
# and ipmi_sim (OpenIPMI 2.0.33, lanserv/bmc_chassis.c + extcmd.c) then runs, through popen():
#   chassis.sh DIR get power            -> must print "power:1" or "power:0"
#   chassis.sh DIR set power "0"|"1"    (off / on; "power cycle" is set 0, then set 1 one second later)
#   chassis.sh DIR set reset "1" | set shutdown "1" | set boot "<dev>" | get boot
#   chassis.sh DIR set identify "<interval> <force>"   (ONE argument: never shift past it)
# A non-zero exit makes ipmi_sim answer the IPMI command with completion code 0xff ("Unspecified error").
#
# State in DIR (all plain files):
#   power        "on" or "off": the chassis power state (a missing file reads "on")
#   victim.pid   pid of the process that stands for the node: SIGKILLed on power off
#   calls.log    one line per call: "<epoch> <op> <args>"
#   fail         present: every call fails (exit 1)        -> a BMC that answers with errors
#   delay        seconds to sleep before answering         -> a sluggish BMC (ipmi_sim is single-threaded:
#                                                              the whole BMC stalls meanwhile)
set -u

# ipmi_sim leaks its UDP socket, epoll fd and pipes into this script; close every fd above 2 so that nothing
# started from here could keep the BMC's port bound after ipmi_sim is gone (fd 1 is popen's pipe: kept).
for fd in /proc/$$/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ] 2>/dev/null; then
        eval "exec $fd>&-" 2>/dev/null
    fi
done

dir=$1
op=$2
shift 2
echo "$(date +%s.%N) $op $*" >>"$dir/calls.log"

if [ -f "$dir/delay" ]; then
    sleep "$(cat "$dir/delay")"
fi
if [ -f "$dir/fail" ]; then
    echo "injected failure"
    exit 1
fi

power_now() {
    if [ -f "$dir/power" ] && [ "$(cat "$dir/power")" = off ]; then echo 0; else echo 1; fi
}

case "$op" in
get)
    for parm in "$@"; do
        case "$parm" in
        power) echo "power:$(power_now)" ;;
        boot) echo "boot:default" ;;
        *) echo "Invalid parameter: $parm"; exit 1 ;;
        esac
    done
    ;;
set)
    while [ $# -ge 2 ]; do
        parm=$1
        val=$2
        shift 2
        case "$parm" in
        power)
            if [ "$val" = 0 ]; then
                echo off >"$dir/power.tmp" && mv "$dir/power.tmp" "$dir/power"
                if [ -f "$dir/victim.pid" ]; then
                    victim=$(cat "$dir/victim.pid")
                    if kill -9 "$victim" 2>/dev/null; then
                        echo "$(date +%s.%N) killed $victim" >>"$dir/calls.log"
                    fi
                fi
            else
                echo on >"$dir/power.tmp" && mv "$dir/power.tmp" "$dir/power"
            fi
            ;;
        reset | shutdown | boot | identify) : ;;
        *) echo "Invalid parameter: $parm"; exit 1 ;;
        esac
    done
    ;;
check) exit 1 ;;
*) echo "Unknown operation: $op"; exit 1 ;;
esac
exit 0
