#!/bin/bash
# slurm_stop.sh DIR: stop the daemons slurm_start.sh started, by their pid files
# (slurmd, slurmctld, munged), TERM first, KILL after 5 s. Safe to call twice.
DIR=${1:?usage: slurm_stop.sh DIR}
for d in slurmd slurmctld munged; do
  f="$DIR/run/$d.pid"
  [ -f "$f" ] || continue
  pid=$(cat "$f" 2>/dev/null)
  [ -n "$pid" ] || continue
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$f"
done
exit 0
