#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the submitit executor's tests and for trying
# `--set executor=submitit` by hand. Idempotent: a running cluster is left as it is.
#
#   tests/slurm/start.sh        start (installs Debian's slurm and munge packages when missing, as root)
#   tests/slurm/stop.sh         stop it and remove its state
#
# All state (munge key and socket, slurm.conf, spool, logs) lives in $KNEELIB_SLURM_DIR
# (default: $TMPDIR/kneelib-slurm). /etc/slurm/slurm.conf is linked to that slurm.conf when the
# machine has none, so sbatch, squeue and scancel find the cluster without SLURM_CONF; the script
# prints SLURM_CONF for the case where a slurm.conf was already there.
# Exit status 0: the node is up and idle; otherwise the reason is on stderr.
set -euo pipefail

STATE="${KNEELIB_SLURM_DIR:-${TMPDIR:-/tmp}/kneelib-slurm}"
CONF="$STATE/slurm.conf"
fail() { echo "tests/slurm/start.sh: $*" >&2; exit 1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if alive "$STATE/slurmctld.pid" && alive "$STATE/slurmd.pid" && alive "$STATE/munged.pid" &&
   SLURM_CONF="$CONF" sinfo -h -o %t 2>/dev/null | grep -Eq '^(idle|mix|alloc)'; then
  echo "already running: SLURM_CONF=$CONF"
  exit 0
fi

# -- packages
missing=()
for tool in slurmctld slurmd sbatch munged; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = "0" ] || fail "missing ${missing[*]} and not root: install slurmctld slurmd slurm-client munge"
  command -v apt-get >/dev/null 2>&1 || fail "missing ${missing[*]} and no apt-get to install them"
  echo "installing Debian slurmctld slurmd slurm-client munge"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge; } \
    >"${TMPDIR:-/tmp}/kneelib-slurm-apt.log" 2>&1 ||
    fail "apt-get install failed (log: ${TMPDIR:-/tmp}/kneelib-slurm-apt.log)"
fi
export PATH="$PATH:/usr/sbin"
[ "$(id -u)" = "0" ] || fail "the daemons run as root here (SlurmUser=root); run as root"

# -- leftovers of an earlier, half-started cluster
"$(dirname "$0")/stop.sh" >/dev/null 2>&1 || true
mkdir -p "$STATE"/{ctld,spool,munge}
chmod 700 "$STATE" "$STATE/munge"

# -- munge: its own key and socket
dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$STATE/munge/munge.key"
SOCKET="$STATE/munge/munge.socket"
munged --force --key-file="$STATE/munge/munge.key" --socket="$SOCKET" --pid-file="$STATE/munged.pid" \
  --log-file="$STATE/munged.log" --seed-file="$STATE/munge/munged.seed" ||
  fail "munged did not start (log: $STATE/munged.log)"

# -- slurm.conf: this machine as one node at 127.0.0.1
node=$(slurmd -C | head -1) || fail "slurmd -C could not describe this machine"
field() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$node"; }
memory=$(( $(field RealMemory) * 9 / 10 ))
host=$(hostname -s)
cat >"$CONF" <<CONF
ClusterName=kneelib
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
KillWait=2
# Job ids must not repeat across restarts: submitit names a job's files by its id.
FirstJobId=$(( $(date +%s) % 50000000 + 1 ))
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(field CPUs) Boards=$(field Boards) SocketsPerBoard=$(field SocketsPerBoard) CoresPerSocket=$(field CoresPerSocket) ThreadsPerCore=$(field ThreadsPerCore) RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
if [ ! -e /etc/slurm/slurm.conf ] || [ "$(readlink /etc/slurm/slurm.conf)" = "$CONF" ]; then
  mkdir -p /etc/slurm && ln -sfn "$CONF" /etc/slurm/slurm.conf
elif [ "${SLURM_CONF:-}" != "$CONF" ]; then
  echo "note: /etc/slurm/slurm.conf is another cluster's; use: export SLURM_CONF=$CONF" >&2
fi
export SLURM_CONF="$CONF"

slurmctld -f "$CONF" || fail "slurmctld did not start (log: $STATE/slurmctld.log)"
slurmd -f "$CONF" || fail "slurmd did not start (log: $STATE/slurmd.log)"

for _ in $(seq 60); do
  state=$(sinfo -h -o %t 2>/dev/null || true)
  case "$state" in idle*|mix*|alloc*) echo "started: SLURM_CONF=$CONF (node $host, $(field CPUs) CPUs, ${memory} MB)"; exit 0;; esac
  sleep 1
done
fail "the node did not become idle within 60 s (sinfo: '${state:-no answer}'; logs: $STATE/slurmctld.log, $STATE/slurmd.log)"
