#!/usr/bin/env bash
# Every figure of docs/MODEL_CARD.md for the bundled model, written under docs/default-model/.
# Run from the repository root after tools/ship_default_model.py: DATA=../shared/data bash $0
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${OUT:-docs/default-model}
mkdir -p "$OUT"
export FACENET_CACHE_DIR=${FACENET_CACHE_DIR:-$HOME/.cache/facenet}
lfw="--lfw-dir $DATA/lfw"

# 1. LFW View 2, whole pipeline (raw photos, MTCNN, alignment, the bundled model), 10-fold.
facenet evaluate lfw $lfw --out "$OUT/lfw-view2" --no-progress
# 2. the same pairs as a generic TSV list: same accuracy expected
python - "$DATA/lfw" "$OUT/lfw-view2-pairs.tsv" <<'PY'
import sys
from facenet.evaluate.protocols import lfw_pairs, write_pair_tsv
write_pair_tsv(lfw_pairs(sys.argv[1], "2"), sys.argv[2])
PY
facenet evaluate pairs "$OUT/lfw-view2-pairs.tsv" --root "$DATA/lfw/lfw-deepfunneled" --out "$OUT/lfw-view2-tsv" --no-progress
# 3. flip test-time augmentation
facenet evaluate lfw $lfw --flip --out "$OUT/lfw-view2-flip" --no-progress
# 4. static int8 (calibrated on 200 CelebA photos, never LFW), then View 2
facenet export facenet/weights/default.keras -f onnx --quantize int8 \
    --calibration "$DATA/celeba" --calibration-size 200 -o "$OUT/default.int8.onnx"
facenet evaluate lfw $lfw --model "$OUT/default.int8.onnx" --out "$OUT/lfw-view2-int8" --no-progress
# 5. the main command on the examples
for pair in "a_1 a_2" "b_1 b_2" "a_1 b_1" "a_2 c_1" "b_2 c_1"; do
    set -- $pair
    echo "$1 $2: $(facenet verify examples/$1.jpg examples/$2.jpg)"
done | tee "$OUT/examples.txt"
# 6. recognition, clustering, groups
python benchmarks/identification_lfw.py --lfw "$DATA/lfw/lfw-deepfunneled" --cache "$OUT/.lfw-emb.npz" \
    --json | tee "$OUT/identification.txt"
python benchmarks/cluster_lfw.py --lfw "$DATA/lfw/lfw-deepfunneled" --cache "$OUT/.lfw-emb.npz" \
    --json | tee "$OUT/clustering.txt"
python benchmarks/demographic_far.py --utkface "$DATA/utkface" --json "$OUT/demographics.json" \
    | tee "$OUT/demographics.txt"
rm -f "$OUT/.lfw-emb.npz"
