#!/usr/bin/env bash
# compare.sh: one model on one dataset, RecBole 1.2.0 and allmrec side by side,
# same data (our prepared HDF5 written as a RecBole atomic file), same
# leave-one-out split, full ranking, HR@10 / NDCG@10, embedding size 50,
# batch 128, Adam 1e-3, the same number of epochs, validation (full-ranking
# NDCG@10) every epoch, the best-validation model on the test split; both
# sides on the CPU with the same number of threads, one after the other.
#
# usage: [EVAL_EVERY=N] bench/recbole/compare.sh MODEL DATASET EPOCHS [THREADS]
#   EVAL_EVERY (default 1): validate every N epochs; 0 = never (both sides then test the
#   model of the last epoch)
#   MODEL: ncf | sasrec;  DATASET: ml100k | beauty2014
#   needs build/allmrec, data/<DATASET>.h5 (prepared and split as in
#   bench/sasrec/README.md, --max-eval-users 0) and /work/venv-recbole
#   (bench/recbole/README.md); writes bench/recbole/out/<model>_<dataset>_{recbole,ours}.json
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODEL=$1 DS=$2 EPOCHS=$3 THREADS=${4:-2} EVAL_EVERY=${EVAL_EVERY:-1}
PY=${RECBOLE_PY:-/work/venv-recbole/bin/python}
DATA=${DATA_DIR:-$ROOT/data}
OUT=$ROOT/bench/recbole/out
RB=${RB_DIR:-$ROOT/runs/recbole_data}
mkdir -p "$OUT" "$RB" "$ROOT/runs/recbole_cmp"
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
[ -f "$RB/$DS/$DS.inter" ] || "$PY" "$ROOT/bench/recbole/h5_to_atomic.py" "$DATA/$DS.h5" "$RB" "$DS"
case $MODEL in
  ncf)    RBM=NeuMF;  CFG=$ROOT/configs/ncf/ml100k.yaml; EXTRA=() ;;
  sasrec) RBM=SASRec; CFG=$ROOT/configs/sasrec/ml100k.yaml; EXTRA=(model.maxlen=50 model.dropout=0.5) ;;
  *) echo "MODEL must be ncf or sasrec" >&2; exit 2 ;;
esac
# RecBole (its logs and checkpoints under runs/, not in the source tree)
(cd "$ROOT/runs" && "$PY" "$ROOT/bench/recbole/run_recbole.py" --model $RBM --data-dir "$RB" --dataset "$DS" \
    --epochs "$EPOCHS" --eval-step "$EVAL_EVERY" --threads "$THREADS" --json "$OUT/${MODEL}_${DS}_recbole.json")
# ours
RUN=$ROOT/runs/recbole_cmp/${MODEL}_${DS}
"$ROOT/build/allmrec" train $MODEL --config "$CFG" data.path="$DATA/$DS.h5" out_dir="$RUN" train.epochs="$EPOCHS" \
    train.eval_every="$EVAL_EVERY" train.patience=0 train.restart=true train.progress=false eval.valid_kind=full \
    "eval.scenarios=[all]" "eval.kinds=[full]" export.enabled=false "${EXTRA[@]}" > "$RUN.log" 2>&1
"$PY" "$ROOT/bench/recbole/ours_json.py" "$RUN" "$OUT/${MODEL}_${DS}_ours.json" "$MODEL" "$DS" "$EPOCHS" "$THREADS"
