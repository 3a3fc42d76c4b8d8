#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the tests of `exp sweep --launcher slurm` and
# `exp launch --launcher slurm` (issue 19): munge, slurmctld and slurmd on 127.0.0.1, the
# machine's cores as the node's CPUs, one partition `debug`.
#
#   scripts/slurm-cluster.sh start    install (Debian's slurm-wlm and munge, if missing), configure,
#                                     start the daemons and wait until the node is idle
#   scripts/slurm-cluster.sh stop     stop the daemons this script started
#   scripts/slurm-cluster.sh status   exit 0 when the cluster answers, else 1
#
# Idempotent: `start` on a running cluster only checks it. It writes /etc/slurm/slurm.conf only
# when that file is absent or was written by this script (marker line below): a real cluster's
# configuration is never touched, and then `start` refuses with exit 3.
# Exit codes: 0 ready; 3 the packages cannot be installed here (not root, no apt-get, apt failed) or
# /etc/slurm/slurm.conf belongs to a real cluster: tests skip with the printed reason; 1 anything
# else, a daemon that does not start included (tests fail: issue 19 skips only where the packages
# cannot be had).
# State, logs and pid files live in RING_SLURM_DIR (default /var/tmp/ring-harness-slurm).
set -euo pipefail

DIR="${RING_SLURM_DIR:-/var/tmp/ring-harness-slurm}"
CONF=/etc/slurm/slurm.conf
MARKER='# written by ring-harness scripts/slurm-cluster.sh'
NODE="$(hostname -s)"

say() { echo "slurm-cluster: $*" >&2; }
unavailable() {
  say "unavailable: $*"
  exit 3
}
failed() {
  say "failed: $*"
  exit 1
}

need_root() {
  [ "$(id -u)" = 0 ] || unavailable "must run as root to install and start daemons (run under sudo)"
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return
  fi
  command -v apt-get >/dev/null || unavailable "slurmctld/slurmd/munged not found and no apt-get to install them"
  say "installing slurm-wlm and munge with apt-get (first run only)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$DIR/apt.log" 2>&1 || unavailable "apt-get update failed (see $DIR/apt.log)"
  apt-get install -y -qq slurm-wlm munge >>"$DIR/apt.log" 2>&1 ||
    unavailable "apt-get install slurm-wlm munge failed (see $DIR/apt.log)"
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
  [ -s /etc/munge/munge.key ] || {
    # the Debian package makes a key on install; make one if it is missing
    if command -v mungekey >/dev/null; then mungekey --create --force >/dev/null; else
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  }
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  # munged refuses to run as root; the package's user `munge` owns its key and socket
  runuser -u munge -- /usr/sbin/munged || failed "munged did not start (see /var/log/munge/munged.log)"
  for _ in $(seq 50); do
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
    sleep 0.1
  done
  failed "munged started but munge/unmunge does not work"
}

write_config() {
  if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
    unavailable "$CONF exists and was not written by this script (a real cluster?); not touching it"
  fi
  local cpus mem tmp
  cpus="$(nproc)"
  # memory the node offers: 90% of what the machine has, in MB
  mem="$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)"
  mkdir -p /etc/slurm "$DIR/state" "$DIR/spool"
  tmp="$(mktemp "$CONF.XXXXXX")"
  cat >"$tmp" <<EOF
$MARKER
ClusterName=ringtest
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
# no cgroups in containers: track processes by their parent chain, no CPU binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/builtin
# one CPU is the unit of allocation, so array cells with --cpus-per-task=1 share the node
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# scancel: SIGTERM, then SIGKILL this many seconds later (a cell ends its run KILLED in between)
KillWait=10
# finished jobs stay visible to squeue/scontrol this long (no accounting database here)
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  if [ -f "$CONF" ] && cmp -s "$tmp" "$CONF"; then rm -f "$tmp"; else mv "$tmp" "$CONF"; fi
  chmod 644 "$CONF"
}

# a daemon named by its pid file is running (not a zombie left for a parent to reap)
alive() {
  [ -f "$1" ] || return 1
  local st
  st="$(ps -o stat= -p "$(cat "$1")" 2>/dev/null || true)"
  [ -n "$st" ] && [ "${st#Z}" = "$st" ]
}

node_ready() {
  local state
  state="$(sinfo -h -n "$NODE" -o '%T' 2>/dev/null || true)"
  case "$state" in idle | mixed | allocated | completing) return 0 ;; *) return 1 ;; esac
}

start() {
  need_root
  mkdir -p "$DIR"
  install_packages
  start_munge
  write_config
  alive "$DIR/slurmctld.pid" || /usr/sbin/slurmctld -f "$CONF" || failed "slurmctld did not start (see $DIR/slurmctld.log)"
  alive "$DIR/slurmd.pid" || /usr/sbin/slurmd -f "$CONF" || failed "slurmd did not start (see $DIR/slurmd.log)"
  for _ in $(seq 150); do
    if node_ready; then
      say "ready: node $NODE with $(nproc) CPUs, partition debug (config $CONF, logs in $DIR)"
      return 0
    fi
    # a node left DOWN by an earlier run comes back on request
    scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
    sleep 0.2
  done
  say "the node did not become idle within 30 s; sinfo says: $(sinfo -h -o '%T %E' 2>&1 || true)"
  exit 1
}

stop() {
  for d in slurmd slurmctld; do
    if alive "$DIR/$d.pid"; then
      kill "$(cat "$DIR/$d.pid")"
      for _ in $(seq 50); do alive "$DIR/$d.pid" || break; sleep 0.1; done
    fi
  done
  say "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) node_ready ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
