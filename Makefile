# kiln: a thin wrapper over CMake for the everyday chores. CMake is the build; this file
# only remembers the commands.
#
#   make deps       install the missing Debian packages (apt-get; as root or via sudo)
#   make build      configure (Release, Ninja when present) and build into build/
#   make test       deps + build + the whole suite through ctest
#   make demo       deps + build + the charlm demo: a vanilla char-level GPT vs one with
#                   ContextPool and fewer layers, side by side (~3 min on 2 cores)
#   make bench      build and run every bench_* program
#   make clean      remove build/
#   make deps-copy  copy the header-only deps into .deps/, for an offline (GPU) machine
#   make test-sanitize  the whole suite built with ASan + UBSan (+ LSan) in build-sanitize/
#   make fuzz       build the file readers' libFuzzer targets (clang) in build-fuzz/ and
#                   run each for FUZZ_SECONDS (docs/reliability.md)
#
# Overridable: BUILD_DIR=build BUILD_TYPE=Release JOBS=<cores> CMAKE_ARGS="-DKILN_CUDA=OFF ..."
#              SANITIZE_DIR=build-sanitize FUZZ_DIR=build-fuzz FUZZ_SECONDS=60 FUZZ_READERS="mnist ..."

BUILD_DIR  ?= build
BUILD_TYPE ?= Release
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=

DEBIAN_PACKAGES := build-essential cmake ninja-build libeigen3-dev doctest-dev nlohmann-json3-dev libopenblas-dev
DEPS_DIR := .deps

# Ninja when installed. The generator is chosen once, at the first configure: CMake
# refuses to switch generators in an existing build folder.
GENERATOR := $(if $(shell command -v ninja 2>/dev/null),-G Ninja)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: all deps deps-copy configure build test demo bench clean

all: build

# A package counts as present when dpkg has it installed, or, for the header-only ones,
# when `make deps-copy` put a copy in .deps/ (a GPU machine without network has no apt).
deps:
	@if ! command -v dpkg-query >/dev/null 2>&1; then \
	  echo "deps: not a Debian system, skipping the package check"; exit 0; \
	fi; \
	missing=""; \
	for pkg in $(DEBIAN_PACKAGES); do \
	  case $$pkg in \
	    libeigen3-dev) copy=eigen3 ;; doctest-dev) copy=doctest ;; nlohmann-json3-dev) copy=nlohmann ;; *) copy="" ;; \
	  esac; \
	  if [ -n "$$copy" ] && [ -d "$(DEPS_DIR)/$$copy" ]; then continue; fi; \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "deps: installing$$missing"; \
	if [ -n "$(SUDO)" ] && ! command -v sudo >/dev/null 2>&1; then \
	  echo "deps: not root and no sudo; install as root: apt-get install$$missing" >&2; exit 1; \
	fi; \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing

# Copies of the header-only dependencies, laid out like their /usr prefix so that the
# relocatable CMake configs of Eigen and nlohmann-json work from there. doctest's config
# hard-codes /usr, so only its header is copied (cmake/KilnDependencies.cmake copes).
deps-copy: deps
	rm -rf $(DEPS_DIR)/eigen3 $(DEPS_DIR)/doctest $(DEPS_DIR)/nlohmann
	mkdir -p $(DEPS_DIR)/eigen3/include $(DEPS_DIR)/eigen3/share/eigen3 \
	         $(DEPS_DIR)/doctest/include \
	         $(DEPS_DIR)/nlohmann/include $(DEPS_DIR)/nlohmann/share/cmake
	cp -r /usr/include/eigen3 $(DEPS_DIR)/eigen3/include/
	cp -r /usr/share/eigen3/cmake $(DEPS_DIR)/eigen3/share/eigen3/
	cp -r /usr/include/doctest $(DEPS_DIR)/doctest/include/
	cp -r /usr/include/nlohmann $(DEPS_DIR)/nlohmann/include/
	cp -r /usr/share/cmake/nlohmann_json $(DEPS_DIR)/nlohmann/share/cmake/
	@du -sh $(DEPS_DIR)

configure:
	@if [ -f $(BUILD_DIR)/CMakeCache.txt ]; then \
	  cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS); \
	else \
	  cmake -S . -B $(BUILD_DIR) $(GENERATOR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS); \
	fi

build: configure
	cmake --build $(BUILD_DIR) --parallel $(JOBS)

# build runs in a sub-make so that it sees what deps just installed (ninja, for one).
test: deps
	$(MAKE) --no-print-directory build
	cd $(BUILD_DIR) && ctest --output-on-failure -j2

# The models land in $(BUILD_DIR)/charlm_demo/, ready for charlm --generate / --visualize.
demo: deps
	$(MAKE) --no-print-directory build
	$(BUILD_DIR)/examples/charlm/charlm --demo --checkpoint-dir $(BUILD_DIR)/charlm_demo

bench: build
	@set -e; for program in $(BUILD_DIR)/bench/bench_*; do \
	  [ -f "$$program" ] && [ -x "$$program" ] || continue; \
	  echo "== $$program"; "$$program"; \
	done

clean:
	rm -rf $(BUILD_DIR)

# ---- sanitizers and fuzzing (docs/reliability.md) ----------------------------------------
SANITIZE_DIR ?= build-sanitize
# halt_on_error: the first report fails its test. detect_leaks: LeakSanitizer at exit.
SANITIZE_ENV := ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:strict_string_checks=1:check_initialization_order=1 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Extra ctest arguments, e.g. SANITIZE_CTEST_ARGS="-R serialize" for a subset (.ci/run).
SANITIZE_CTEST_ARGS ?=
FUZZ_DIR ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_READERS ?= safetensors checkpoint mnist cifar corpus
# libFuzzer ships with clang's runtime libraries; clang's OpenMP is libomp.
FUZZ_PACKAGES := clang libclang-rt-14-dev libomp-dev

.PHONY: test-sanitize fuzz

# Its own build folder: the sanitized objects must not mix with the Release ones. The
# benchmarks are left out (nothing to check there that the tests do not run), and so is
# the CUDA backend: sanitizers check host code, the Release build already compiles the
# kernels, and this way CI also builds and tests the CPU-only configuration (its
# "built without CUDA" stubs) without compiling the kernels twice.
test-sanitize: deps
	$(MAKE) --no-print-directory build BUILD_DIR=$(SANITIZE_DIR) \
	  CMAKE_ARGS="-DKILN_SANITIZE=address,undefined -DKILN_BUILD_BENCH=OFF -DKILN_CUDA=OFF $(CMAKE_ARGS)"
	cd $(SANITIZE_DIR) && $(SANITIZE_ENV) ctest --output-on-failure -j2 $(SANITIZE_CTEST_ARGS)

fuzz: deps
	$(MAKE) --no-print-directory deps DEBIAN_PACKAGES="$(FUZZ_PACKAGES)"
	cmake -S . -B $(FUZZ_DIR) $(if $(wildcard $(FUZZ_DIR)/CMakeCache.txt),,$(GENERATOR)) \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DKILN_FUZZ=ON -DKILN_CUDA=OFF \
	  -DKILN_BUILD_TESTS=OFF -DKILN_BUILD_BENCH=OFF -DKILN_BUILD_EXAMPLES=OFF $(CMAKE_ARGS)
	cmake --build $(FUZZ_DIR) --parallel $(JOBS)
	fuzz/run_fuzzers.sh $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_READERS)
