#!/usr/bin/env bash
# Exercise every CUDA path of lrpose on one GPU and print the figures (steps 1-6 took about 5 minutes on an
# H100; step 7, not yet run on a GPU, adds six HRNet-W32 benchmarks, four of them compiled; STEPS runs the
# steps whose names match a glob, e.g. STEPS='graphs-*' for step 7 alone):
#   1. tests/test_cuda.py: codecs on the GPU = CPU, channels-last and fp16/bf16 autocast vs float32 for
#      tiny/ResNet-50/HRNet-W32, `lrpose run --device cuda --amp fp16|bf16` end to end;
#   2. the main job on the GPU (fp16 + gradient scaler + channels-last);
#   3. HRNet-W32 runs at 128x96 (4 branches) and 64x48 (3 branches), bf16;
#   4. torchrun with one process per GPU (CAL + MGM, so the GMM fit runs under DDP): DDP over NCCL with two
#      or more GPUs; with one GPU torchrun runs a single process (world size 1, no process group);
#   5. torch.compile (inductor) on the GPU;
#   6. `lrpose bench train` images/s for tiny, ResNet-50 and HRNet-W32 at 128x96, fp32 and fp16;
#   7. HRNet-W32 at 128x96, bf16, channels-last, batch 64 and 256: eager, torch.compile, and torch.compile
#      "reduce-overhead" (the forward and backward replayed as CUDA graphs), images/s side by side
#      (issue 14 item 7: the eager step is launch-bound; goal >= 5,000 images/s).
# usage: [STEPS=GLOB] bash benchmarks/cuda_check.sh [OUT_DIR]   (needs `lrpose` installed and a CUDA GPU)
set -uo pipefail
OUT=${1:-cuda-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
GPUS=$(nvidia-smi -L | wc -l)
WORKERS=${WORKERS:-8}
failed=()

STEPS=${STEPS:-*}

step() {  # step NAME COMMAND...: run, time, remember failures (only names matching $STEPS)
    local name=$1; shift
    # shellcheck disable=SC2053
    [[ $name == $STEPS ]] || return 0
    echo; echo "== $name: $*"
    local t0=$SECONDS
    "$@" || failed+=("$name")
    echo "== $name: $((SECONDS - t0)) s"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), torch.cuda.get_device_name(0))"

step tests $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py
step main-job lrpose run --method cal --res 128x96 --device cuda --amp fp16 --hp channels_last=true \
    --workers "$WORKERS" --out "$OUT/runs"
step hrnet-128x96 lrpose run --method cal --res 128x96 --backbone hrnet_w32 --device cuda --amp bf16 \
    --hp channels_last=true --epochs 5 --workers "$WORKERS" --out "$OUT/runs"
step hrnet-64x48 lrpose run --method udp --res 64x48 --backbone hrnet_w32 --device cuda --amp bf16 \
    --epochs 5 --workers "$WORKERS" --out "$OUT/runs"
# shellcheck disable=SC2053
((GPUS > 1)) || [[ torchrun-nccl != $STEPS ]] || echo "note: one GPU: torchrun runs a single process; DDP over NCCL needs two or more GPUs"
step torchrun-nccl torchrun --standalone --nproc_per_node="$GPUS" -m lrpose_bench.cli.app run --method cal_mgm \
    --res 64x48 --device cuda --epochs 6 --workers 4 --run-id cal_mgm-nccl --out "$OUT/runs"
step compile lrpose run --method udp --res 64x48 --device cuda --hp compile=true --epochs 2 --workers "$WORKERS" \
    --run-id udp-compiled --out "$OUT/runs"
for backbone in tiny resnet50 hrnet_w32; do
    for amp in off fp16; do
        step "bench-$backbone-$amp" lrpose bench train --method cal --res 128x96 --backbone "$backbone" \
            --device cuda --amp "$amp" --batch-size 64 --steps 20 --workers "$WORKERS"
    done
done

for batch in 64 256; do
    for mode in eager default reduce-overhead; do
        compile=(); [[ $mode != eager ]] && compile=(--compile --compile-mode "$mode")
        step "graphs-hrnet-b$batch-$mode" lrpose bench train --method cal --res 128x96 --backbone hrnet_w32 \
            --device cuda --amp bf16 --channels-last --batch-size "$batch" --steps 30 --warmup 5 \
            --workers "$WORKERS" ${compile[@]+"${compile[@]}"}
    done
done

echo
if ((${#failed[@]})); then echo "FAILED: ${failed[*]}"; exit 1; fi
echo "all CUDA checks passed"
