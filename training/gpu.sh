#!/usr/bin/env bash
# One training run on a lent GPU machine, in one call: `bash training/gpu.sh CONFIG KIND [MINUTES [SECONDS]]`
# (KIND: transcriber, stage1, stage2, layering...; MINUTES of training, default 8; SECONDS, when given, the
# whole call's budget: training gets at most what the dataset build left of it less 150 s for loading the
# clips and the export (60 s for transcriber-gpu.toml on an H200), and is stopped 25 s before the end, so
# that the run's files always come back).
#
# Pack first, here: `python -m training.gpu` writes .gpu/ (wheels, the training and validation Hydrogen kits
# resampled, demo songs). Then the device tool's run: command `bash training/gpu.sh CONFIG KIND MINUTES`,
# carry [".gpu"] plus, to go on from an earlier call, the run folder whose last.pt came back ("runs/NAME").
# There: installs the wheels (never over packages the machine has), puts the kits where the builder looks
# (only when the machine has none of its own), builds CONFIG's dataset on every core (one thread per worker),
# trains for MINUTES (resuming from run_dir/last.pt), and leaves in $OUT what a later session needs: the run's
# last.pt (in 15 MB parts when larger: `cat last.pt.part-* > last.pt`), log.jsonl, the exported checkpoint
# with its card and metrics, and train.log.
set -uo pipefail
config=${1:?usage: bash training/gpu.sh CONFIG KIND [MINUTES [SECONDS]]}
kind=${2:?usage: bash training/gpu.sh CONFIG KIND [MINUTES [SECONDS]]}
minutes=${3:-8}
budget=${4:-0}
out=${OUT:-/tmp/redrum-gpu-out}
mkdir -p "$out"
[ -f "$config" ] || { echo "error: $config: no such config" >&2; exit 1; }

if ! python3 -c "import pedalboard, mir_eval, mido, soundfile, tomli_w" 2>/dev/null; then
    [ -d .gpu/whl ] || { echo "error: packages missing and no .gpu/whl: run python -m training.gpu here, carry .gpu" >&2; exit 1; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

h2=/usr/share/hydrogen/data
if [ ! -e "$h2/drumkits" ] && [ -d .gpu/drumkits ]; then
    mkdir -p "$h2" && cp -r .gpu/drumkits "$h2/" && { [ ! -d .gpu/demo_songs ] || cp -r .gpu/demo_songs "$h2/"; }
fi

read -r data_cfg data_dir run_dir run_out < <(python3 - "$config" <<'EOF'
import sys, tomllib
c = tomllib.load(open(sys.argv[1], "rb"))
print(c.get("dataset_config", "-"), c.get("data_dir", "-"), c.get("run_dir", "-"), c.get("out", "-"))
EOF
)
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null | tee "$out/train.log"
start=$(date +%s)
if [ "$data_cfg" != "-" ] && [ "$data_dir" != "-" ]; then
    OMP_NUM_THREADS=1 python3 -m redrum_kit dataset build --config "$data_cfg" -o "$data_dir" --workers "$(nproc)" \
        2>&1 | tr '\r' '\n' | tail -n 3 | tee -a "$out/train.log"
fi
elapsed=$(( $(date +%s) - start ))
echo "dataset ready after $elapsed s" | tee -a "$out/train.log"
limit=()
if [ "$budget" -gt 0 ]; then
    left=$(( budget - elapsed ))
    minutes=$(python3 -c "print(round(max(0.5, min($minutes, ($left - 150) / 60)), 2))")
    stop=$(( left > 60 ? left - 25 : 35 ))
    limit=(timeout "$stop")
    echo "training for $minutes min, stopped after $stop s at most" | tee -a "$out/train.log"
fi
OMP_NUM_THREADS=8 "${limit[@]}" python3 -m redrum_kit train "$kind" --config "$config" --minutes "$minutes" 2>&1 \
    | tr '\r' '\n' | grep -v "it/s\]$" | tail -n 40 | tee -a "$out/train.log"
status=${PIPESTATUS[0]}
echo "trained, exit $status, after $(( $(date +%s) - start )) s" | tee -a "$out/train.log"

if [ "$run_dir" != "-" ] && [ -f "$run_dir/last.pt" ]; then
    if [ "$(stat -c %s "$run_dir/last.pt")" -gt 15000000 ]; then
        split -b 15000000 -d "$run_dir/last.pt" "$out/last.pt.part-"
    else
        cp "$run_dir/last.pt" "$out/"
    fi
    cp "$run_dir/log.jsonl" "$out/" 2>/dev/null
    [ ! -f "$run_dir/best.pt" ] || [ "$(stat -c %s "$run_dir/best.pt")" -gt 15000000 ] || cp "$run_dir/best.pt" "$out/"
fi
if [ "$run_out" != "-" ]; then
    for f in "$run_out" "${run_out%.*}.md" "${run_out%.*}.metrics.json"; do [ -f "$f" ] && cp "$f" "$out/"; done
fi
ls -la "$out"
exit "$status"
