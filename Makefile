# Two commands do everything on a fresh machine (Python 3.11, git, make, gcc):
#   make demo   - set up .venv and run the whole pipeline on the embedded synthetic COCO (no key, no downloads)
#   make test   - set up .venv and run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_DIR ?= demo_output
# Where the CPU torch wheel comes from. Empty: pip's own configuration (here a local wheel). On a machine where
# plain PyPI would give the CUDA build, use `make TORCH_INDEX=https://download.pytorch.org/whl/cpu demo`.
TORCH_INDEX ?=
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/.cache/torch_extensions

.PHONY: demo test lint venv clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned to 2.13.0 (the CPU wheel with TORCH_INDEX or a local wheel; see above)
	$(BIN)/python -m pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q -e ".[train,dev]"
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh $(DEMO_DIR)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) $(DEMO_DIR) .cache build *.egg-info
