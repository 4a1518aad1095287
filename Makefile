# Two commands do all the set-up on a fresh machine with Python 3.11 and Java 17:
#   make demo   create/update .venv, install, generate data, run the whole pipeline (cleanse, identity, tags, maintain), score OneID against the truth, summarise the tags
#   make test   create/update .venv, install, run the tests
PYTHON ?= python3.11
VENV   ?= .venv
PERSONS ?= 20000
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint clean check-env

check-env:
	@command -v java >/dev/null 2>&1 || [ -x "$$JAVA_HOME/bin/java" ] || { echo "Java is missing: install a Java 17 runtime (e.g. sudo apt-get install openjdk-17-jre-headless), then run make again."; exit 1; }
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) is missing: install Python 3.11 (or run make PYTHON=/path/to/python3.11)."; exit 1; }

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory check-env
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

demo: check-env $(STAMP)
	$(BIN)/cdp doctor
	$(BIN)/cdp generate --persons $(PERSONS)
	$(BIN)/cdp run pipeline
	$(BIN)/cdp tables
	$(BIN)/cdp eval identity
	$(BIN)/cdp summary tags
	@echo "Data Docs: file://$(CURDIR)/lakehouse/quality/data_docs/index.html"

test: check-env $(STAMP)
	$(BIN)/python -m pytest

bench: check-env $(STAMP)
	$(BIN)/python bench/lake_write.py

lint: $(STAMP)
	$(BIN)/ruff check lib tests bench jobs notebooks

clean:
	rm -rf $(VENV) lakehouse logs .pytest_cache
