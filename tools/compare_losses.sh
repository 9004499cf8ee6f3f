#!/usr/bin/env bash
# The loss / mining / input-size comparison of docs/training-report.md: same data (CelebA aligned
# at 182 px by `facenet align`), same budget (EPOCHS x STEPS batches of P x K = 16 x 4), same
# seed; LFW View 1 (pairsDevTest) accuracy from the trainer's per-epoch check. A small network
# (ALPHA 0.5) at small sizes so that six runs fit beside the main training on 2 CPU cores.
# Run from the repository root; resumable (finished runs are skipped, stopped ones resumed).
set -euo pipefail
DATA=${DATA:-/work/data-cache/celeba-182}
TEACHER=${TEACHER:-/work/data-cache/teacher_celeba.npz}
OUT=${OUT:-runs/compare}
EPOCHS=${EPOCHS:-5}
STEPS=${STEPS:-200}
ALPHA=${ALPHA:-0.5}
SIZE=${SIZE:-96}
SMALL=${SMALL:-64}
# the 182-px crops hold 50 source pixels of margin: record it at the 160-px convention
margin() { python3 -c "print(round(50 * 160 / $1))"; }
common=(--backbone mobilenet --embedding-size 128 --alpha "$ALPHA" --batch-p 16 --batch-k 4
        --epochs "$EPOCHS" --steps-per-epoch "$STEPS" --lr 1e-3 --warmup-epochs 0.3 --align none
        --seed 0)
run() {  # name, size, then options
    local name=$1 size=$2; shift 2
    [ -f "$OUT/$name/log.csv" ] && grep -q "^$EPOCHS," "$OUT/$name/log.csv" && return 0
    local resume=(); [ -f "$OUT/$name/checkpoint.npz" ] && resume=(--resume)
    facenet -v train "$DATA" --out "$OUT/$name" "${common[@]}" "${resume[@]}" \
        --input-size "$size" --align-margin "$(margin "$size")" "$@"
}
run "triplet-semihard-$SIZE"    "$SIZE" --loss triplet --mining semi_hard
run "tripletce-semihard-$SIZE"  "$SIZE" --loss triplet+ce --mining semi_hard
run "ce-$SIZE"                  "$SIZE" --loss ce
run "tripletce-batchhard-$SIZE" "$SIZE" --loss triplet+ce --mining batch_hard
run "tripletce-semihard-$SMALL" "$SMALL" --loss triplet+ce --mining semi_hard
run "distill-ce-$SIZE"          "$SIZE" --loss ce --ce-weight 0.1 --label-smoothing 0.1 \
                                --distill "$TEACHER"
# the table of docs/training-report.md
python3 - "$OUT" <<'PY'
import csv, pathlib, statistics, sys
print("| run | View 1 accuracy (epoch 0 -> last) | best | training s | images/s (median epoch) |")
print("|---|---|---|---|---|")
for log in sorted(pathlib.Path(sys.argv[1]).glob("*/log.csv")):
    rows = list(csv.DictReader(log.open()))
    acc = [float(r["val_accuracy"]) for r in rows]
    trained = [r for r in rows if r["images_per_s"]]
    seconds = sum(float(r["seconds"]) for r in trained)
    rate = statistics.median(float(r["images_per_s"]) for r in trained)
    print(f"| {log.parent.name} | {acc[0]:.1%} -> {acc[-1]:.1%} | {max(acc[1:]):.1%} "
          f"| {seconds:.0f} | {rate:.0f} |")
PY
