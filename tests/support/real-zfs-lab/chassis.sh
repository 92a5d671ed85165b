#!/bin/bash
# ipmi_sim `chassis_control` program of one real-zfs-lab guest's BMC (scripts/real-zfs-lab).
#
#   chassis.sh GUESTDIR get power      -> power:1 while the guest's QEMU process exists (running or stopped)
#   chassis.sh GUESTDIR set power 0    -> SIGKILL the guest's QEMU (a stopped QEMU dies too): power cut
#   chassis.sh GUESTDIR set power 1    -> boot the guest again (GUESTDIR/start) if it is not running
#   reset / boot / shutdown / identify -> accepted, no effect
#
# GUESTDIR/lying-bmc exists: the BMC lies. `power off` kills nothing and every later `get power` says off
# (the "lying BMC" case: the host stays frozen, the fencer believes it is off).
# ipmi_sim runs this with popen(), single-threaded: it must return quickly, and what it starts must not
# inherit ipmi_sim's sockets.
set -u
dir=$1
op=$2
shift 2
printf '%s %s %s\n' "$(date +%s.%N)" "$op" "$*" >>"$dir/bmc-calls.log"

qemu_pid() {
    local p
    p=$(cat "$dir/qemu.pid" 2>/dev/null) || return 1
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"
}

case "$op" in
get)
    for parm in "$@"; do
        case "$parm" in
        power)
            if [ -e "$dir/lying-bmc" ] && [ -e "$dir/lied" ]; then
                echo "power:0"
            elif qemu_pid >/dev/null; then
                echo "power:1"
            else
                echo "power:0"
            fi
            ;;
        boot) echo "boot:default" ;;
        *) echo "Invalid parameter: $parm"; exit 1 ;;
        esac
    done
    ;;
set)
    while [ $# -gt 0 ]; do
        parm=$1
        val=${2-}
        shift
        [ $# -gt 0 ] && shift
        case "$parm" in
        power)
            if [ "$val" = 0 ]; then
                if [ -e "$dir/lying-bmc" ]; then
                    touch "$dir/lied"
                    printf '%s power-off LIED (qemu left running)\n' "$(date +%s.%N)" >>"$dir/power.log"
                else
                    pid=$(qemu_pid) && kill -9 "$pid"
                    printf '%s power-off (SIGKILL qemu %s)\n' "$(date +%s.%N)" "${pid:-none}" >>"$dir/power.log"
                fi
            else
                if ! qemu_pid >/dev/null && [ ! -e "$dir/../stopped" ]; then
                    rm -f "$dir/lied"
                    printf '%s power-on (boot)\n' "$(date +%s.%N)" >>"$dir/power.log"
                    (
                        for fd in $(ls /proc/self/fd); do
                            [ "$fd" -gt 2 ] && eval "exec $fd>&-"
                        done
                        exec setsid -f "$dir/start" </dev/null >/dev/null 2>&1
                    ) &
                fi
            fi
            ;;
        reset | boot | shutdown | identify) : ;;
        *) echo "Invalid parameter: $parm"; exit 1 ;;
        esac
    done
    ;;
*) echo "Unknown operation: $op"; exit 1 ;;
esac
exit 0
