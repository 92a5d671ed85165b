#!/usr/bin/python3 -u
"""net-snmp pass_persist handler: the outlets of a switched PDU, for failoverd's fencing tests.

snmpd (started by pdu.sh) hands this process one MIB subtree; this process answers GET, GETNEXT and SET
for the outlet columns of one PDU family, with the OIDs and values fence_apc_snmp uses:

  profile            subtree                        status (read)        control (read/write)  name    on off
  apc-rpdu           .1.3.6.1.4.1.318.1.1.12        .3.5.1.1.4.N         .3.3.1.1.4.N          .3.5.1.1.2.N, .3.3.1.1.2.N   1  2
  apc-masterswitch   .1.3.6.1.4.1.318.1.1.4.4.2.1   .3.N                 .3.N (same OID)       .4.N                         1  2
  tripplite          .1.3.6.1.4.1.850.10.2.3.5.1    .2.1.N               .4.1.N                .5.1.N                       2  1

(APC control also takes 3 = reboot: off now, on one second later.)

Usage (from snmpd.conf):  pass_persist <subtree> pdu_handler.py <profile> <state dir> <outlets>

State, one set of files per outlet N in the state dir:
  outletN          "on" or "off" (a missing file reads "on")
  outletN.pid      pid of the process that stands for the node behind the outlet: SIGKILLed on off
  outletN.fail     fault switch. Content "refuse" (or empty): a SET of this outlet is refused with
                   inconsistentValue and nothing changes. Content "stuck": the SET is accepted but the
                   relay does not move (the status keeps its old value).
  calls.log        one line per SET: "<epoch> outlet N: SET v [-> what happened]"

pass_persist protocol (snmpd(8)/snmpd.conf(5)): "PING" -> "PONG"; "get\\nOID" and "getnext\\nOID" ->
"OID\\nTYPE\\nVALUE" or "NONE"; "set\\nOID\\nTYPE VALUE" -> "DONE" or one of not-writable, wrong-type,
wrong-value, inconsistent-value.
"""
import os
import signal
import sys
import threading
import time

PROFILES = {
    # name: (subtree, status column, control column, name columns, on value, off value)
    "apc-rpdu": (".1.3.6.1.4.1.318.1.1.12", ".3.5.1.1.4", ".3.3.1.1.4", (".3.3.1.1.2", ".3.5.1.1.2"), 1, 2),
    "apc-masterswitch": (".1.3.6.1.4.1.318.1.1.4.4.2.1", ".3", ".3", (".4",), 1, 2),
    "tripplite": (".1.3.6.1.4.1.850.10.2.3.5.1", ".2.1", ".4.1", (".5.1",), 2, 1),
}
APC_REBOOT = 3
REBOOT_DELAY = 1.0

if len(sys.argv) != 4 or sys.argv[1] not in PROFILES:
    sys.stderr.write("usage: pdu_handler.py apc-rpdu|apc-masterswitch|tripplite STATE_DIR OUTLETS\n")
    sys.exit(2)
PROFILE = sys.argv[1]
STATE = sys.argv[2]
OUTLETS = int(sys.argv[3])
SUBTREE, STATUS_COL, CONTROL_COL, NAME_COLS, ON, OFF = PROFILES[PROFILE]
STATUS = SUBTREE + STATUS_COL
CONTROL = SUBTREE + CONTROL_COL
lock = threading.Lock()


def path(name):
    return os.path.join(STATE, name)


def log(msg):
    with open(path("calls.log"), "a") as f:
        f.write("%.6f %s\n" % (time.time(), msg))


def power(n):
    try:
        with open(path("outlet%d" % n)) as f:
            return f.read().strip() or "on"
    except FileNotFoundError:
        return "on"


def value(n):
    return ON if power(n) == "on" else OFF


def fault(n):
    try:
        with open(path("outlet%d.fail" % n)) as f:
            return f.read().strip() or "refuse"
    except FileNotFoundError:
        return None


def switch(n, state):
    tmp = path("outlet%d.tmp" % n)
    with open(tmp, "w") as f:
        f.write(state + "\n")
    os.replace(tmp, path("outlet%d" % n))
    if state == "off":
        try:
            with open(path("outlet%d.pid" % n)) as f:
                pid = int(f.read().strip())
            os.kill(pid, signal.SIGKILL)
            log("outlet %d: killed pid %d" % (n, pid))
        except (FileNotFoundError, ValueError, ProcessLookupError):
            pass


def key(oid):
    return tuple(int(x) for x in oid.strip(".").split(".") if x)


def rows():
    """Every (oid, type, value) this PDU serves, in OID order, read fresh from the state files."""
    out = {}
    for n in range(1, OUTLETS + 1):
        for col in NAME_COLS:
            out[SUBTREE + col + ".%d" % n] = ("string", "node%d" % n)
        out[STATUS + ".%d" % n] = ("integer", str(value(n)))
        out[CONTROL + ".%d" % n] = ("integer", str(value(n)))
    return sorted(((oid, t, v) for oid, (t, v) in out.items()), key=lambda r: key(r[0]))


def reply(*lines):
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()


def do_get(oid):
    for o, t, v in rows():
        if o == oid:
            return reply(o, t, v)
    reply("NONE")


def do_getnext(oid):
    k = key(oid)
    for o, t, v in rows():
        if key(o) > k:
            return reply(o, t, v)
    reply("NONE")


def do_set(oid, typed):
    typ, _, raw = typed.partition(" ")
    if not oid.startswith(CONTROL + ".") or oid.count(".") != CONTROL.count(".") + 1:
        return reply("not-writable")
    if typ != "integer":
        return reply("wrong-type")
    n = int(oid.rsplit(".", 1)[1])
    v = int(raw)
    allowed = (ON, OFF, APC_REBOOT) if PROFILE.startswith("apc") else (ON, OFF)
    if not 1 <= n <= OUTLETS or v not in allowed:
        return reply("wrong-value")
    with lock:
        f = fault(n)
        if f == "refuse":
            log("outlet %d: SET %d -> refused (fault switch)" % (n, v))
            return reply("inconsistent-value")
        if f == "stuck":
            log("outlet %d: SET %d -> accepted, relay stuck (fault switch)" % (n, v))
            return reply("DONE")
        log("outlet %d: SET %d" % (n, v))
        if v == APC_REBOOT:
            switch(n, "off")
            threading.Timer(REBOOT_DELAY, lambda: (switch(n, "on"), log("outlet %d: reboot -> on" % n))).start()
        else:
            switch(n, "on" if v == ON else "off")
    reply("DONE")


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        cmd = line.strip()
        if cmd == "PING":
            reply("PONG")
        elif cmd == "get":
            do_get(sys.stdin.readline().strip())
        elif cmd == "getnext":
            do_getnext(sys.stdin.readline().strip())
        elif cmd == "set":
            oid = sys.stdin.readline().strip()
            do_set(oid, sys.stdin.readline().strip())
        elif cmd:
            reply("NONE")


if __name__ == "__main__":
    main()
