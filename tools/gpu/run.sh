#!/usr/bin/env bash
# The device side of the GPU path (docs/training-report.md, "GPU path"); run from the repo root.
#
#   bash tools/gpu/run.sh unpack   # unpack (then delete) the carried .stage/faces-*.tar into $FACES
#   bash tools/gpu/run.sh train    # install the carried .whl/ wheels, train with the online
#                                  # teacher for $TRAIN_SECONDS, copy the results to $OUT
#
# The machine keeps $FACES between calls only while it stays warm (30 s after a call), so the
# unpack calls and the train call go back to back. Settings (environment, with defaults):
#   PY=python3  FACES=/tmp/faces  RUN=/tmp/facenet-run  TRAIN_SECONDS=420
#   TEACHER=facenet/weights/dlib-resnet.keras  INIT=facenet/weights/facenet-mobilenet.keras
#   (INIT=none: start from scratch)  BATCH_P=128 BATCH_K=4  LR=3e-4  WORKERS=14  MIXUP=0.2
#   SCHEDULE=cosine-time (the cosine over TRAIN_SECONDS)  WARMUP=0.1 (epochs)  STEPS=500 (a
#   step's epoch: the checkpoint and model are written at each epoch's end)  RENDER=device (the
#   views rendered inside the step; host: by PIL in the loader threads)
#   EXTRA="more facenet train options" (default: the shipped file's recipe, --pooling depthwise
#   --relation-weight 100; EXTRA="" for none)
# $OUT receives: model.keras (the weights, <= 16 MiB), log.csv, train.log, facts.txt and, for the
# next resume, the checkpoint split into checkpoint.npz.part-aa, -ab... (15 MiB each).
set -euo pipefail
PY=${PY:-python3}
FACES=${FACES:-/tmp/faces}  # /tmp: kept between the calls of a warm machine
PIECES=${FACES%/}.teacher
RUN=${RUN:-/tmp/facenet-run}
OUT=${OUT:?OUT: the folder whose files come back}

count_faces() { if [ -d "$FACES" ]; then find "$FACES" -name '*.jpg' | wc -l; else echo 0; fi; }

case "${1:-}" in
unpack)
    mkdir -p "$FACES"
    for part in .stage/faces-*.tar; do
        [ -e "$part" ] || { echo "no .stage/faces-*.tar carried" >&2; exit 2; }
        tar -xf "$part" -C "$FACES" && rm -f "$part"  # a later call carries the next part
        echo "unpacked $part"
    done
    if [ -d "$FACES/.teacher" ]; then  # the teacher's pieces (stage.py --teacher), kept aside
        mkdir -p "$PIECES" && mv "$FACES"/.teacher/* "$PIECES"/ && rmdir "$FACES/.teacher"
    fi
    echo "faces on the machine: $(count_faces)"
    ;;
train)
    if compgen -G ".whl/*.whl" >/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} KERAS_BACKEND=jax PYTHONUNBUFFERED=1
    have=$(count_faces)
    if [ -f .stage/manifest.json ]; then
        want=$("$PY" -c "import json; print(json.load(open('.stage/manifest.json'))['faces'])")
        if [ "$have" -ne "$want" ]; then
            echo "only $have of $want faces are on the machine: unpack every part first" >&2
            exit 2
        fi
    fi
    pieces=$("$PY" -c "import json; print(' '.join(json.load(open('.stage/manifest.json')).get('teacher_pieces', [])))" 2>/dev/null || true)
    if [ -n "$pieces" ]; then  # the staged teacher, joined from its pieces
        files=()
        for piece in $pieces; do
            files+=("$PIECES/$(basename "$piece")")
            [ -f "${files[-1]}" ] || { echo "teacher piece $piece missing: unpack every part first" >&2; exit 2; }
        done
        name=$(basename "${files[0]}"); name=${name%.piece-*}
        cat "${files[@]}" >"/tmp/$name" && TEACHER=${TEACHER:-/tmp/$name}
    fi
    init=${INIT:-facenet/weights/facenet-mobilenet.keras}
    init_opt=()
    [ "$init" = none ] || init_opt=(--init "$init")
    {
        date -u
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
        "$PY" -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"
        echo "faces: $have"
    } | tee "$OUT/facts.txt"
    start=$(date +%s)
    # shellcheck disable=SC2086
    "$PY" -m facenet -v train "$FACES" --out "$RUN" --backend jax \
        --teacher "${TEACHER:-facenet/weights/dlib-resnet.keras}" "${init_opt[@]}" \
        --backbone mobilenet --input-size 112 --alpha 1.0 --embedding-size 128 \
        --loss ce --ce-weight 0 --batch-p "${BATCH_P:-128}" --batch-k "${BATCH_K:-4}" \
        --epochs 1000 --steps-per-epoch "${STEPS:-500}" --lr "${LR:-3e-4}" \
        --warmup-epochs "${WARMUP:-0.1}" --schedule "${SCHEDULE:-cosine-time}" \
        --render "${RENDER:-device}" --mixup "${MIXUP:-0.2}" --align-mode chip \
        --workers "${WORKERS:-14}" \
        --max-seconds "${TRAIN_SECONDS:-420}" ${EXTRA---pooling depthwise --relation-weight 100} >"$OUT/train.log" 2>&1 || status=$?
    tr '\r' '\n' <"$OUT/train.log" | grep -v '%|' | tail -n 40 || true
    echo "exit status ${status:-0}; wall seconds: $(( $(date +%s) - start ))" | tee -a "$OUT/facts.txt"
    [ "${status:-0}" -eq 0 ] || exit "$status"
    cp "$RUN/model.keras" "$RUN/log.csv" "$OUT/"
    split -b 15M "$RUN/checkpoint.npz" "$OUT/checkpoint.npz.part-"
    ls -la "$OUT"
    ;;
*)
    echo "usage: bash tools/gpu/run.sh unpack|train" >&2
    exit 2
    ;;
esac
