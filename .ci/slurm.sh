#!/usr/bin/env bash
# A real one-node SLURM cluster on localhost for the SLURM suite (pytest -m slurm): Debian's
# slurmctld + slurmd + munge, started as root without systemd or cgroups (recipe measured in
# ../shared/NOTES.md), then `pytest -m slurm`, then the daemons stopped by their PIDs.
#   .ci/slurm.sh            install if needed, start, run the suite, stop
#   .ci/slurm.sh start      start and leave running (prints the SLURM_CONF to export); .ci/slurm.sh stop
# Everything the cluster writes (config, state, spool, logs, pid files) lives in $SLURM_DIR
# (default /tmp/harness-slurm), so /etc/slurm is left alone; clients find it through SLURM_CONF.
set -uo pipefail
cd "$(dirname "$0")/.."
SLURM_DIR=${SLURM_DIR:-/tmp/harness-slurm}
export SLURM_CONF=$SLURM_DIR/slurm.conf

install() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null && return 0
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurmctld slurmd slurm-client munge
}

write_conf() {
  local node
  node=$(slurmd -C | head -1)  # NodeName=<host> CPUs=... RealMemory=...: this machine as slurmd sees it
  mkdir -p "$SLURM_DIR"/{state,spool}
  cat > "$SLURM_CONF" <<CONF
ClusterName=local
SlurmctldHost=$(hostname)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/slurmctld.log
SlurmdLogFile=$SLURM_DIR/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
# seconds between scancel's SIGTERM and SIGKILL (default 30; submitit ignores SIGTERM)
KillWait=5
MinJobAge=600
${node} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
}

start() {
  install || return 1
  [ -f "$SLURM_DIR/slurmctld.pid" ] && stop >/dev/null  # daemons left by an interrupted run
  write_conf
  if ! pgrep -x munged >/dev/null; then
    mkdir -p /run/munge && chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged --force || return 1
    touch "$SLURM_DIR/started-munged"
  fi
  slurmctld || return 1
  slurmd || return 1
  local i
  for i in $(seq 30); do
    sinfo -h -o '%t' 2>/dev/null | grep -qx idle && { echo "slurm: node idle (SLURM_CONF=$SLURM_CONF)"; return 0; }
    sleep 1
  done
  echo "slurm: the node did not come up idle"; sinfo; tail -20 "$SLURM_DIR"/slurm*.log
  return 1
}

stop() {
  local pidfile
  for pidfile in "$SLURM_DIR/slurmd.pid" "$SLURM_DIR/slurmctld.pid"; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
    rm -f "$pidfile"
  done
  if [ -f "$SLURM_DIR/started-munged" ]; then
    kill "$(cat /run/munge/munged.pid)" 2>/dev/null
    rm -f "$SLURM_DIR/started-munged"
  fi
  sleep 1
  echo "slurm: daemons stopped"
}

suite() {
  local start=$SECONDS rc
  start || { stop; return 1; }
  TQDM_DISABLE=1 python -m pytest -q -m slurm
  rc=$?
  [ "$rc" -eq 5 ] && { echo "pytest collected no SLURM tests: treating as a failure"; rc=1; }
  stop
  echo "SLURM step: $((SECONDS - start)) s"
  return "$rc"
}

case "${1:-suite}" in
  start) start ;;
  stop) stop ;;
  suite) suite ;;
  *) echo "usage: $0 [suite|start|stop]"; exit 2 ;;
esac
