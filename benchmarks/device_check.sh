#!/usr/bin/env bash
# torchstyle's CUDA checks in one command, for a session that is lent a GPU machine:
#   bash benchmarks/device_check.sh [OUTDIR]     (OUTDIR defaults to $OUT, else the current folder)
# 1. the style tests, CUDA ones included (graph capture vs eager, no syncs in L-BFGS);
# 2. the CUDA benchmark table at 512 and 1024 px (plain vs fp32 with and without graphs vs
#    tf32+graphs vs bf16+graphs), then the time-to-loss table at 256 px (where the
#    random-weights objective converges);
# 3. batch throughput: image-evaluations/s at 512 px for batches of 1, 4 and 16 images (each its
#    own objective and L-BFGS state, one CUDA graph per step), TF32 (the default) and bf16
#    (target: >= 500/s for 16 images). Each log lands in OUTDIR; paste the tables into README.
# The torchstyle package needs only torch, torchvision, pillow, numpy and tqdm, which such machines have.
set -uo pipefail
out=${1:-${OUT:-.}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
"$python" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$out/gpu.txt"
"$python" -m pytest -q -p no:cacheprovider tests/test_style_vgg.py tests/test_style_losses.py tests/test_style_lbfgs.py tests/test_style_transfer.py \
    tests/test_style_batch.py tests/test_style_tiles.py tests/test_style_cli.py tests/test_style_hub.py 2>&1 | tee "$out/style_tests.txt"
tests=${PIPESTATUS[0]}
"$python" benchmarks/style.py --devices cuda --sizes 512 1024 --steps 20 --converge-size 256 --converge-steps 50 2>&1 | tee "$out/style_bench.txt"
bench=${PIPESTATUS[0]}
"$python" benchmarks/style.py --mode batch --devices cuda --sizes 512 --batches 1 4 16 --precisions auto bf16 --steps 20 2>&1 | tee "$out/style_batch.txt"
batch=${PIPESTATUS[0]}
echo "tests exit $tests, benchmark exit $bench, batch benchmark exit $batch"
exit $(( tests || bench || batch ))
