#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for trying the SLURM profile and train_ddp.sbatch
# (and for the tests, which start and stop it). Debian/Ubuntu, as root.
#
#   workflows/hpc/local_cluster.sh start DIR   # install if missing, configure, start, wait idle
#   export SLURM_CONF=DIR/slurm.conf           # then sinfo, sbatch, srun, snakemake --profile
#   workflows/hpc/local_cluster.sh stop DIR    # stop every daemon this script started
#
# One node (this host, all its CPUs), one partition `debug`, consumable trackable resources
# (cons_tres), no accounting database. Configuration, state, logs and pid files live in DIR.
# While it runs, /etc/slurm/slurm.conf is a link to DIR/slurm.conf when no such file exists
# (jobs that call srun inside, like Snakemake's SLURM job steps, drop SLURM_CONF); stop removes
# the link. Nothing else under /etc changes beyond what installing slurm-wlm and munge does.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
conf="$dir/slurm.conf"

install_if_missing() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && return
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "slurm-wlm and munge are missing and cannot be installed (needs root and apt-get)" >&2
    exit 3
  fi
  echo "installing slurm-wlm and munge"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm munge >/dev/null
}

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  # the CPUs this host lets us use; nproc alone would also honour a caller's OMP_NUM_THREADS
  cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  mkdir -p "$dir/state" "$dir/spool"
  cat >"$conf" <<EOF
# written by workflows/hpc/local_cluster.sh: one node, no accounting
ClusterName=cellvae-local
SlurmctldHost=$host
SlurmUser=root
SlurmctldPort=${CELLVAE_SLURMCTLD_PORT:-6817}
SlurmdPort=${CELLVAE_SLURMD_PORT:-6818}
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
KillWait=10
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    return  # a munged is already running; leave it alone
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  [ -f /etc/munge/munge.key ] || mungekey --create
  chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
  # munged refuses to run as root: run it as the munge user the package created
  runuser -u munge -- munged --pid-file=/run/munge/munged.pid
  cp /run/munge/munged.pid "$dir/munged.pid"
}

link_default_conf() {
  if [ ! -e /etc/slurm/slurm.conf ] && [ ! -L /etc/slurm/slurm.conf ]; then
    mkdir -p /etc/slurm
    ln -s "$conf" /etc/slurm/slurm.conf
  elif [ "$(readlink /etc/slurm/slurm.conf)" != "$conf" ]; then
    echo "note: /etc/slurm/slurm.conf exists; srun inside jobs reads it, not $conf" >&2
  fi
}

unlink_default_conf() {
  if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$conf" ]; then
    rm -f /etc/slurm/slurm.conf
  fi
}

wait_idle() {
  local i
  for i in $(seq 1 60); do
    if [ "$(SLURM_CONF=$conf sinfo -h -o %t 2>/dev/null)" = idle ]; then
      echo "SLURM is up: export SLURM_CONF=$conf"
      return
    fi
    sleep 1
  done
  echo "SLURM did not come up within 60 s; logs in $dir" >&2
  exit 4
}

stop_pidfile() {
  local file=$1 pid i
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill "$pid" 2>/dev/null; then
    for i in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

ports_free() {
  local port
  for port in "${CELLVAE_SLURMCTLD_PORT:-6817}" "${CELLVAE_SLURMD_PORT:-6818}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "port $port is in use (another SLURM?); set CELLVAE_SLURMCTLD_PORT/_SLURMD_PORT" >&2
      exit 5
    fi
  done
}

cancel_jobs() {
  local jobs
  [ -f "$dir/slurmctld.pid" ] || return 0
  jobs=$(SLURM_CONF=$conf squeue -h -o %i 2>/dev/null || true)
  if [ -n "$jobs" ]; then
    # shellcheck disable=SC2086
    SLURM_CONF=$conf scancel $jobs 2>/dev/null || true
    sleep 2
  fi
}

case $action in
  start)
    install_if_missing
    ports_free
    write_conf
    link_default_conf
    start_munge
    SLURM_CONF=$conf slurmctld -f "$conf"
    SLURM_CONF=$conf slurmd -f "$conf"
    wait_idle
    ;;
  stop)
    cancel_jobs
    stop_pidfile "$dir/slurmd.pid"
    stop_pidfile "$dir/slurmctld.pid"
    stop_pidfile "$dir/munged.pid"
    unlink_default_conf
    ;;
  *) usage ;;
esac
