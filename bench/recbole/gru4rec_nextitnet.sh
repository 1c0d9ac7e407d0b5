#!/usr/bin/env bash
# gru4rec_nextitnet.sh: GRU4Rec or NextItNet on one dataset, RecBole 1.2.0 and
# allmrec side by side with the protocol of bench/recbole/README.md (the same
# data written as a RecBole atomic file, leave-one-out, full ranking HR@10 /
# NDCG@10, embedding size 50, batch 128, Adam 1e-3, the same epochs, validation
# every epoch, best-validation model on test, same threads, one after the other)
# and the same loss on both sides: cross-entropy over all items (RecBole's
# default for both models; ours: model.loss=ce), input window 50.
#
# usage: bench/recbole/gru4rec_nextitnet.sh MODEL DATASET EPOCHS [THREADS]
#   MODEL: gru4rec | nextitnet;  DATASET: ml100k | beauty2014
#   needs build/allmrec, data/<DATASET>.h5 (prepared and split as in bench/recbole/README.md),
#   /work/venv-recbole and the shared scripts of this folder (h5_to_atomic.py,
#   run_recbole.py, ours_json.py); writes bench/recbole/out/<model>_<dataset>_{recbole,ours}.json
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODEL=$1 DS=$2 EPOCHS=$3 THREADS=${4:-2}
PY=${RECBOLE_PY:-/work/venv-recbole/bin/python}
SCRIPTS=${RECBOLE_SCRIPTS:-$ROOT/bench/recbole}
DATA=${DATA_DIR:-$ROOT/data}
OUT=$ROOT/bench/recbole/out
RB=${RB_DIR:-$ROOT/runs/recbole_data}
mkdir -p "$OUT" "$RB" "$ROOT/runs/recbole_cmp"
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
[ -f "$RB/$DS/$DS.inter" ] || "$PY" "$SCRIPTS/h5_to_atomic.py" "$DATA/$DS.h5" "$RB" "$DS"
case $MODEL in
  gru4rec)   RBM=GRU4Rec;   RBSET=(dropout_prob=0.3 num_layers=1) ;;
  nextitnet) RBM=NextItNet; RBSET=(kernel_size=3 block_num=5 "dilations=[1, 4]" reg_weight=0.0) ;;
  *) echo "MODEL must be gru4rec or nextitnet" >&2; exit 2 ;;
esac
if [ -z "${SKIP_RECBOLE:-}" ]; then
  (cd "$ROOT/runs" && "$PY" "$SCRIPTS/run_recbole.py" --model $RBM --data-dir "$RB" --dataset "$DS" \
      --epochs "$EPOCHS" --threads "$THREADS" --json "$OUT/${MODEL}_${DS}_recbole.json" \
      --set loss_type=CE train_neg_sample_args=null "${RBSET[@]}")
fi
RUN=$ROOT/runs/recbole_cmp/${MODEL}_${DS}
"$ROOT/build/allmrec" train $MODEL --config "$ROOT/configs/$MODEL/base.yaml" data.path="$DATA/$DS.h5" out_dir="$RUN" \
    train.epochs="$EPOCHS" train.eval_every=1 train.patience=0 train.restart=true train.progress=false \
    model.loss=ce model.maxlen=50 eval.valid_kind=full "eval.scenarios=[all]" "eval.kinds=[full]" \
    export.enabled=false ${OURS_EXTRA:-} > "$RUN.log" 2>&1
"$PY" "$SCRIPTS/ours_json.py" "$RUN" "$OUT/${MODEL}_${DS}_ours.json" "$MODEL" "$DS" "$EPOCHS" "$THREADS"
