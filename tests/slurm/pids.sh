# shellcheck shell=bash
# Sourced by slurm-up.sh and slurm-down.sh: which recorded daemon is still the very process that
# slurm-up.sh started. A pid is identified together with its start time (guards against pid reuse).

proc_stat() {  # proc_stat PID N: field N of /proc/PID/stat after "(comm)": 1=state 2=ppid 20=starttime
    local n=$2 s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    s=${s##*) }
    set -f      # word splitting wanted, globbing not
    # shellcheck disable=SC2086
    set -- $s
    set +f
    echo "${!n}"
}
starttime() { proc_stat "$1" 20; }
is_ours() {  # is_ours PID STARTTIME: alive (zombies count as dead) and the very process we started
    [ -n "$1" ] && [ -e "/proc/$1" ] && [ "$(starttime "$1")" = "$2" ] &&
        [ "$(proc_stat "$1" 1)" != Z ]
}
