#!/bin/sh
# Slurm beside bench/tasks: TASKS trivial tasks (`true`) as one job array on a private one-host
# Slurm (bench/support/private-slurm.sh), from `sbatch` until the last task is recorded completed
# (the job state, polled every 200 ms). Needs root (munged, slurmd).
#
#   TASKS=1000 sh bench/tasks/slurm.sh
set -eu
[ -n "${SLURM_CONF:-}" ] || exec sh "$(dirname "$0")/../support/private-slurm.sh" sh "$0" "$@"
TASKS=${TASKS:-1000}
D=$(dirname "$SLURM_CONF")
# Warm: one small array first.
sbatch -Q --array=1-8 -o /dev/null --wrap true >/dev/null
while [ -n "$(squeue -h -o %i)" ]; do sleep 0.05; done
start=$(date +%s.%N)
cpu0=$(awk '{print $14+$15+$16+$17}' "/proc/$(cat "$D/slurmctld.pid")/stat")
cpud0=$(awk '{print $14+$15+$16+$17}' "/proc/$(cat "$D/slurmd.pid")/stat")
sbatch -Q --array=1-"$TASKS" -o /dev/null --wrap true >/dev/null
while [ -n "$(squeue -h -o %i)" ]; do sleep 0.2; done
end=$(date +%s.%N)
cpu1=$(awk '{print $14+$15+$16+$17}' "/proc/$(cat "$D/slurmctld.pid")/stat")
cpud1=$(awk '{print $14+$15+$16+$17}' "/proc/$(cat "$D/slurmd.pid")/stat")
python3 - "$TASKS" "$start" "$end" "$cpu0" "$cpu1" "$cpud0" "$cpud1" <<'PY'
import json, os, sys
n, s, e, c0, c1, d0, d1 = int(sys.argv[1]), *map(float, sys.argv[2:])
print(json.dumps({"slurm": {"version": "22.05.8 (Debian)", "tasks": n, "tasksPerS": round(n / (e - s), 2),
  "wallS": round(e - s, 2), "cpuMsPerTask": {"slurmctld": round((c1 - c0) * 10 / n, 2),
  "slurmd+steps": round((d1 - d0) * 10 / n, 2)}, "loadAvg1m": os.getloadavg()[0]}}))
PY
