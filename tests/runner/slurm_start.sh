#!/bin/bash
# slurm_start.sh DIR: a private single-node Slurm on loopback, for tests.
# munged, slurmctld and slurmd run as root with every file (key, socket, state,
# spool, pid, log) under DIR and non-default ports; nothing system-wide is
# touched. Writes DIR/env.sh (export SLURM_CONF=...). Stop with slurm_stop.sh DIR.
# Exit 0 when the node is idle and accepts jobs; 77 when Slurm or munge is not
# installed (apt-get install -y slurm-wlm munge); 1 on any other failure.
set -u
DIR=${1:?usage: slurm_start.sh DIR}
for b in munged slurmctld slurmd sbatch squeue scontrol sinfo; do
  command -v "$b" >/dev/null 2>&1 || { echo "slurm_start: $b not found (apt-get install -y slurm-wlm munge)"; exit 77; }
done
# the daemons run as root (SlurmUser=root, jobs of any user); elsewhere, skip
[ "$(id -u)" = 0 ] || { echo "slurm_start: needs root (slurmd starts jobs as their user)"; exit 77; }
mkdir -p "$DIR"/{munge,state,spool,log,run}
DIR=$(cd "$DIR" && pwd)
chmod 700 "$DIR/munge"
# munge: own key, socket, pid, log, seed
head -c 1024 /dev/urandom > "$DIR/munge/munge.key"
chmod 400 "$DIR/munge/munge.key"
munged --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
       --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
       --seed-file="$DIR/munge/munge.seed" --force \
  || { echo "slurm_start: munged failed to start:"; cat "$DIR/log/munged.log" 2>/dev/null; exit 1; }

# ports from the directory name's hash, so parallel test runs do not collide
H=$(printf '%s' "$DIR" | cksum | cut -d' ' -f1)
PORT=$(( 20000 + H % 20000 ))
HOST=$(hostname -s 2>/dev/null || hostname)
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)
cat > "$DIR/slurm.conf" <<CONF
ClusterName=allmrectest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire: a requeued job may start again this many seconds after it stopped (default 120)
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=10
CryptoType=crypto/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SchedulerType=sched/backfill
MinJobAge=300
NodeName=localnode NodeAddr=127.0.0.1 NodeHostname=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=localnode Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
echo "export SLURM_CONF=$DIR/slurm.conf" > "$DIR/env.sh"
export SLURM_CONF="$DIR/slurm.conf"
slurmctld -c -f "$SLURM_CONF" || { echo "slurm_start: slurmctld failed:"; tail -20 "$DIR/log/slurmctld.log"; exit 1; }
slurmd -f "$SLURM_CONF" -N localnode || { echo "slurm_start: slurmd failed:"; tail -20 "$DIR/log/slurmd.log"; exit 1; }
for i in $(seq 1 60); do
  st=$(sinfo -h -N -o '%t' 2>/dev/null | head -1)
  case "$st" in
    idle*|mix*|alloc*) echo "slurm_start: node localnode is $st (SLURM_CONF=$SLURM_CONF, port $PORT)"; exit 0 ;;
  esac
  sleep 0.5
done
echo "slurm_start: the node did not become idle (state '$st'); logs:"
tail -15 "$DIR/log/slurmctld.log"; tail -15 "$DIR/log/slurmd.log"
exit 1
