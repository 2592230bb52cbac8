set -x
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 3
export PYTHONPATH=/tmp/site
nvidia-smi -L; nproc; free -g | head -2
python3 -c "import torch, soundfile, librosa, museval; print(torch.__version__, torch.cuda.is_available(), soundfile.__libsndfile_version__)"
python3 .gpu/unpack.py .gpu/manifest.json /tmp/data .gpu/d0 && ls /tmp/data/songs | wc -l
