#!/usr/bin/env python3
"""Verdict of one real-zfs-lab case, from what the guests logged (scripts/real-zfs-lab; docs/real-zfs-lab.md).

    analyze.py CASE RUN_DIR T_EVENT ZFS_VERSION

Reads, per guest, the host-stamped command log of the wrappers (commands.log.stamped: `T start ID TOOL ARGS`
and `T end ID RC TOOL ARGS`), the host-stamped JSON log of failoverd (failoverd.log.stamped) and the wrappers'
captures (share/captures/ID.txt); and the BMC's power.log. Prints every check (ok / FAIL) and the time of
every step from T_EVENT (the kill / freeze / migrate command), then exits 1 if any check failed.
"""
import json
import os
import re
import sys

CASE, RUN, T0, VERSION = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
POOLS = {"OST0": "ost0pool", "OST1": "ost1pool"}
failures = []
timeline = []


def check(ok, what):
    print("  %-4s %s" % ("ok" if ok else "FAIL", what))
    if not ok:
        failures.append(what)
    return ok


def commands(guest):
    """[(t_start, t_end|None, rc|None, tool, args, id)] in start order."""
    out, by_id = [], {}
    path = os.path.join(RUN, guest, "commands.log.stamped")
    if not os.path.exists(path):
        return out
    for line in open(path, errors="replace"):
        p = line.rstrip("\n").split(" ", 4)
        if len(p) < 4:
            continue
        t, kind = float(p[0]), p[1]
        if kind == "start" and len(p) >= 4:
            rest = line.rstrip("\n").split(" ", 3)[3]
            tool, _, args = rest.partition(" ")
            c = {"t": t, "end": None, "rc": None, "tool": tool, "args": args, "id": p[2]}
            by_id[p[2]] = c
            out.append(c)
        elif kind == "end" and p[2] in by_id:
            by_id[p[2]]["end"] = t
            by_id[p[2]]["rc"] = int(p[3])
    return out


def capture(guest, cid):
    try:
        return open(os.path.join(RUN, guest, "share", "captures", cid + ".txt"), errors="replace").read()
    except OSError:
        return ""


def events(guest):
    """[(t, event dict)] from failoverd's JSON log."""
    out = []
    path = os.path.join(RUN, guest, "failoverd.log.stamped")
    if not os.path.exists(path):
        return out
    for line in open(path, errors="replace"):
        t, _, rest = line.partition(" ")
        try:
            j = json.loads(rest)
        except ValueError:
            continue
        f = j.get("fields", {})
        if f.get("message") == "event" and "detail" in f:
            try:
                ev = json.loads(f["detail"])
            except ValueError:
                ev = {"event": f.get("event")}
            ev["_level"] = j.get("level")
            out.append((float(t), ev))
    return out


def rel(t):
    return "%+7.1f s" % (t - T0) if t is not None else "   never"


def first(evs, name, **kw):
    for t, e in evs:
        if e.get("event") == name and all(e.get(k) == v for k, v in kw.items()):
            return t, e
    return None, None


def imports(cmds, pool, after=None):
    r = re.compile(r"^import( -f)? -o cachefile=none %s$" % re.escape(pool))
    return [c for c in cmds if c["tool"] == "zpool" and r.match(c["args"]) and (after is None or c["t"] >= after)]


def show(label, t):
    timeline.append((t, label))


def takeover_checks(survivor, victim, forced=True, exactly_one=True):
    """The fence-then-import rules on the survivor, for a takeover from victim after T0."""
    cmds = [c for c in commands(survivor) if c["t"] >= T0]
    evs = [(t, e) for t, e in events(survivor) if t >= T0]
    t_dead, _ = first(evs, "peer_dead", node=victim)
    t_fstart, _ = first(evs, "fence_started", node=victim)
    t_fconf, _ = first(evs, "fence_confirmed", node=victim)
    show("%s: peer_dead %s" % (survivor, victim), t_dead)
    show("%s: fence_started %s" % (survivor, victim), t_fstart)
    offs = [c for c in cmds if c["tool"] == "ipmitool" and c["args"].endswith("chassis power off")]
    for c in offs[:1]:
        show("%s: ipmitool chassis power off (start)" % survivor, c["t"])
        show("%s: ipmitool chassis power off (rc %s)" % (survivor, c["rc"]), c["end"])
    stat = [c for c in cmds if c["tool"] == "ipmitool" and c["args"].endswith("chassis power status")]
    for c in stat[:1]:
        show("%s: first ipmitool chassis power status" % survivor, c["end"])
    show("%s: fence_confirmed %s" % (survivor, victim), t_fconf)
    check(t_fconf is not None, "%s confirmed the fence of %s (fence_confirmed)" % (survivor, victim))
    check(len(offs) >= 1, "%s ran a real `ipmitool ... chassis power off` (%d)" % (survivor, len(offs)))
    all_imports = [c for c in cmds if c["tool"] == "zpool" and c["args"].startswith("import")]
    early = [c for c in all_imports if t_fconf is None or c["t"] < t_fconf]
    check(not early, "no zpool import before the fence was confirmed (%d early: %s)"
          % (len(early), "; ".join(c["args"] for c in early)))
    for target, pool in POOLS.items():
        forced_imports = [c for c in imports(cmds, pool) if " -f " in " " + c["args"] + " "]
        plain_imports = [c for c in imports(cmds, pool) if " -f " not in " " + c["args"] + " "]
        if forced and not exactly_one:
            check(len(forced_imports) >= 1, "`zpool import -f -o cachefile=none %s` on %s (%d, restarted daemon)"
                  % (pool, survivor, len(forced_imports)))
        elif forced:
            check(len(forced_imports) == 1, "exactly one `zpool import -f -o cachefile=none %s` on %s (%d)"
                  % (pool, survivor, len(forced_imports)))
            check(not plain_imports, "no import of %s without -f on %s (%d)" % (pool, survivor, len(plain_imports)))
        zdb = [c for c in cmds if c["tool"] == "zdb" and c["args"] == "-e -C %s" % pool]
        if zdb:
            text = capture(survivor, zdb[0]["id"])
            check("hostname: '%s'" % victim in text, "`zdb -e -C %s` names %s" % (pool, victim))
            show("%s %s: zdb -e -C start" % (survivor, target), zdb[0]["t"])
            show("%s %s: zdb -e -C done" % (survivor, target), zdb[0]["end"])
        else:
            check(False, "`zdb -e -C %s` ran on %s" % (pool, survivor))
        for c in imports(cmds, pool)[:1]:
            show("%s %s: zpool %s start" % (survivor, target, c["args"]), c["t"])
            show("%s %s: zpool import done (rc %s)" % (survivor, target, c["rc"]), c["end"])
        for tool, args, label in (("zpool", "status -x %s" % pool, "zpool status -x"),
                                  ("zfs", "list -H %s/data" % pool, "zfs list"),
                                  ("mount", "-t zfs %s/data /srv/%s" % (pool, target.lower()), "mount -t zfs")):
            cs = [c for c in cmds if c["tool"] == tool and c["args"] == args]
            if cs:
                show("%s %s: %s done (rc %s)" % (survivor, target, label, cs[0]["rc"]), cs[0]["end"])
        t_done, _ = first(evs, "sequence_done", target=target)
        show("%s %s: sequence_done (mount verified in /proc/mounts)" % (survivor, target), t_done)
        check(t_done is not None, "%s verified %s mounted (sequence_done)" % (survivor, target))
    return t_fconf


def read(name):
    try:
        return open(os.path.join(RUN, name), errors="replace").read()
    except OSError:
        return ""


def stamp(name):
    try:
        return float(read(name).strip())
    except ValueError:
        return None


def migration_checks(src, dst, t_from, t_to):
    """A controlled migration of both targets from src to dst between t_from and t_to: no fence, no -f."""
    sc = [c for c in commands(src) if t_from <= c["t"] < t_to]
    dc = [c for c in commands(dst) if t_from <= c["t"] < t_to]
    fences = [c for c in sc + dc if c["tool"] == "ipmitool" and "power off" in c["args"]]
    check(not fences, "%s -> %s: no fence (%d power-off)" % (src, dst, len(fences)))
    for target, pool in POOLS.items():
        mp = "/srv/%s" % target.lower()
        um = [c for c in sc if c["tool"] == "umount" and c["args"] == mp]
        ex = [c for c in sc if c["tool"] == "zpool" and c["args"] == "export %s" % pool]
        check(len(um) == 1 and um[0]["rc"] == 0, "%s: umount %s on %s" % (target, mp, src))
        check(len(ex) == 1 and ex[0]["rc"] == 0, "%s: zpool export %s on %s" % (target, pool, src))
        imp = imports(dc, pool)
        plain = [c for c in imp if " -f " not in " " + c["args"] + " "]
        check(len(imp) == 1 and len(plain) == 1 and plain[0]["rc"] == 0,
              "%s: exactly one `zpool import -o cachefile=none %s` (without -f) on %s (%s)"
              % (target, pool, dst, "; ".join("%s rc %s" % (c["args"], c["rc"]) for c in imp) or "none"))
        if ex and imp:
            check(imp[0]["t"] >= ex[0]["end"], "%s: imported on %s after the export on %s" % (target, dst, src))
        zdb = [c for c in dc if c["tool"] == "zdb" and c["args"] == "-e -C %s" % pool]
        if zdb:
            text = capture(dst, zdb[0]["id"])
            check("state: 1" in text, "%s: `zdb -e -C %s` on %s reads the label EXPORTED (state 1)" % (target, pool, dst))
        for label, cs in (("umount", um), ("zpool export", ex), ("zdb -e -C", zdb), ("zpool import", imp),
                          ("mount -t zfs", [c for c in dc if c["tool"] == "mount" and c["args"].endswith(mp)])):
            if cs:
                show("%s %s -> %s: %s done (rc %s)" % (target, src, dst, label, cs[0]["rc"]), cs[0]["end"])
        evs = [(t, e) for t, e in events(dst) if t_from <= t < t_to]
        t_done, _ = first(evs, "sequence_done", target=target)
        show("%s %s -> %s: sequence_done on %s" % (target, src, dst, dst), t_done)
        check(t_done is not None, "%s: %s verified the mount (sequence_done)" % (target, dst))


def print_timeline():
    print("  timeline (host clock, from the %s):" % CASE)
    for t, label in sorted((x for x in timeline if x[0] is not None), key=lambda x: x[0]):
        print("    %s  %s" % (rel(t), label))
    for t, label in timeline:
        if t is None:
            print("    %s  %s" % (rel(t), label))


def lying_bmc_checks():
    cmds = [c for c in commands("oss-b") if c["t"] >= T0]
    t_fconf, _ = first([(t, e) for t, e in events("oss-b") if t >= T0], "fence_confirmed", node="oss-a")
    show("oss-b: fence_confirmed oss-a (the BMC lied: oss-a is frozen, not off)", t_fconf)
    check(t_fconf is not None, "oss-b confirmed the (lying) fence of oss-a")
    power = read("oss-a/power.log")
    check("LIED" in power, "oss-a's BMC lied (power.log: %s)" % power.strip().replace("\n", "; "))
    t_cont = stamp("t_cont")
    show("harness: SIGCONT oss-a", t_cont)
    after = read("oss-a-pools-after-resume.txt")
    suspended = [p for p in POOLS.values() if re.search(r"^%s\tSUSPENDED$" % p, after, re.M)]
    refused = [c for c in cmds if c["tool"] == "zpool" and c["args"].startswith("import -f") and c["rc"] != 0]
    check(len(suspended) == len(POOLS) or refused,
          "MMP protected the pools: SUSPENDED on the resumed oss-a (%s) or the survivor's import refused (%d)"
          % (", ".join(suspended) or "none", len(refused)))
    print("    oss-a after SIGCONT: " + after.strip().replace("\n", " | "))
    print("    " + read("oss-a-status-after-resume.txt").strip().replace("\n", "\n    "))
    evs_a = [(t, e) for t, e in events("oss-a") if t_cont and t >= t_cont]
    alerts_a = [e for t, e in evs_a if e.get("_level") == "ERROR"]
    print("    oss-a's events after SIGCONT: " + ", ".join(sorted(set(e.get("event", "?") for t, e in evs_a))))
    t_stall, _ = first(evs_a, "local_stall")
    show("oss-a: local_stall (it noticed its own freeze)", t_stall)
    t_mon, _ = first(evs_a, "monitor_failed")
    show("oss-a: first monitor_failed (pool SUSPENDED)", t_mon)
    t_move, _ = first(evs_a, "target_moving")
    show("oss-a: target_moving (stops serving: release)", t_move)
    t_alert = next((t for t, e in evs_a if e.get("_level") == "ERROR"), None)
    show("oss-a: first alert (%s)" % ", ".join(sorted(set(e.get("event", "?") for e in alerts_a))), t_alert)
    check(t_move is not None, "failoverd on oss-a stopped serving its targets (target_moving: release)")
    check(alerts_a, "failoverd on oss-a raised an alert after it resumed (%s)"
          % ", ".join(sorted(set(e.get("event", "?") for e in alerts_a))))
    for t, e in evs_a:
        if e.get("event") in ("sequence_done",) and e.get("sequence") in ("Acquire", "Forced", "acquire", "forced"):
            check(False, "oss-a started %s again after it resumed" % e.get("target"))
    evs_b = [(t, e) for t, e in events("oss-b") if t_cont and t >= t_cont]
    t_lied, _ = first(evs_b, "fence_lied")
    show("oss-b: fence_lied (heard oss-a again in the same incarnation)", t_lied)
    print("    oss-b's events after SIGCONT: " + ", ".join(sorted(set(e.get("event", "?") for t, e in evs_b))))
    check(t_lied is not None, "failoverd on oss-b raised fence_lied")
    scrub = read("oss-b-scrub.txt")
    clean = scrub.count("errors: No known data errors")
    check(clean == len(POOLS) and "scrub repaired 0B" in scrub,
          "a scrub of both pools on oss-b afterwards shows no damage (%d clean)" % clean)
    for target, pool in POOLS.items():
        n = len([c for c in imports(cmds, pool) if c["args"].startswith("import -f")])
        check(n == 1, "exactly one `zpool import -f` of %s on oss-b (%d)" % (pool, n))


def main():
    print("real-zfs-lab %s (OpenZFS %s): checks" % (CASE, VERSION))
    if CASE == "multihost-off":
        POOLS["MMPOFF"] = "mmpoffpool"
    if CASE in ("crash", "freeze", "multihost-off"):
        takeover_checks("oss-b", "oss-a", forced=True)
    elif CASE == "migrate":
        t_back = stamp("t_back") or 1e18
        migration_checks("oss-a", "oss-b", T0, t_back)
        migration_checks("oss-b", "oss-a", t_back, 1e18)
    elif CASE == "restart-import":
        takeover_checks("oss-b", "oss-a", forced=True, exactly_one=False)
        t_restart = stamp("t_restart")
        show("harness: SIGKILL of failoverd in oss-b (mid-import), started again 2 s later", t_restart)
        # The restarted daemon cannot hear oss-a (it is off): it reads oss-a's power through its BMC, finds it
        # off, counts it as seen for wait_for_all and takes both targets over with no operator (issue #10 item 2).
        if t_restart:
            checked, ev = first([(t, e) for t, e in events("oss-b") if t > t_restart], "fence_power_checked", node="oss-a")
            show("oss-b: fence_power_checked oss-a (%s)" % (ev or {}).get("power"), checked)
            check(ev is not None and ev.get("power") == "off",
                  "the restarted daemon read oss-a's power as off (fence_power_checked) and needed no operator")
            for target, pool in POOLS.items():
                t_done, _ = first([(t, e) for t, e in events("oss-b") if t > t_restart], "sequence_done", target=target)
                show("oss-b %s: sequence_done after the restart" % target, t_done)
                check(t_done is not None, "the restarted daemon took %s over by itself" % target)
        pools = read("oss-b-pools.txt")
        for target, pool in POOLS.items():
            check(re.search(r"^%s\tONLINE$" % pool, pools, re.M) is not None,
                  "%s ends imported (ONLINE) on oss-b, and oss-a is powered off" % pool)
        print("    oss-b zpool list after the restart:\n      " + pools.strip().replace("\n", "\n      "))
    elif CASE == "lying-bmc":
        lying_bmc_checks()
    print_timeline()
    # machine-readable timeline for BENCHMARKS.md
    with open(os.path.join(RUN, "timeline-%s.json" % CASE), "w") as f:
        json.dump([{"t": None if t is None else round(t - T0, 2), "step": l} for t, l in timeline], f, indent=1)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
