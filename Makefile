# The README's two commands:
#   make demo  -- set up .venv and run the whole pipeline on a bundled/generated sample
#   make test  -- set up .venv (plus the GUI test prerequisites) and run ruff and pytest
# and CI's second job (.ci/run runs both):
#   make test-lowest -- every dependency at the floor pyproject.toml declares (.venv-lowest,
#                       resolved by uv), then the non-GUI tests (.ci/lowest)
#
# EXTRAS includes the optional ecosystem extras (export, anndata, remote, formats) so CI runs
# their tests; without them those tests are skipped.
#
# torch==2.13.0 is installed before anything that needs torch, so pip takes the CPU build
# instead of resolving a bare `torch` requirement to a multi-GB CUDA wheel.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
EXTRAS ?= samples,dev,gui-test,workflows,slurm,export,anndata,remote,formats
comma  := ,
STAMP  := $(VENV)/.cellvae-$(subst $(comma),-,$(EXTRAS))

.PHONY: demo test test-lowest lint venv gui-deps clean mutation

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

demo: $(STAMP)
	bash scripts/demo.sh

# Xvfb and the X/Qt client libraries napari needs for GUI tests; installed only when missing
# and only when we may (root on Debian/Ubuntu). Without them GUI tests are skipped, not failed.
gui-deps:
	@if ! command -v Xvfb >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Xvfb and Qt's X libraries for GUI tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 \
			libxcb-randr0 libxcb-xinerama0 libxcb-xkb1 libxcb-shape0 libxcb-cursor0 \
			libxkbcommon-x11-0 libegl1 libgl1 libglib2.0-0 libfontconfig1 libdbus-1-3 >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/snakefmt --no-format-shell --check workflows/Snakefile workflows/rules

test: $(STAMP) gui-deps lint
	$(BIN)/pytest

test-lowest: $(STAMP)
	PYTHON=$(PYTHON) VENV_MAIN=$(VENV) .ci/lowest

# Mutation testing (not in CI; slow): kill rate per package, see scripts/mutation.sh.
# Narrow it with PACKAGES="io metrics".
mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet mutmut
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/mutation.sh $(PACKAGES)

clean:
	rm -rf runs data/generated .pytest_cache .ruff_cache .venv-lowest
