#!/bin/sh
# Slurm beside bench/tasks: TASKS trivial tasks (`true`) as one job array on a private one-host
# Slurm (Debian's slurm-wlm 22.05: slurmctld + one slurmd with 4 CPUs, cons_tres, munge), from
# `sbatch` until the last task is recorded completed (sacct via the job state, polled every 200 ms).
# Needs root (munged, slurmd). Everything lives under a temp dir and is stopped at the end.
#
#   TASKS=1000 sh bench/tasks/slurm.sh
set -eu
TASKS=${TASKS:-1000}
D=$(mktemp -d /tmp/tandem-bench-slurm-XXXXXX)
HOST=$(hostname -s)
chmod 755 "$D"
mkdir -p "$D/state" "$D/spool" "$D/log" "$D/munge"
chown munge "$D/munge"
cat > "$D/slurm.conf" <<CONF
ClusterName=bench
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.socket
CryptoType=crypto/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldPort=46817
SlurmdPort=46818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=default_queue_depth=10000,sched_min_interval=0,batch_sched_delay=0
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MinJobAge=300
MaxArraySize=100001
MaxJobCount=200000
NodeName=$HOST CPUs=4 State=UNKNOWN
PartitionName=bench Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
export SLURM_CONF="$D/slurm.conf"
su munge -s /bin/sh -c "/usr/sbin/munged --socket=$D/munge/munge.socket --pid-file=$D/munge/munged.pid --seed-file=$D/munge/seed --log-file=$D/munge/log" 
cleanup() {
  kill "$(cat "$D/slurmd.pid" 2>/dev/null)" "$(cat "$D/slurmctld.pid" 2>/dev/null)" 2>/dev/null || true
  kill "$(cat "$D/munge/munged.pid" 2>/dev/null)" 2>/dev/null || true
  sleep 1
  rm -rf "$D"
}
trap cleanup EXIT
trap "exit 1" INT TERM
/usr/sbin/slurmctld -i
/usr/sbin/slurmd
i=0
until sinfo -h -o %T 2>/dev/null | grep -q idle; do
  i=$((i + 1)); [ $i -gt 300 ] && { echo "slurm never came up" >&2; cat "$D/log/"*.log >&2; exit 1; }
  sleep 0.1
done
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
