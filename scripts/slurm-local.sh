#!/usr/bin/env bash
# A throw-away single-node SLURM cluster on localhost, for testing the workflow's SLURM profile.
# Debian 12, run as root, no systemd needed.
#
#   scripts/slurm-local.sh up       install slurm-wlm + munge if missing, configure, start, wait
#                                   for an idle node (a drained node is resumed); idempotent
#   scripts/slurm-local.sh down     stop only the daemons this script started (PID files in
#                                   $STATE/pids), newest first
#   scripts/slurm-local.sh status   which of our daemons run; exit 0 only if the node is usable
#
# Environment:
#   STATE=<dir>   PID files, logs and fake GPU devices (default: /tmp/iman-slurm-local)
#   FAKE_GPUS=N   advertise N fake GPUs (gres/gpu) backed by /dev/null-like char devices
#                 (default 2; 0 = no GPUs)
#
# It writes /etc/slurm/{slurm,gres}.conf and /var/lib/slurm, so sbatch/squeue need no SLURM_CONF.
# If a cluster that this STATE did not start already answers, `up` leaves it alone and only
# waits for its node. Every address is localhost. Without slurmdbd, run snakemake with
# `--slurm-status-command squeue`; MinJobAge=300 keeps finished jobs visible to squeue (the
# plugin falls back to sacct when MinJobAge < 3 x --slurm-init-seconds-before-status-checks).
set -euo pipefail

STATE=${STATE:-/tmp/iman-slurm-local}
FAKE_GPUS=${FAKE_GPUS:-2}
PIDS="$STATE/pids"
LOGS="$STATE/log"
CONF_DIR=/etc/slurm
NODE=localhost

log() { echo "[slurm-local] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# alive PIDFILE: the PID file exists and names a live process
alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_for SECONDS CMD...: poll CMD every 0.25 s until it succeeds
wait_for() {
  local t=$1
  shift
  local i
  for ((i = 0; i < t * 4; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  log "timeout after ${t} s waiting for: $*"
  return 1
}

node_state() { sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n1; }

# node_ready: the node accepts jobs (no side effects)
# ("idle*": a trailing * means slurmd does not respond)
node_ready() { [[ $(node_state) =~ ^(idle|mix|alloc|comp)[a-z]*$ ]]; }

# node_usable: the node accepts jobs; resume it when it is drained/down (e.g. after a gres change)
node_usable() {
  local s
  s=$(node_state)
  case "$s" in
    *'*') return 1 ;;
    idle* | mix* | alloc* | comp*) return 0 ;;
    drain* | drng* | down* | inval* | fail*)
      scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
      return 1
      ;;
    *) return 1 ;;
  esac
}

need_root() {
  [[ $(id -u) == 0 ]] || die "must run as root (installs packages, writes /etc/slurm, mknod)"
}

install_pkgs() {
  local pkgs=(slurm-wlm munge) n
  n=$(dpkg-query -W -f='${Status}\n' "${pkgs[@]}" 2>/dev/null | grep -c 'install ok installed' || true)
  [[ $n == "${#pkgs[@]}" ]] && return 0
  command -v apt-get >/dev/null || die "apt-get not found: install slurm-wlm and munge by hand"
  log "installing ${pkgs[*]} with apt-get"
  # other engineers/CI steps may hold the dpkg lock: wait for it instead of failing
  apt-get -o DPkg::Lock::Timeout=300 update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "${pkgs[@]}" >/dev/null || die "apt-get install ${pkgs[*]} failed"
}

# write_if_changed FILE: replace FILE with stdin; return 0 if its content changed
write_if_changed() {
  local f=$1 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [[ -f "$f" ]] && cmp -s "$tmp" "$f"; then
    rm -f "$tmp"
    return 1
  fi
  install -m 644 "$tmp" "$f"
  rm -f "$tmp"
  return 0
}

# write_config: sets CONFIG_CHANGED=1 when slurm.conf or gres.conf changed
CONFIG_CHANGED=0
write_config() {
  local cpus mem_mb gres_node="" last
  cpus=$(nproc)
  # RealMemory must not exceed what slurmd detects: use 80 % of MemTotal
  mem_mb=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) * 8 / 10 / 1024))
  mkdir -p "$STATE" "$PIDS" "$LOGS" "$CONF_DIR" /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
  chown slurm:slurm /var/lib/slurm/slurmctld "$LOGS"
  if ((FAKE_GPUS > 0)); then
    mkdir -p "$STATE/dev"
    last=$((FAKE_GPUS - 1))
    for i in $(seq 0 "$last"); do
      # a char device with the major/minor of /dev/null: slurmd accepts it as a GPU file
      [[ -c "$STATE/dev/gpu$i" ]] || mknod "$STATE/dev/gpu$i" c 1 3
    done
    gres_node="Gres=gpu:$FAKE_GPUS"
    if write_if_changed "$CONF_DIR/gres.conf" \
      <<<"NodeName=$NODE Name=gpu File=$STATE/dev/gpu[0-$last]"; then CONFIG_CHANGED=1; fi
  else
    if write_if_changed "$CONF_DIR/gres.conf" </dev/null; then CONFIG_CHANGED=1; fi
  fi
  if write_if_changed "$CONF_DIR/slurm.conf" <<EOF; then CONFIG_CHANGED=1; fi
# written by scripts/slurm-local.sh (STATE=$STATE)
ClusterName=localcluster
SlurmctldHost=localhost
SlurmUser=slurm
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=$PIDS/slurmctld.pid
SlurmdPidFile=$PIDS/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
# finished jobs stay visible to squeue for 5 min: the snakemake slurm plugin's squeue status
# mode needs MinJobAge >= 120 s (3 x its default init delay of 40 s)
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=$NODE CPUs=$cpus RealMemory=$mem_mb $gres_node State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  if alive "$PIDS/munged.pid"; then return 0; fi
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "a munged not started from $STATE is running; using it"
    return 0
  fi
  mkdir -p /run/munge
  chown munge:munge /run/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    /usr/sbin/mungekey --create --force >/dev/null 2>&1 ||
      dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
  wait_for 10 test -s /run/munge/munged.pid || die "munged did not start"
  cp /run/munge/munged.pid "$PIDS/munged.pid"
  wait_for 10 bash -c 'munge -n | unmunge' || die "munge does not work"
}

start_slurm() {
  if ((CONFIG_CHANGED)) && { alive "$PIDS/slurmctld.pid" || alive "$PIDS/slurmd.pid"; }; then
    # node/gres changes need both daemons restarted (scontrol reconfigure is not enough)
    log "configuration changed: restarting slurmd and slurmctld"
    stop_daemon slurmd
    stop_daemon slurmctld
  fi
  if ! alive "$PIDS/slurmctld.pid"; then
    /usr/sbin/slurmctld || die "slurmctld failed to start; see $LOGS/slurmctld.log"
    wait_for 30 scontrol ping || die "slurmctld does not answer; see $LOGS/slurmctld.log"
  fi
  if ! alive "$PIDS/slurmd.pid"; then
    /usr/sbin/slurmd -N "$NODE" || die "slurmd failed to start; see $LOGS/slurmd.log"
  fi
}

# foreign_cluster: some slurmctld answers but not one started from this STATE
foreign_cluster() {
  ! alive "$PIDS/slurmctld.pid" && scontrol ping 2>/dev/null | grep -q 'is UP'
}

up() {
  local t0=$SECONDS
  need_root
  install_pkgs
  if foreign_cluster; then
    log "a SLURM cluster not started from $STATE already runs; leaving its config alone"
  else
    write_config
    start_munge
    start_slurm
  fi
  wait_for 60 node_usable || die "node $NODE not idle: $(node_state); see $LOGS/"
  log "up in $((SECONDS - t0)) s"
  sinfo
}

stop_daemon() {
  local name=$1 f pid i
  f="$PIDS/$name.pid"
  if alive "$f"; then
    pid=$(cat "$f")
    kill "$pid"
    for ((i = 0; i < 60; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name ($pid) ignored SIGTERM, sending SIGKILL"
      kill -9 "$pid"
    fi
    log "stopped $name ($pid)"
  fi
  rm -f "$f"
}

down() {
  local name
  for name in slurmd slurmctld munged; do stop_daemon "$name"; done
}

status() {
  local name rc=0
  for name in munged slurmctld slurmd; do
    if alive "$PIDS/$name.pid"; then
      echo "$name: running (pid $(cat "$PIDS/$name.pid"))"
    else
      echo "$name: not started from $STATE"
    fi
  done
  if command -v sinfo >/dev/null && sinfo 2>/dev/null; then
    node_ready || rc=1
  else
    echo "no SLURM controller answers"
    rc=1
  fi
  return "$rc"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *)
    echo "usage: $0 up|down|status   (env STATE=<dir>, FAKE_GPUS=N)" >&2
    exit 2
    ;;
esac
