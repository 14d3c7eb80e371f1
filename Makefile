# Two commands on a fresh Debian 12 + Python 3.11 machine: `make demo`, `make test`.
# Both do the whole set-up (apt packages, .venv, pinned pip installs) and are
# quick when it is already done (stamp files).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# chromium: headless browser the viewer test opens the Rerun web viewer in (test_viz_browser)
APT_PACKAGES := libusb-1.0-0 libosmesa6 libegl-mesa0 libgl1 libglib2.0-0 chromium
APT_STAMP := $(VENV)/.apt-ok
PIP_STAMP := $(VENV)/.pip-ok
# LeRobot's own dataset reader lives in a venv of its own: its pins clash with ours (DESIGN.md §7).
LEROBOT_VENV := .venv-lerobot
LEROBOT_STAMP := $(LEROBOT_VENV)/.pip-ok
LEROBOT_APT_PACKAGES := libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavfilter8 libavdevice59
# ROS 2 Jazzy (what franka_ros2 v3 runs) in a venv of its own: the ROS node tests run under it too.
# Never mix Kilted (requirements.txt) and Jazzy (requirements-jazzy.txt) wheels in one venv (DESIGN.md §3).
JAZZY_VENV := .venv-jazzy
JAZZY_PY := $(JAZZY_VENV)/bin/python
JAZZY_STAMP := $(JAZZY_VENV)/.pip-ok
JAZZY_TESTS ?= test/test_ros_*.py
# Headless rendering and an isolated ROS 2 graph for everything run from here.
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export HF_HUB_OFFLINE := 1
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export FASTDDS_DEFAULT_PROFILES_FILE ?= $(CURDIR)/config/fastdds_shm.xml

.PHONY: setup lerobot-venv jazzy-venv demo test test-jazzy test-fast bench clean

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

# The non-ROS lines of requirements.txt, then the Jazzy wheels; fails if a Kilted rclpy slipped in.
$(JAZZY_STAMP): $(APT_STAMP) requirements.txt requirements-jazzy.txt setup.py
	@test -x $(JAZZY_PY) || $(PYTHON) -m venv $(JAZZY_VENV)
	$(JAZZY_PY) -m pip install -q --upgrade pip
	grep -v '^ros-' requirements.txt > $(JAZZY_VENV)/requirements-no-ros.txt
	$(JAZZY_PY) -m pip install -q -r $(JAZZY_VENV)/requirements-no-ros.txt -r requirements-jazzy.txt
	$(JAZZY_PY) -m pip install -q --no-deps robosuite==1.5.2
	$(JAZZY_PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(JAZZY_PY) -c "import importlib.metadata as m, rclpy; v = m.version('ros-rclpy'); assert v.startswith('7.'), v; print('jazzy venv: ros-rclpy', v)"
	@touch $@

jazzy-venv: $(JAZZY_STAMP)

demo: setup
	$(VENV)/bin/action-images demo --out outputs/demo

test: setup lerobot-venv jazzy-venv
	LEROBOT_PYTHON=$(CURDIR)/$(LEROBOT_VENV)/bin/python $(PY) -m pytest -q -n 2 --dist worksteal --durations=15 --timeout=900
	$(MAKE) --no-print-directory test-jazzy

# The ROS node tests again under ROS 2 Jazzy (rclpy 7.1.6): the distribution of franka_ros2 v3.
test-jazzy: jazzy-venv
	$(JAZZY_PY) -m pytest -q -n 2 --dist worksteal -m "not slow" --timeout=600 -p no:cacheprovider $(JAZZY_TESTS)

test-fast: setup
	$(PY) -m pytest -q -m "not slow" --timeout=300

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(LEROBOT_VENV) $(JAZZY_VENV) outputs build install log *.egg-info src/*.egg-info
