#!/usr/bin/env bash
# The demo: install dependencies, build the `wanwu` program, train a small-image ResNet on
# Fashion-MNIST on the CPU, evaluate it, and point at the HTML report. Extra arguments go to
# `wanwu train` (e.g. --epochs 1 for a quicker look).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
# The demo trains on the CPU: the program is built without the CUDA kernels (minutes of nvcc).
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DWANWU_CLI_CUDA=OFF
cmake --build build -j2 --target wanwu_cli
run=build/runs/fashion-mnist
build/bin/wanwu train --data fashion-mnist --model cifar_resnet8 --img-size 28 --augment none \
  --epochs 2 --batch-size 128 --optimizer sgd --lr 0.2 --momentum 0.9 --nesterov --weight-decay 5e-4 \
  --scheduler onecycle --warmup-epochs 0.3 --workers 2 --seed 0 --device cpu --out "$run" "$@"
# best.safetensors is written at the end of an epoch; a run cut short (--max-steps) has only last
ckpt="$run/best.safetensors"
[[ -f "$ckpt" ]] || ckpt="$run/last.safetensors"
build/bin/wanwu eval --checkpoint "$ckpt" --data fashion-mnist --device cpu
echo
echo "report: $(pwd)/$run/report.html"
