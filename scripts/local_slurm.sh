#!/usr/bin/env bash
# Start / stop a single-node SLURM cluster on this machine, to try the workflow's slurm profile
# without a real cluster (Debian's slurm-wlm; run as root).
#   scripts/local_slurm.sh start   # installs slurm-wlm if missing, starts munged, slurmctld, slurmd
#   scripts/local_slurm.sh stop    # stops the three daemons by their PIDs
set -euo pipefail
state=/tmp/gsdf-local-slurm
cmd=${1:-}
case "$cmd" in
start)
  if ! command -v slurmctld >/dev/null; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm >/dev/null
  fi
  mkdir -p "$state" /etc/slurm /var/spool/slurmctld /var/spool/slurmd /run/munge /var/log/slurm
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=gsdf-local
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  [ -f /etc/munge/munge.key ] || mungekey --create >/dev/null 2>&1 || \
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
  su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=/run/munge/munged.pid"
  cp /run/munge/munged.pid "$state/munged.pid"
  slurmctld
  slurmd -N localhost
  for _ in $(seq 30); do
    sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed" && { echo "local SLURM is up"; exit 0; }
    sleep 1
  done
  echo "SLURM did not come up; see /var/log/slurm/" >&2; exit 1
  ;;
stop)
  for d in slurmd slurmctld munged; do
    if [ -f "$state/$d.pid" ]; then
      pid=$(cat "$state/$d.pid")
      kill "$pid" 2>/dev/null || true
      # wait (up to 10 s) until it is gone, so that a following start finds the port free
      for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      rm -f "$state/$d.pid"
    fi
  done
  echo "local SLURM stopped"
  ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
