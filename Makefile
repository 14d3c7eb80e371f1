# Two commands on a fresh Debian 12 + Python 3.11 machine: `make demo`, `make test`.
# Both do the whole set-up (apt packages, .venv, pinned pip installs) and are
# quick when it is already done (stamp files).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := libusb-1.0-0 libosmesa6 libegl-mesa0 libgl1 libglib2.0-0
APT_STAMP := $(VENV)/.apt-ok
PIP_STAMP := $(VENV)/.pip-ok
# LeRobot's own dataset reader lives in a venv of its own: its pins clash with ours (DESIGN.md §7).
LEROBOT_VENV := .venv-lerobot
LEROBOT_STAMP := $(LEROBOT_VENV)/.pip-ok
LEROBOT_APT_PACKAGES := libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavfilter8 libavdevice59
# Headless rendering and an isolated ROS 2 graph for everything run from here.
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export HF_HUB_OFFLINE := 1
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export FASTDDS_DEFAULT_PROFILES_FILE ?= $(CURDIR)/config/fastdds_shm.xml

.PHONY: setup lerobot-venv demo test test-fast bench clean

setup: $(PIP_STAMP)

$(APT_STAMP):
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@touch $@

$(PIP_STAMP): $(APT_STAMP) requirements.txt setup.py
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	# robosuite is used only for its MIT Panda assets; its own pins (numpy<2) clash with the ROS wheels.
	$(PY) -m pip install -q --no-deps robosuite==1.5.2
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

# FFmpeg libraries for torchcodec, then torch + torchvision + torchcodec + lerobot-dataset.
$(LEROBOT_STAMP): requirements-lerobot.txt
	@missing=""; for p in $(LEROBOT_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@test -x $(LEROBOT_VENV)/bin/python || $(PYTHON) -m venv $(LEROBOT_VENV)
	$(LEROBOT_VENV)/bin/python -m pip install -q --upgrade pip
	$(LEROBOT_VENV)/bin/python -m pip install -q -r requirements-lerobot.txt
	@touch $@

lerobot-venv: $(LEROBOT_STAMP)

demo: setup
	$(VENV)/bin/action-images demo --out outputs/demo

test: setup lerobot-venv
	LEROBOT_PYTHON=$(CURDIR)/$(LEROBOT_VENV)/bin/python $(PY) -m pytest -q --timeout=900

test-fast: setup
	$(PY) -m pytest -q -m "not slow" --timeout=300

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(LEROBOT_VENV) outputs build install log *.egg-info src/*.egg-info
