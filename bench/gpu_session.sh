#!/bin/bash
# One prepared call for a session lent a GPU machine (docs/gpu.md, "The next GPU session"):
#
#     bash bench/gpu_session.sh OUT_DIR [STEPS]
#
# STEPS (comma-separated; default all) picks steps for a short device budget: stages,
# channels-last, model, trace, gpu (every part of bench/gpu.py) or some of its parts by name
# (labeling, inference, ...), tests.
# Runs, each under its own time limit: the inference stage breakdown beside the CPU model of
# its CUDA memory, efficient's stages again with channels-last weights, the allocations alive
# at efficient inference's peak named by source line (bench/cuda_memory_trace.py), every
# figure of bench/gpu.py at real sizes, and the gpu-marked
# tests. Writes 8 files to OUT_DIR (a device call returns at most 8): env.txt, run.log,
# stages.json, model.json, trace.json, gpu.json, gpu.md, logs.tgz. At most 595 s of limits;
# bench/gpu.py took 319 s and 298 s on the H200.
# pycocotools, which the H200 image lacks (the one package carried), is installed from .whl/
# (GPU_SESSION_WHEELS), offline, when that folder is there and the package is missing: pip
# picks the wheel of the machine's Python among those carried, into one folder a warm machine's
# next call reuses; a failed install is a line in env.txt, not the end of the call (only the
# parts that need the package fail).
# GPU_SESSION_CPU=1: every step at toy sizes on the CPU, limits x4 (trace needs CUDA and says
# so): a check of the script and the commands it builds, not figures.
set -u
out=${1:?usage: bash bench/gpu_session.sh OUT_DIR [STEPS]}
steps=",${2:-stages,channels-last,model,trace,gpu,tests},"
want() { [[ $steps == *",$1,"* ]]; }
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
scale=1 stage_args=() model_args=() gpu_args=()
if [ "${GPU_SESSION_CPU:-}" = 1 ]; then
    scale=4
    model_args=(--preset tiny --image 160x120 --test-size 128x96)
    stage_args=(--device cpu "${model_args[@]}")
    gpu_args=(--device cpu --small --timeout-scale 4)
fi
limit() { echo $(($1 * scale)); }
wheels=${GPU_SESSION_WHEELS:-.whl}
export PYTHONPATH=$PWD
install=""
if compgen -G "$wheels/*.whl" >/dev/null && ! python3 -c "import pycocotools" 2>/dev/null; then
    site=${TMPDIR:-/tmp}/gpu-session-site  # kept: the warm machine's next call imports it
    if PYTHONPATH=$site python3 -c "import pycocotools" 2>/dev/null; then
        export PYTHONPATH=$site:$PWD
        install="pycocotools from $site (installed by an earlier call)"
    elif python3 -m pip install -q --no-index --find-links "$wheels" --no-deps --no-compile \
        --no-cache-dir --target "$site" pycocotools >"$site.log" 2>&1; then
        export PYTHONPATH=$site:$PWD
        install="pycocotools installed from $wheels"
    else
        install="pycocotools not installed from $wheels: $(tail -1 "$site.log")"
    fi
    rm -f "$site.log"
fi
log="$out/run.log"
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import sys, torch, torchvision, transformers, numpy, cv2
print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda)
print('torchvision', torchvision.__version__, 'transformers', transformers.__version__)
print('numpy', numpy.__version__, 'opencv', cv2.__version__)"
    nproc
    git rev-parse HEAD 2>/dev/null
    [ -n "$install" ] && echo "$install"
} >"$out/env.txt" 2>&1

step() { echo "== $1 (at ${SECONDS}s)" >>"$log"; }

if want stages; then
    step "inference stages"
    timeout "$(limit 30)" python3 bench/inference_stages.py "${stage_args[@]}" \
        --json "$out/stages.json" >>"$log" 2>&1
    echo "rc=$?" >>"$log"
fi
if want channels-last; then
    step "efficient inference with channels-last weights (does the bf16 gap shrink? table in run.log)"
    timeout "$(limit 40)" python3 bench/inference_stages.py "${stage_args[@]}" --modes efficient \
        --channels-last >>"$log" 2>&1
    echo "rc=$?" >>"$log"
fi
if want model; then
    step "the CPU model of the same call's CUDA memory (to compare with stages.json)"
    timeout "$(limit 20)" python3 bench/cuda_memory_model.py "${model_args[@]}" \
        --json "$out/model.json" >>"$log" 2>&1
    echo "rc=$?" >>"$log"
fi
if want trace; then
    step "the allocations alive at efficient inference's peak (C++ stacks; Python only if that fails)"
    timeout "$(limit 90)" python3 bench/cuda_memory_trace.py --json "$out/trace.json" >>"$log" 2>&1
    rc=$?
    echo "rc=$rc" >>"$log"
    if [ "$rc" != 0 ]; then
        timeout "$(limit 40)" python3 bench/cuda_memory_trace.py --stacks python \
            --json "$out/trace.json" >>"$log" 2>&1
        echo "rc=$?" >>"$log"
    fi
fi
gpu_parts=()
for part in labeling sam3 inference train-bf16 train-fp32 ddp metrics; do
    want "$part" && gpu_parts+=("$part")
done
if want gpu || [ ${#gpu_parts[@]} -gt 0 ]; then
    parts=()
    want gpu || parts=(--parts "$(IFS=,; echo "${gpu_parts[*]}")")
    step "bench/gpu.py ${parts[*]}"
    # a folder of this call's own: on a warm machine the previous call's gpu.json and part logs
    # must not come back as this call's
    figs=$(mktemp -d -t gpu-figures.XXXXXX)
    timeout "$(limit 340)" python3 bench/gpu.py --out "$figs" "${gpu_args[@]}" "${parts[@]}" \
        >>"$log" 2>&1
    echo "rc=$?" >>"$log"
    cp "$figs/gpu.json" "$figs/gpu.md" "$out"/ 2>/dev/null
    tar czf "$out/logs.tgz" -C "$figs" logs parts 2>/dev/null
    rm -rf "$figs"
fi
if want tests; then
    step "gpu-marked tests"
    timeout "$(limit 35)" python3 -m pytest -q -rf -p no:cacheprovider -p no:xdist \
        -m "gpu and not slow" \
        tests/labeler/test_models.py tests/labeler/test_run.py tests/trainer/test_inference.py \
        tests/engine/test_metrics.py >>"$log" 2>&1
    echo "rc=$?" >>"$log"
fi
step "done"
tail -60 "$log"
