# duotok — the two commands a newcomer needs:
#   make repro   set up, generate data/ if needed, run the DVC pipeline (profile from params.yaml)
#   make test    set up, lint, run the test suite
# Another profile:  make repro PROFILE=smoke   runs it in a copy, .explore/smoke/ (duotok explore), so this
#                   checkout's committed default results (reports/, dvc.lock, data/) are never overwritten
SHELL := /bin/bash
BIN := .venv/bin
PROFILE ?=
# DVC stage commands call `duotok`, `jupyter`, ... : run them from the project's environment.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export DVC_SITE_CACHE_DIR := $(CURDIR)/.dvc/site-cache

.PHONY: setup data repro test lint lab notebooks clean

setup:
	@bash scripts/bootstrap.sh

data: setup
	@$(BIN)/duotok data ensure

ifneq ($(PROFILE),)
repro: setup
	@$(BIN)/duotok explore $(PROFILE)
else
repro: data
	@$(BIN)/dvc repro
	@echo "metrics: dvc metrics show; figures: reports/figures/; executed notebooks: reports/notebooks/"
endif

test:
	@bash scripts/test.sh

lint: setup
	@$(BIN)/ruff check duotok tests notebooks

# Open the notebooks in JupyterLab (the .py sources open as notebooks through jupytext).
lab: setup
	@$(BIN)/jupyter lab notebooks/

# Rewrite the output-free .ipynb twins after editing a notebooks/*.py source.
notebooks: setup
	@$(BIN)/duotok notebook sync

clean:
	rm -rf reports/notebooks/*.failed.ipynb .pytest_cache .ruff_cache
