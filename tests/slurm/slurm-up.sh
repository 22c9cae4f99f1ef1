#!/usr/bin/env bash
# slurm-up.sh DIR — install (if missing) and start a throw-away single-node
# SLURM cluster on this machine, with ALL state under DIR.
#
#   DIR/env.sh     source it: exports SLURM_CONF, puts DIR/bin (client wrappers) first
#                  in PATH, and SLURM_TEST_{DIR,PARTITION,ACCOUNT,STATUS_COMMAND}
#   DIR/pids       "name pid starttime" of every daemon THIS script started
#   DIR/log/       daemon logs (printed on start-up failure)
#   DIR/slurm.conf, DIR/slurmdbd.conf, DIR/state/, DIR/munge/, DIR/mysql/
#
# Stop it with slurm-down.sh DIR.  Running slurm-up.sh again on a DIR whose
# daemons are all alive does not start duplicates.
#
# Environment knobs (all optional):
#   SLURM_UP_ACCOUNTING=1|0  1 (default): slurmdbd + MariaDB (datadir under DIR), so
#                            `sacct`, `sacctmgr` and account validation work exactly
#                            as on a production cluster.  0: no accounting (smaller
#                            install, ~0.5 s start); `sacct` then FAILS, so snakemake
#                            needs --slurm-status-command squeue (else it hangs).
#   SLURM_UP_ACCOUNT=NAME    account created in the accounting db (default: qbcat);
#                            root is associated with it (and with "root").
#   SLURM_UP_PARTITION=NAME  partition name, Default=YES (default: debug)
#   SLURM_UP_TIMEOUT=SECS    bounded wait for the node to become idle (default: 60)
#   SLURM_UP_PORT_BASE=N     first port tried for slurmctld (default: 6817); slurmd and
#                            slurmdbd use the next two.  Occupied ports are skipped.
set -euo pipefail

die() { echo "slurm-up: ERROR: $*" >&2; exit 1; }
log() { echo "slurm-up: $*" >&2; }

[ $# -eq 1 ] || die "usage: $0 DIR"
[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, SlurmUser=root)"

mkdir -p "$1"
DIR=$(cd "$1" && pwd -P)
ACCOUNTING=${SLURM_UP_ACCOUNTING:-1}
ACCOUNT=${SLURM_UP_ACCOUNT:-qbcat}
PARTITION=${SLURM_UP_PARTITION:-debug}
TIMEOUT=${SLURM_UP_TIMEOUT:-60}
PORT_BASE=${SLURM_UP_PORT_BASE:-6817}
CLUSTER=qbcat
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

# Unix socket paths are limited to 107 bytes.
[ ${#DIR} -le 70 ] || die "DIR path too long for unix sockets (${#DIR} > 70 chars): $DIR"

# ---------------------------------------------------------------- packages
install_packages() {
    local pkgs=(slurmctld slurmd slurm-client munge)
    [ "$ACCOUNTING" = 1 ] && pkgs+=(slurmdbd mariadb-server mariadb-client)
    local missing=() p
    for p in "${pkgs[@]}"; do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get"
    log "installing: ${missing[*]}"
    local created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        # keep Debian's postinst scripts from auto-starting the system services
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    local rc=0
    {
        apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${missing[@]}"
    } >"$DIR/apt.log" 2>&1 || rc=$?
    [ $created_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
    if [ $rc -ne 0 ]; then
        tail -n 30 "$DIR/apt.log" >&2
        die "apt-get failed (rc=$rc), full log: $DIR/apt.log"
    fi
}

# ---------------------------------------------------------------- pid bookkeeping
PIDS="$DIR/pids"
# shellcheck source=tests/slurm/pids.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/pids.sh"
record() {  # record NAME PID
    echo "$1 $2 $(starttime "$2")" >> "$PIDS"
}

dump_logs() {
    local f
    for f in "$DIR"/log/*.log "$DIR"/log/*.out; do
        [ -s "$f" ] || continue
        echo "=================== $f (last 40 lines)" >&2
        tail -n 40 "$f" >&2
    done
}

fail() {  # stop what we started, print logs, exit 1
    STARTING=0
    echo "slurm-up: ERROR: $*" >&2
    echo "slurm-up: daemon logs are in $DIR/log/" >&2
    dump_logs
    "$HERE/slurm-down.sh" "$DIR" >&2 || true
    exit 1
}
# any other failure (set -e) or a signal while starting: same clean-up
STARTING=0
on_exit() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ "$STARTING" = 1 ]; then
        fail "start-up aborted (exit status $rc)"
    fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM HUP

# ---------------------------------------------------------------- idempotence
if [ -s "$PIDS" ]; then
    alive=0 total=0
    while read -r name pid st; do
        total=$((total + 1))
        is_ours "$pid" "$st" && alive=$((alive + 1))
    done < "$PIDS"
    if [ "$alive" -eq "$total" ] && [ -s "$DIR/env.sh" ]; then
        # shellcheck disable=SC1091
        . "$DIR/env.sh"
        state=$(timeout -k 1 5 sinfo -h -N -o %t 2>/dev/null | head -n1 || true)
        if [[ "$state" =~ ^(idle|mix|alloc)$ ]]; then
            log "already running in $DIR (pids: $(awk '{printf "%s=%s ", $1, $2}' "$PIDS"))"
            exit 0
        fi
    fi
    log "stale or partial cluster in $DIR: stopping it and starting again"
    "$HERE/slurm-down.sh" "$DIR" >&2
fi

install_packages

# ---------------------------------------------------------------- ports
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_ports() {
    local base=$PORT_BASE _
    for _ in $(seq 0 40); do
        if ! port_busy "$base" && ! port_busy $((base + 1)) && ! port_busy $((base + 2)); then
            CTLD_PORT=$base; SLURMD_PORT=$((base + 1)); DBD_PORT=$((base + 2))
            return 0
        fi
        base=$((base + 10))
    done
    die "no free port triple found from $PORT_BASE on"
}
pick_ports

# ---------------------------------------------------------------- config
NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
MEM_MB=$((MEM_MB > 1024 ? MEM_MB - 256 : MEM_MB))      # leave a little for the OS
DEF_MEM=$((MEM_MB / CPUS)); [ $DEF_MEM -gt 1024 ] && DEF_MEM=1024
MUNGE_SOCK="$DIR/munge/munge.socket.2"
MYSQL_SOCK="$DIR/mysql/mysqld.sock"

rm -rf "$DIR/state" "$DIR/log" "$DIR/munge" "$DIR/mysql" "$PIDS"
mkdir -p "$DIR/state/ctld" "$DIR/state/slurmd" "$DIR/log" "$DIR/run" "$DIR/munge"
chmod 755 "$DIR/munge"          # munged insists on a searchable socket dir

if [ "$ACCOUNTING" = 1 ]; then
    ACCT_CONF="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$MUNGE_SOCK
AccountingStorageEnforce=associations
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"
else
    ACCT_CONF="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi

cat > "$DIR/slurm.conf" <<EOF
# generated by slurm-up.sh — single-node test cluster, no systemd/cgroups needed
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCK
StateSaveLocation=$DIR/state/ctld
SlurmdSpoolDir=$DIR/state/slurmd
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$DIR/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEF_MEM
ReturnToService=2
EnforcePartLimits=ALL
MinJobAge=300
KillWait=5
InactiveLimit=0
SlurmdTimeout=60
SlurmdParameters=config_overrides
JobCompType=jobcomp/none
MailProg=/bin/true
$ACCT_CONF
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
: > "$DIR/plugstack.conf"

# Client wrappers that default SLURM_CONF to this cluster.  Needed because
# snakemake-executor-plugin-slurm-jobstep strips every SLURM_* variable (SLURM_CONF
# included) before its nested `srun` inside the job; without a config at the
# compiled-in /etc/slurm/slurm.conf that srun dies with "Could not establish a
# configuration source".  env.sh puts DIR/bin first in PATH (exported into jobs).
real_cmd() {  # first $1 in PATH that is not a wrapper made by this script
    local d
    local IFS=:
    for d in $PATH /usr/bin /usr/local/bin; do
        [ -x "$d/$1" ] && ! grep -qs 'slurm-up.sh wrapper' "$d/$1" && { echo "$d/$1"; return; }
    done
    echo "/usr/bin/$1"
}
mkdir -p "$DIR/bin"
for c in srun sbatch squeue sacct scancel sinfo scontrol sacctmgr salloc sshare sstat; do
    real=$(real_cmd "$c")
    # shellcheck disable=SC2016  # $SLURM_CONF/$@ expand in the wrapper, not here
    printf '#!/bin/sh\n# slurm-up.sh wrapper\n: "${SLURM_CONF:=%s}"\nexport SLURM_CONF\nexec %s "$@"\n' \
        "$DIR/slurm.conf" "$real" > "$DIR/bin/$c"
    chmod 755 "$DIR/bin/$c"
done

cat > "$DIR/env.sh" <<EOF
# source me: clients (sbatch, squeue, sacct, snakemake's slurm plugin) of the test cluster
export SLURM_CONF=$DIR/slurm.conf
case ":\$PATH:" in *":$DIR/bin:"*) ;; *) export PATH="$DIR/bin:\$PATH" ;; esac
export SLURM_TEST_DIR=$DIR
export SLURM_TEST_PARTITION=$PARTITION
export SLURM_TEST_ACCOUNTING=$ACCOUNTING
export SLURM_TEST_ACCOUNT=$ACCOUNT
export SLURM_TEST_STATUS_COMMAND=$( [ "$ACCOUNTING" = 1 ] && echo sacct || echo squeue )
EOF
export SLURM_CONF="$DIR/slurm.conf"

# start DAEMON NAME LOGFILE CMD... : run in foreground mode, detached from our
# session/stdio (so callers that capture our output don't hang), record pid.
start() {
    local name=$1 out=$2; shift 2
    setsid "$@" </dev/null >>"$out" 2>&1 &
    local pid=$!
    sleep 0.05
    record "$name" "$pid"
}

wait_for() {  # wait_for SECS DESCRIPTION CMD...   (each probe is capped at 5 s)
    local secs=$1 what=$2; shift 2
    local deadline=$((SECONDS + secs))
    until timeout -k 1 5 "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || fail "timed out after ${secs}s waiting for $what"
        sleep 0.1
    done
}

# ---------------------------------------------------------------- munge
STARTING=1
mungekey -c -b 1024 -k "$DIR/munge/munge.key" 2>/dev/null ||
    { dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1 count=1024 2>/dev/null; chmod 600 "$DIR/munge/munge.key"; }
# runs as root with its own key and socket under DIR; --force accepts a socket
# path whose parents (e.g. a 0700 mktemp dir) are not searchable by everybody.
start munged "$DIR/log/munged.out" munged --foreground --force \
    --socket="$MUNGE_SOCK" --key-file="$DIR/munge/munge.key" \
    --log-file="$DIR/log/munged.log" --pid-file="$DIR/munge/munged.pid" \
    --seed-file="$DIR/munge/munged.seed"
wait_for 10 munged bash -c "munge -n -S '$MUNGE_SOCK' | unmunge -S '$MUNGE_SOCK'"

# ---------------------------------------------------------------- accounting
if [ "$ACCOUNTING" = 1 ]; then
    mkdir -p "$DIR/mysql"
    # a fresh database per start: job ids restart at 1 with the fresh StateSaveLocation
    mariadb-install-db --no-defaults --user=root --datadir="$DIR/mysql/data" \
        --auth-root-authentication-method=socket --skip-test-db \
        --innodb-log-file-size=16M --innodb-buffer-pool-size=64M \
        >"$DIR/log/mariadb-install.log" 2>&1 || fail "mariadb-install-db failed"
    start mariadbd "$DIR/log/mariadbd.out" mariadbd --no-defaults --user=root \
        --datadir="$DIR/mysql/data" --socket="$MYSQL_SOCK" \
        --pid-file="$DIR/mysql/mysqld.pid" --skip-networking \
        --log-error="$DIR/log/mariadbd.log" --innodb-buffer-pool-size=64M \
        --innodb-log-file-size=16M
    wait_for 30 mariadbd mariadb --no-defaults -S "$MYSQL_SOCK" -u root -e 'select 1'
    mariadb --no-defaults -S "$MYSQL_SOCK" -u root -e \
        'DROP DATABASE IF EXISTS slurm_acct_db; CREATE DATABASE slurm_acct_db;'

    cat > "$DIR/slurmdbd.conf" <<EOF
# generated by slurm-up.sh
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$DIR/slurmdbd.conf"
    # slurmdbd reads slurmdbd.conf next to $SLURM_CONF; the MariaDB client
    # library takes the unix socket for "localhost" from MYSQL_UNIX_PORT.
    start slurmdbd "$DIR/log/slurmdbd.out" \
        env MYSQL_UNIX_PORT="$MYSQL_SOCK" SLURM_CONF="$DIR/slurm.conf" slurmdbd -D
    wait_for 30 slurmdbd sacctmgr -n list cluster
    sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
fi

# ---------------------------------------------------------------- slurmctld, slurmd
start slurmctld "$DIR/log/slurmctld.out" slurmctld -D -i -f "$DIR/slurm.conf"
wait_for 30 slurmctld scontrol ping
start slurmd "$DIR/log/slurmd.out" slurmd -D -N "$NODE" -f "$DIR/slurm.conf"

if [ "$ACCOUNTING" = 1 ]; then
    sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" \
        description="test account" organization=qbcat >/dev/null 2>&1 || true
    sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null 2>&1 || true
fi

node_state() { timeout -k 1 5 sinfo -h -n "$NODE" -o %t 2>/dev/null; }
deadline=$((SECONDS + TIMEOUT)); resumed=0
until [ "$(node_state)" = idle ]; do
    [ $SECONDS -lt $deadline ] ||
        fail "node $NODE not idle after ${TIMEOUT}s: $(timeout 5 sinfo -N -l 2>&1)"
    # a node that registered 'down'/'drain' (e.g. state left by a crash) is resumed once
    if [ $resumed = 0 ] && [[ "$(node_state)" =~ down|drain ]]; then
        sleep 1; resumed=1
        scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
    fi
    for p in slurmctld slurmd; do
        read -r _ pid st < <(grep "^$p " "$PIDS")
        is_ours "$pid" "$st" || fail "$p died during start-up"
    done
    sleep 0.2
done

# end-to-end: a job step really runs
timeout 30 srun -N1 -n1 -t 1 -J slurm-up-check true >/dev/null 2>"$DIR/log/srun-check.err" ||
    fail "srun smoke test failed: $(cat "$DIR/log/srun-check.err")"

STARTING=0
log "cluster up in $DIR after ${SECONDS}s: node $NODE idle (CPUs=$CPUS RealMemory=${MEM_MB}M," \
    "partition=$PARTITION, accounting=$ACCOUNTING, ctld port $CTLD_PORT)"
log "use: source $DIR/env.sh"
