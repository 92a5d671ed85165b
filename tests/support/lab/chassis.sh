#!/bin/bash
# ipmi_sim `chassis_control` program of one lab host's BMC (see tests/support/lab/mod.rs).
#
#   chassis.sh HOSTDIR get power        -> prints power:1 or power:0 (from the simulated SAN's power state)
#   chassis.sh HOSTDIR set power 0      -> the host loses power: the SAN marks it off (its pools stop writing
#                                          MMP, its imports and mounts vanish), then every process in the host's
#                                          network namespace is SIGKILLed (its daemon and anything it started)
#   chassis.sh HOSTDIR set power 1      -> the host gets power: the SAN marks it on and, if it was off, the
#                                          host "boots": its daemon is started again in its namespace
#   reset / boot / shutdown / identify  -> accepted, no effect (identify's value is ONE quoted argument)
#
# ipmi_sim runs this through popen() ("sh -c"), single-threaded, inside the BMC namespace: it must be quick,
# and a daemon it starts must not inherit ipmi_sim's sockets (every fd above 2 is closed first).
# HOSTDIR/lab.env sets FAILOVERD (the binary), FAILOVERD_SAN, HOST, NETNS, START (the host's start script)
# and STOPPED (a file that exists once the lab is being torn down: nothing is started any more).
set -u
hostdir=$1
op=$2
shift 2
# shellcheck source=/dev/null
. "$hostdir/lab.env"
export FAILOVERD_SAN
printf '%s %s %s\n' "$(date +%s.%N)" "$op" "$*" >>"$hostdir/bmc/calls.log"

kill_host() {
    # Bounded: a process the daemon forks while we kill is caught on the next round.
    local i pids
    for i in $(seq 100); do
        pids=$(ip netns pids "$NETNS" 2>/dev/null)
        [ -z "$pids" ] && return 0
        # shellcheck disable=SC2086  # one pid per word
        kill -9 $pids 2>/dev/null
        sleep 0.02
    done
    echo "processes of $NETNS survive SIGKILL"
    return 1
}

boot_host() {
    [ -e "$STOPPED" ] && return 0
    (
        for fd in $(ls /proc/self/fd); do
            [ "$fd" -gt 2 ] && eval "exec $fd>&-"
        done
        exec ip netns exec "$NETNS" setsid -f "$START" </dev/null >/dev/null 2>&1
    ) &
}

case "$op" in
get)
    for parm in "$@"; do
        case "$parm" in
        power)
            state=$("$FAILOVERD" sim-san power "$HOST" status) || exit 1
            if [ "$state" = on ]; then echo "power:1"; else echo "power:0"; fi
            ;;
        boot) echo "boot:default" ;;
        *)
            echo "Invalid parameter: $parm"
            exit 1
            ;;
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
                "$FAILOVERD" sim-san power "$HOST" off >/dev/null || exit 1
                kill_host || exit 1
            else
                was=$("$FAILOVERD" sim-san power "$HOST" status) || exit 1
                "$FAILOVERD" sim-san power "$HOST" on >/dev/null || exit 1
                [ "$was" = off ] && boot_host
            fi
            ;;
        reset | boot | shutdown | identify) : ;;
        *)
            echo "Invalid parameter: $parm"
            exit 1
            ;;
        esac
    done
    ;;
*)
    echo "Unknown operation: $op"
    exit 1
    ;;
esac
exit 0
