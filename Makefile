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
# Headless rendering and an isolated ROS 2 graph for everything run from here.
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export HF_HUB_OFFLINE := 1
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export FASTDDS_DEFAULT_PROFILES_FILE ?= $(CURDIR)/config/fastdds_shm.xml

.PHONY: setup demo test test-fast bench clean

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

demo: setup
	$(VENV)/bin/action-images demo --out outputs/demo

test: setup
	$(PY) -m pytest -q --timeout=900

test-fast: setup
	$(PY) -m pytest -q -m "not slow" --timeout=300

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) outputs build install log *.egg-info src/*.egg-info
