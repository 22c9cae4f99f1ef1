#!/usr/bin/env bash
# slurm-down.sh DIR — stop the test cluster started by slurm-up.sh DIR.
#
# Only the daemons recorded in DIR/pids are signalled (pid AND its start time
# must match, so a recycled pid is never hit).  Jobs still in the cluster are
# cancelled first so no slurmstepd/job processes outlive slurmd.  Each daemon
# gets TERM, then KILL after SLURM_DOWN_TIMEOUT seconds (default 15).  Job
# steps (slurmstepd) left behind by a crashed slurmd of THIS DIR are killed too.
# Safe to run twice, or on a DIR where nothing runs.
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
DIR=$(cd "$1" 2>/dev/null && pwd -P) || { echo "slurm-down: no such dir: $1" >&2; exit 0; }
PIDS="$DIR/pids"
TIMEOUT=${SLURM_DOWN_TIMEOUT:-15}
[ -s "$PIDS" ] || { echo "slurm-down: nothing recorded in $PIDS" >&2; exit 0; }

# shellcheck source=tests/slurm/pids.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/pids.sh"
ours_alive() {  # print "name pid" of recorded daemons still alive
    local name pid st
    while read -r name pid st; do
        is_ours "$pid" "$st" && echo "$name $pid"
    done < "$PIDS"
}

# Job steps: a slurmstepd is ours if one of its fds points into THIS DIR (its
# log file); /proc only, as procps may be missing on a minimal machine.
tree() {  # tree PID: PID and all its descendants
    echo "$1"
    local c
    for c in /proc/[0-9]*; do
        c=${c#/proc/}
        [ "$(proc_stat "$c" 2)" = "$1" ] && tree "$c"
    done
}
our_stepds() {
    local p fd
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = slurmstepd ] || continue
        [ "$(proc_stat "$p" 1)" != Z ] || continue
        for fd in /proc/"$p"/fd/*; do
            [[ "$(readlink "$fd" 2>/dev/null)" == "$DIR"/* ]] && { echo "$p"; break; }
        done
    done
    return 0
}

# 1. cancel this cluster's jobs while slurmctld is still up (bounded).
alive_now=$(ours_alive)
if [ -f "$DIR/slurm.conf" ] && [[ "$alive_now" == *slurmctld* ]]; then
    export SLURM_CONF="$DIR/slurm.conf"
    if [ -n "$(timeout 10 squeue -h -o %i 2>/dev/null)" ]; then
        timeout 10 scancel --user=root >/dev/null 2>&1 || true
        for _ in $(seq 40); do   # <= ~10 s: job gone and its slurmstepd exited
            [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && [ -z "$(our_stepds)" ] && break
            sleep 0.25
        done
    fi
fi

# 2. TERM in reverse start order (slurmd, slurmctld, slurmdbd, mariadbd, munged).
tac "$PIDS" | while read -r name pid st; do
    if is_ours "$pid" "$st"; then
        kill -TERM "$pid" 2>/dev/null && echo "slurm-down: TERM $name ($pid)" >&2
    fi
done

# 3. wait, then KILL what is left.
for _ in $(seq $((TIMEOUT * 10))); do
    [ -z "$(ours_alive)" ] && break
    sleep 0.1
done
left=$(ours_alive)
if [ -n "$left" ]; then
    while read -r name pid; do
        echo "slurm-down: KILL $name ($pid) after ${TIMEOUT}s" >&2
        kill -KILL "$pid" 2>/dev/null || true
    done <<< "$left"
    for _ in $(seq 50); do [ -z "$(ours_alive)" ] && break; sleep 0.1; done
fi

# 4. job steps orphaned by an abnormal end of slurmd (e.g. it was SIGKILLed
#    while a job ran) survive it: kill them with their job processes.
for p in $(our_stepds); do
    echo "slurm-down: KILL orphaned slurmstepd $p and its job processes" >&2
    # shellcheck disable=SC2046  # one pid per word
    kill -KILL $(tree "$p") 2>/dev/null || true
done

left=$(ours_alive)
if [ -n "$left" ]; then
    echo "slurm-down: ERROR: still alive: $left" >&2
    exit 1
fi
mv -f "$PIDS" "$PIDS.stopped"
echo "slurm-down: stopped cluster in $DIR" >&2
