# redrum-kit: `make serve` and `make test` are all a new user needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HYDROGEN := hydrogen-drumkits hydrogen-data

.PHONY: install data serve test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Real drum kits (~800 oneshots in 16 kits) from Debian, for import, training and evaluation.
data:
	@if [ -d /usr/share/hydrogen/data/drumkits ]; then \
	    echo "Hydrogen drumkits already installed in /usr/share/hydrogen/data/drumkits"; \
	elif [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(HYDROGEN); \
	else \
	    echo "run as root: sudo apt-get install --no-install-recommends $(HYDROGEN)"; \
	fi

serve: install
	$(BIN)/redrum serve

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
