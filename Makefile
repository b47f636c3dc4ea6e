# Build entry points. Every target installs into ./.venv first (once: the
# install re-runs only when pyproject.toml changes, tracked by a stamp file).
#   make test       fast test suite (excludes -m slow)
#   make test-slow  long RTL regressions
#   make demo       end-to-end demo
#   make codegen    regenerate files derived from the register map / ISA
#   make clean      remove build output and caches (distclean: also .venv)

PYTHON ?= python3.11
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-test
PYTEST := $(VPY) -m pytest -n 2 -q

.PHONY: install test test-slow demo codegen clean distclean

install: $(STAMP)

$(VPY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(VPY)
	$(VPY) -m pip install -e '.[test]'
	touch $@

# pytest exits 5 when it collected no test: that must fail loudly, not pass.
# make itself turns any non-zero recipe status into a failure of the target.
define run_pytest
	@rc=0; $(PYTEST) $(1) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests (exit 5); failing on purpose." >&2; fi; \
	exit $$rc
endef

test: $(STAMP)
	$(call run_pytest,-m "not slow")

test-slow: $(STAMP)
	$(call run_pytest,-m slow)

demo: $(STAMP)
	$(VENV)/bin/presil demo

codegen: $(STAMP)
	$(VENV)/bin/presil codegen

clean:
	rm -rf build dist sim_build .pytest_cache .hypothesis results.xml
	find . -path ./$(VENV) -prune -o -type d \( -name __pycache__ -o -name sim_build \) -print -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
