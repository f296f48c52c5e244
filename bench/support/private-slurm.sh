#!/bin/sh
# A private one-host Slurm for benchmarks, then the command given, with SLURM_CONF pointing at it:
# Debian's slurm-wlm 22.05 (`apt-get install slurm-wlm munge`), one slurmctld and one slurmd with 4
# CPUs on this host, cons_tres, munge, backfill scheduling without delays. Needs root (munged,
# slurmd). Everything lives under a temp dir and is stopped and removed when the command ends.
#
#   sh bench/support/private-slurm.sh <command> [args…]
set -eu
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
"$@"
