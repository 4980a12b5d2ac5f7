#!/usr/bin/env bash
# End to end on synthetic sample data: sample data -> train -> quantize -> benchmark -> run.
# Everything it makes goes to demo/ and models/demo/. Set DEMO_HTTP to change the live page address.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh train

bin=.venv/bin
out=demo
http="${DEMO_HTTP:-127.0.0.1:8080}"
mkdir -p "$out"
export TF_CPP_MIN_LOG_LEVEL=2

step() { printf '\n==> %s\n' "$*"; }

step "Synthetic sample data (HAM10000 layout) and a sample video"
$bin/train sample-data "$out/data" --lesions 400 --video
$bin/train sample-data "$out/heldout" --lesions 120 --seed 1   # never trained on: for --eval

step "Training MobileNetV2 (small demo settings)"
$bin/train fit --data "$out/data" --out "$out/run" --image-size 128 --alpha 0.35 --weights none \
    --epochs 30 --lr 2e-3 --patience 10 --oversample --force

step "Quantizing to int8 against a representative dataset"
$bin/train quantize "$out/run" --out models/demo --force

step "Checking the bundle on this device's runtime"
$bin/edge verify --model models/demo

step "Benchmarking float, int8 and int8-I/O, with accuracy on held-out sample data"
$bin/edge benchmark --model models/demo --variants float,int8,int8io --runs 200 --eval "$out/heldout" \
    --json "$out/benchmark.json"

step "Running the daemon over the sample video (live page: http://$http/)"
$bin/edge run --model models/demo --source "$out/data/sample_video.mp4" --jsonl "$out/results.jsonl" \
    --http "$http" --quiet
printf '\nResults: %s (%s lines). Not a medical diagnosis.\n' "$out/results.jsonl" "$(wc -l < "$out/results.jsonl")"
