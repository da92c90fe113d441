#!/usr/bin/env bash
# A single-node SLURM cluster on this machine (munged + slurmctld + slurmd from the Debian 12
# packages, no systemd), to try the SLURM path of difffit without a real cluster.
# Everything runs as root (SlurmUser=root). Idempotent: start on a running cluster and stop on a
# stopped one do nothing.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: slurm/local-cluster.sh start|stop|status

  start    install munge/slurm if missing (apt, as root), write /etc/slurm/slurm.conf for this
           host, start munged, slurmctld and slurmd, and wait until the node is idle
  stop     cancel all jobs, then stop slurmd, slurmctld and munged (by pid file)
  status   print whether each daemon runs, the node state and the queue; exit 0 when the
           cluster is up (node idle, mixed or allocated), 1 otherwise

environment:
  LOCAL_SLURM_TIMEOUT=60       seconds to wait for the node to become idle
  LOCAL_SLURM_CRED_EXPIRE=10   seconds a requeued job waits before it may start again
                               (SLURM's default of 120 makes every requeue take over 2 minutes)
  LOCAL_SLURM_INSTALL=1        0: never call apt-get
  LOCAL_SLURM_KEEP_MUNGE=0     1: stop leaves munged running
EOF
}

CONF=/etc/slurm/slurm.conf
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
NODE=$(hostname -s)
TIMEOUT=${LOCAL_SLURM_TIMEOUT:-60}

need_root() { [ "$(id -u)" = 0 ] || { echo "local-cluster.sh: $1 needs root" >&2; exit 1; }; }

# running PID NAME: the process exists, is not a zombie (PID 1 here may reap late, and kill -0
# succeeds on a zombie) and is really NAME (a stale pid file may name a reused pid).
running() {
  local pid=$1 name=$2
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]
}
pid_of() { cat "$1" 2>/dev/null || true; }
daemon_up() { running "$(pid_of "$1")" "$2"; }

node_state() { sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -n1 || true; }

write_conf() {
  local cpus mem
  cpus=$(nproc)
  mem=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)   # MB, leave 10% to the OS
  mkdir -p /etc/slurm
  cat > "$CONF.new" <<EOF
# Single-node local cluster written by difffit's slurm/local-cluster.sh; do not use in production.
ClusterName=local
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# a requeued job may only start again after the credential expires (default 120 s)
AuthInfo=cred_expire=${LOCAL_SLURM_CRED_EXPIRE:-10}
CredType=cred/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID}
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
# Debian's Open MPI has PMIx only (no PMI2)
MpiDefault=pmix
JobRequeue=1
ReturnToService=2
MinJobAge=600
KillWait=10
InactiveLimit=0
MailProg=/bin/true
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=local Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  if cmp -s "$CONF.new" "$CONF"; then rm -f "$CONF.new"; return 1; fi
  mv "$CONF.new" "$CONF"
  return 0
}

start_munge() {
  # the Debian postinst creates the key; make one if it is missing
  mkdir -p /etc/munge /var/lib/munge /var/log/munge
  chown munge:munge /etc/munge /var/lib/munge /var/log/munge
  [ -s /etc/munge/munge.key ] || runuser -u munge -- /usr/sbin/mungekey --create
  chown munge:munge /etc/munge/munge.key
  chmod 0700 /etc/munge
  chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged      # daemonizes, writes $MUNGE_PID
    local _
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  munge -n | unmunge >/dev/null || { echo "munged does not work (see /var/log/munge)" >&2; exit 1; }
}

cmd_start() {
  need_root start
  if ! { command -v slurmctld && command -v slurmd && command -v munged && command -v sbatch; } >/dev/null 2>&1; then
    [ "${LOCAL_SLURM_INSTALL:-1}" = 1 ] || { echo "slurm/munge not installed and LOCAL_SLURM_INSTALL=0" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # openmpi-bin pulls in libpmix2, which SLURM's mpi/pmix plugin loads at run time
    apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends \
      munge slurmctld slurmd slurm-client openmpi-bin
  fi
  start_munge
  mkdir -p /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
  local changed=0
  write_conf && changed=1
  # a changed config on running daemons: reconfigure them rather than restart (keeps the jobs)
  if [ $changed = 1 ] && daemon_up "$CTLD_PID" slurmctld; then
    echo "slurm.conf changed; scontrol reconfigure"
    scontrol reconfigure || true
  fi
  daemon_up "$CTLD_PID" slurmctld || /usr/sbin/slurmctld     # both daemonize and write pid files
  daemon_up "$SLURMD_PID" slurmd || /usr/sbin/slurmd

  local t0 st
  t0=$(date +%s)
  while :; do
    st=$(node_state)
    # exact match: a trailing '*' (idle*) means the node is not responding yet
    case "$st" in
      idle|mixed|allocated|completing) break ;;
      down|drain*|down\*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    if [ $(( $(date +%s) - t0 )) -ge "$TIMEOUT" ]; then
      echo "node $NODE not idle after ${TIMEOUT}s (state: ${st:-none})" >&2
      tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
      exit 1
    fi
    sleep 0.3
  done
  echo "local SLURM cluster up: node $NODE is $st ($(nproc) CPUs)"
}

# stop_daemon NAME PIDFILE: signal only the pid in the file, and only if it really is NAME
stop_daemon() {
  local name=$1 pf=$2 pid _
  pid=$(pid_of "$pf")
  if ! running "$pid" "$name"; then
    if [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" != "$name" ]; then
      echo "$name: pid $pid in $pf is $(cat "/proc/$pid/comm"), leaving it alone" >&2
    else
      echo "$name: not running"
    fi
    rm -f "$pf"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 100); do running "$pid" "$name" || break; sleep 0.1; done
  if running "$pid" "$name"; then
    echo "$name: still running after 10 s, sending KILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pf"
  echo "$name: stopped (pid $pid)"
}

cmd_stop() {
  need_root stop
  # cancel jobs first, so that no slurmstepd is left behind without its slurmd
  if daemon_up "$CTLD_PID" slurmctld; then
    local jobs _
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      echo "cancelling jobs: ${jobs//$'\n'/ }"
      # shellcheck disable=SC2086
      scancel $jobs || true
      for _ in $(seq 60); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.5; done
    fi
  fi
  stop_daemon slurmd "$SLURMD_PID"
  stop_daemon slurmctld "$CTLD_PID"
  if [ "${LOCAL_SLURM_KEEP_MUNGE:-0}" = 1 ]; then echo "munged: left running"; else stop_daemon munged "$MUNGE_PID"; fi
}

cmd_status() {
  local up=0 st
  local name pf
  while read -r name pf; do
    if daemon_up "$pf" "$name"; then echo "$name: running (pid $(pid_of "$pf"))"; else echo "$name: not running"; fi
  done <<EOF
munged $MUNGE_PID
slurmctld $CTLD_PID
slurmd $SLURMD_PID
EOF
  if daemon_up "$CTLD_PID" slurmctld; then
    st=$(node_state)
    echo "node $NODE: ${st:-unknown}"
    case "$st" in idle|mixed|allocated|completing) up=1 ;; esac
    squeue -o '%.8i %.12j %.10T %.10M %.6D %R' 2>/dev/null || true
  fi
  [ $up = 1 ]
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
