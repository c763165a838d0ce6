# Set-up plus the main job, and set-up plus tests, each in one command on a fresh machine:
#   make demo    make test
# The CPU build of torch is installed first; elsewhere, point TORCH_INDEX at
# https://download.pytorch.org/whl/cpu (or drop it for a CUDA build).
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS ?= dev,bio,zarr,slides,onnx,bioimageio,distributed,napari-test

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

.PHONY: install test demo lint
install: $(VENV)/.installed

test: install
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q
	@if command -v xvfb-run >/dev/null; then \
	  xvfb-run -a env QT_QPA_PLATFORM=xcb MDEBLUR_ARTIFACTS=.ci/artifacts $(PY) -m pytest -q tests/test_napari_viewer.py; \
	else echo "xvfb-run not found: the real napari viewer test did not run (apt-get install xvfb, see .ci/run)"; fi

lint: install
	$(VENV)/bin/ruff check mdeblur_cli tests benchmarks examples

demo: install
	$(VENV)/bin/mdeblur restore examples/retina_blurry_lr.png -o demo/retina_restored.png --overwrite
	@echo "input: examples/retina_blurry_lr.png  ->  restored x2: demo/retina_restored.png"
