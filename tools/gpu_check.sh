#!/usr/bin/env bash
# The whole GPU check in one script, for the lent device machine (python3 with torch
# and CUDA, no network). Wheels the image lacks travel in .whl/; the fox capture in
# .device/fox. Usage: bash tools/gpu_check.sh PART... with PART in
#   tests    the GPU tests of $TEST_PACKAGES (default: latents splat model train; gsplat is built when splat is one)
#   extract  tools/bench/extract.py      enhance  tools/bench/enhance.py
#   splat    tools/bench/splat.py ($SPLAT_ARGS)   train  tools/bench/train.py ($TRAIN_ARGS)
#   pipeline tools/bench/pipeline.py: splatent pipeline on fox, pca and tiny-random codecs, tiny enhancer
#   view     tools/bench/view.py: the viewer's frame at 512², decoded and enhanced, taef2 and sd-vae
#   fitspeed tools/bench/profile_fit.py (latent fit: variants, kernel and host tables) and
#            tools/bench/rgb_recipe.py (RGB fit against a plain gsplat loop) on $FOX_UND, a pinhole copy of fox
#   trainprofile  tools/bench/train.py: original vs ours-compile-graphs-nhwc (UNet, VAE decoder and LPIPS compiled,
#                 CUDA graphs, NHWC), with its profile
#   enhanceprofile tools/bench/enhance.py: batch 16 compiled, NCHW and NHWC, with kernel tables per view
#   enhancebatch  tools/bench/enhance.py: compiled NHWC at batch 16 and 32 (does a larger batch reach 60 views/s?)
#   vaeattention  tools/bench/vae_attention.py: the VAE's attention, SDPA against matmuls
#   extractcold   tools/bench/extract.py --compile --cold at 512²: compile counted, in fresh processes
#   extractprofile  extractcold, plus the encoder's kernel tables (eager and compiled, NCHW and NHWC) per image
# JSON results go to $OUT (default ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
SITE=${SITE:-${TMPDIR:-/tmp}/splatent-site}  # where the carried wheels are installed
export PYTHONUNBUFFERED=1 MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || exit 1
fi
export PYTHONPATH="$SITE:$(ls -d packages/*/src apps/*/src | tr '\n' ':')"
FOX=${FOX:-.device/fox}
status=0
step() { echo "=== $* ($(date +%T))"; "$@" || { echo "FAILED: $*"; status=1; }; }
for part in "$@"; do
  case $part in
    tests)
      step nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
      step python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"
      packages=${TEST_PACKAGES:-latents splat model train}
      case " $packages " in *" splat "*)  # the kernel build (~85 s) only where gsplat's tests run
        step python3 -c "import time; t=time.time(); from splatent_splat import build_gsplat_kernels; print(build_gsplat_kernels()); print('gsplat build+load s', round(time.time()-t,1))" ;;
      esac
      for p in $packages; do
        step python3 -m pytest "packages/splatent-$p/tests" -m gpu -q -p no:cacheprovider
      done ;;
    extract) step python3 tools/bench/extract.py --out "$OUT/extract.json" ;;
    enhance) step python3 tools/bench/enhance.py --out "$OUT/enhance.json" ;;
    splat) step python3 tools/bench/splat.py --fox "$FOX" ${SPLAT_ARGS:-} --out /tmp/splat.json; cp /tmp/splat.json "$OUT/" 2>/dev/null ;;
    train) step python3 tools/bench/train.py ${TRAIN_ARGS:-} --out "$OUT/train.json" ;;
    pipeline)
      step python3 tools/bench/pipeline.py --fox "$FOX" --work /tmp/pipeline --out "$OUT/pipeline.json"
      for codec in pca tiny-random; do
        sheet=$(ls /tmp/pipeline/fox-$codec/eval/sheets/*.png 2>/dev/null | head -1)
        [ -n "$sheet" ] && cp "$sheet" "$OUT/sheet-$codec.png"
      done ;;
    view)
      step python3 -c "from splatent_splat import build_gsplat_kernels; print(build_gsplat_kernels())"
      step python3 tools/bench/view.py --out "$OUT/view.json" ;;
    fitspeed)
      step python3 -c "from splatent_splat import build_gsplat_kernels; print(build_gsplat_kernels())"
      step python3 tools/bench/profile_fit.py --fox "${FOX_UND:-.device/fox_und}" --out "$OUT/profile_fit.json"
      step python3 tools/bench/rgb_recipe.py --fox "${FOX_UND:-.device/fox_und}" --out "$OUT/rgb_recipe.json" ;;
    trainprofile) step python3 tools/bench/train.py --recipes original,ours-compile-graphs-nhwc --steps 50 \
                    --profile ours-compile-graphs-nhwc --out "$OUT/train_profile.json" ;;
    enhanceprofile) step python3 tools/bench/enhance.py --batch-sizes 16 --compile-batch-sizes 16 --no-files \
                      --loop-views 16 --profile --out "$OUT/enhance_profile.json" ;;
    enhancebatch) step python3 tools/bench/enhance.py --batch-sizes 16 --compile-batch-sizes 16,32 \
                    --compile-formats channels_last --no-files --loop-views 16 --out "$OUT/enhance_batch.json" ;;
    vaeattention) step python3 tools/bench/vae_attention.py --out "$OUT/vae_attention.json" ;;
    extractcold) step python3 tools/bench/extract.py --sizes 512x512 --compile --cold --batch-sizes 16 \
                   --out "$OUT/extract_cold.json" ;;
    extractprofile) step python3 tools/bench/extract.py --sizes 512x512 --compile --cold --profile --batch-sizes 16 \
                      --out "$OUT/extract_profile.json" ;;
    *) echo "unknown part $part"; status=2 ;;
  esac
done
exit $status
