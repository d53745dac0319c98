#!/usr/bin/env bash
# Stop the cluster tests/slurm/start.sh started and remove its state folder.
set -uo pipefail
STATE="${KNEELIB_SLURM_DIR:-${TMPDIR:-/tmp}/kneelib-slurm}"
for daemon in slurmd slurmctld munged; do
  pidfile="$STATE/$daemon.pid"
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null && for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
done
[ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$STATE/slurm.conf" ] && rm -f /etc/slurm/slurm.conf
rm -rf "$STATE"
echo "stopped"
