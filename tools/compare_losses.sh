#!/usr/bin/env bash
# The loss / mining / input-size comparison of docs/training-report.md: same data (CelebA aligned
# at 182 px by `facenet align`), same budget (EPOCHS x STEPS batches of P x K), LFW View 1
# (pairsDevTest) accuracy from the trainer's per-epoch check. Run from the repository root.
set -euo pipefail
DATA=${DATA:-/work/data-cache/celeba-182}
TEACHER=${TEACHER:-/work/data-cache/teacher_celeba.npz}
OUT=${OUT:-runs/compare}
EPOCHS=${EPOCHS:-2}
STEPS=${STEPS:-120}
common=(--backbone mobilenet --embedding-size 128 --batch-p 16 --batch-k 4 --epochs "$EPOCHS"
        --steps-per-epoch "$STEPS" --lr 1e-3 --align none --seed 0)
run() {  # name, then options
    local name=$1; shift
    [ -f "$OUT/$name/log.csv" ] && grep -q "^$EPOCHS," "$OUT/$name/log.csv" && return 0
    local resume=(); [ -f "$OUT/$name/checkpoint.npz" ] && resume=(--resume)
    facenet -v train "$DATA" --out "$OUT/$name" "${common[@]}" "${resume[@]}" "$@"
}
run triplet-semihard-112  --input-size 112 --align-margin 71 --loss triplet --mining semi_hard
run tripletce-semihard-112 --input-size 112 --align-margin 71 --loss triplet+ce --mining semi_hard
run ce-112                 --input-size 112 --align-margin 71 --loss ce
run tripletce-batchhard-112 --input-size 112 --align-margin 71 --loss triplet+ce --mining batch_hard
run distill-ce-112         --input-size 112 --align-margin 71 --loss ce --ce-weight 0.1 \
                           --label-smoothing 0.1 --distill "$TEACHER"
run tripletce-semihard-160 --input-size 160 --align-margin 50 --loss triplet+ce --mining semi_hard
