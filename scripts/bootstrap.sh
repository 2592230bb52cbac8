#!/usr/bin/env bash
# Idempotent set-up for duotok: Debian packages (when apt is available), a virtual environment in
# .venv with the pinned stack (torch 2.13.0 CPU, no torchaudio/torchvision), and the `duotok`
# Jupyter kernel registered with --sys-prefix. A second run only checks and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${DUOTOK_VENV:-.venv}
APT_PACKAGES=(espeak-ng portaudio19-dev ffmpeg)   # the singer's voice; pyaudio's headers (a tinysoundfont dep); Opus (libopus) for the codec reference

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- Debian packages -------------------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    say "installing Debian packages with sudo: ${missing[*]}"
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  elif ! command -v espeak-ng >/dev/null 2>&1; then
    say "cannot install system packages here. Please install, then re-run:"
    say "  Debian/Ubuntu: sudo apt-get install ${APT_PACKAGES[*]}"
    say "  macOS (Homebrew): brew install espeak-ng portaudio"
    say "  conda: conda install -c conda-forge espeak-ng portaudio"
    exit 1
  fi
fi

# --- Python ----------------------------------------------------------------------------------
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY=$cand; break
    fi
  done
fi
if [ -z "$PY" ]; then
  say "duotok needs Python 3.11 (torch 2.13.0 CPU wheel); set PYTHON=/path/to/python3.11"
  exit 1
fi

stamp_value=$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)
stamp_file="$VENV/.duotok-setup"
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp_value" ] && [ -x "$VENV/bin/duotok" ]; then
  say "environment $VENV is up to date"
  exit 0
fi

[ -d "$VENV" ] || { say "creating virtual environment $VENV"; "$PY" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
say "installing torch==2.13.0 and the pinned stack (a few minutes the first time)"
"${PIP[@]}" install -q "setuptools==80.9.0" wheel
"${PIP[@]}" install -q "torch==2.13.0"
"${PIP[@]}" install -q -e ".[dev]"
if "$VENV/bin/python" -c 'import torchaudio' 2>/dev/null || "$VENV/bin/python" -c 'import torchvision' 2>/dev/null; then
  say "warning: torchaudio/torchvision are installed in $VENV; duotok does not use them (they pin other torch builds)"
fi
say "registering the Jupyter kernel 'duotok' (--sys-prefix)"
"$VENV/bin/python" -m ipykernel install --sys-prefix --name duotok --display-name "duotok (Python 3.11)" >/dev/null
echo "$stamp_value" > "$stamp_file"
say "done: activate with 'source $VENV/bin/activate'"
