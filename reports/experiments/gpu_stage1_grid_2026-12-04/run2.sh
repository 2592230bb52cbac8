set -x
[ -d /tmp/site ] || { echo "FRESH MACHINE: no /tmp/site"; exit 4; }
export PYTHONPATH=/tmp/site; mkdir -p /tmp/fb; for c in ffmpeg ffprobe; do printf "#!/bin/sh\necho ffmpeg version 4.4.2\n" > /tmp/fb/$c; chmod +x /tmp/fb/$c; done; export PATH=/tmp/fb:$PATH; python3 -c "import museval" || exit 6
python3 .gpu/unpack.py .gpu/manifest.json /tmp/data .gpu/d1 && ls /tmp/data/songs | wc -l
cd .gpu/src && export PYTHONPATH=$PWD:/tmp/site DUOTOK_ROOT=$PWD PYTHONUNBUFFERED=1
python3 -c "import duotok.train.quick" || exit 5
python3 ../grid.py orchestrate /tmp/data /tmp/grid $OUT ${GRID_BUDGET:-470} 2>&1 | tee $OUT/orchestrate.log | grep -v Warning
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
