#!/usr/bin/env bash
# Every figure of a model's card, written under docs/models/NAME/ for a bundled model.
# Run from the repository root: DATA=../shared/data bash tools/measure_model.sh NAME
# (then `python tools/measure_models.py` collects the LFW figures and speeds into models.json).
# A candidate not shipped yet: OUT=runs/cand-card bash tools/measure_model.sh runs/x/model.keras
set -euo pipefail
NAME=${1:?usage: measure_model.sh NAME|MODEL_FILE (see facenet models)}
DATA=${DATA:-../shared/data}
if [ -f "$NAME" ]; then
    KERAS=$NAME
    OUT=${OUT:?a model file needs OUT=FOLDER for its figures}
else
    KERAS=facenet/weights/$NAME.keras
    OUT=${OUT:-docs/models/$NAME}
fi
mkdir -p "$OUT"
export FACENET_CACHE_DIR=${FACENET_CACHE_DIR:-$HOME/.cache/facenet}
lfw="--lfw-dir $DATA/lfw"
model="--model $NAME"

# 1. LFW View 2, whole pipeline (raw photos, MTCNN, alignment, the model), 10-fold.
[ -f "$OUT/lfw-view2/report.json" ] && [ "${AGAIN:-0}" = 0 ] \
    || facenet evaluate lfw $lfw $model --out "$OUT/lfw-view2" --no-progress
# 2. flip test-time augmentation on top (FLIP=0 skips it: for models that flip inside)
if [ "${FLIP:-1}" = 1 ]; then
    facenet evaluate lfw $lfw $model --flip --out "$OUT/lfw-view2-flip" --no-progress
fi
# 3. static int8 (calibrated on 200 CelebA photos, never LFW), for models shipped as .keras
if [ "${KERAS##*.}" = keras ] && [ -f "$KERAS" ]; then
    facenet export "$KERAS" -f onnx --quantize int8 \
        --calibration "$DATA/celeba" --calibration-size 200 -o "$OUT/model.int8.onnx"
    facenet evaluate lfw $lfw --model "$OUT/model.int8.onnx" --out "$OUT/lfw-view2-int8" --no-progress
    rm -f "$OUT/model.int8.onnx"
fi
# 4. the main command on the examples
for pair in "a_1 a_2" "b_1 b_2" "a_1 b_1" "a_2 c_1" "b_2 c_1"; do
    set -- $pair
    echo "$1 $2: $(facenet verify $model examples/$1.jpg examples/$2.jpg)"
done | tee "$OUT/examples.txt"
# 5. recognition, clustering, groups
python benchmarks/identification_lfw.py $model --lfw "$DATA/lfw/lfw-deepfunneled" \
    --cache "$OUT/.lfw-emb.npz" --json | tee "$OUT/identification.txt"
python benchmarks/cluster_lfw.py $model --lfw "$DATA/lfw/lfw-deepfunneled" \
    --cache "$OUT/.lfw-emb.npz" --json | tee "$OUT/clustering.txt"
python benchmarks/demographic_far.py $model --utkface "$DATA/utkface" --json "$OUT/demographics.json" \
    | tee "$OUT/demographics.txt"
rm -f "$OUT/.lfw-emb.npz"
