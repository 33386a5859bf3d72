# The two entry points of the project (see README.md):
#   make run   install missing Debian packages, build (Release), start TOPOLOGY in the foreground
#   make test  install missing Debian packages, build, run every test through ctest
# Both are idempotent on a fresh Debian 12 machine (run as root, or with sudo available).
# And the Debian package (issue 13; README.md, "The Debian package"):
#   make deb   build vartalapd and vartalapctl, then CPack: $(BUILD_DIR)/vartalap_<version>_amd64.deb
# And the benchmark of BENCHMARKS.md (issue 10), which `make test` never needs:
#   make bench [QUICK=1]  also install mosquitto, libmosquitto-dev and linux-perf, build the
#                         server and the two load generators, run tools/bench/run.sh
# And issue 14's fault test:
#   make chaos [SECONDS=60]  local-multiprocess.toml under random kill -9s and app-like
#                            traffic, in both durability modes; fails on any acked message lost
# And the fuzz targets of docs/RELIABILITY.md (issue 14), which `make test` never needs (it
# replays their corpus with GCC):
#   make fuzz [SECONDS=60] [FUZZ_TARGETS="envelope topology"]  also install clang and its
#                         libFuzzer runtime, build build/fuzz with clang, run each target
#                         SECONDS seconds (tests/fuzz/run.sh)
# And the sanitizer runs (docs/RELIABILITY.md, "Sanitizers"):
#   make test SANITIZE=1  ASan + UBSan, build/sanitize (every test but package.deb)
#   make tsan-test        TSan, build/tsan (the tests that run daemons on threads, TSAN_TESTS)
# CI (.ci/run) runs all three: make test, make tsan-test, make test SANITIZE=1.

TOPOLOGY ?= topology/local.toml
SANITIZE ?= 0
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
WERROR ?= 0

# Sanitized binaries run 2-10x slower: every test deadline (a wait for a condition) is
# multiplied by VARTALAP_TEST_TIME_SCALE (tests/support/deadline.hpp). The package test is
# not run there: it checks packaging (CPack, lintian), not memory, and lintian on the 50 MB
# of sanitized binaries outlasts ctest's timeout.
ifeq ($(SANITIZE),1)
BUILD_DIR ?= build/sanitize
CMAKE_EXTRA := -DVARTALAP_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
TEST_ENV := VARTALAP_TEST_TIME_SCALE=3
TEST_EXCLUDE := -E '^package\.deb$$'
else
BUILD_DIR ?= build/release
CMAKE_EXTRA := -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)
TEST_ENV :=
TEST_EXCLUDE :=
endif

# Debian 12 packages the build and the tests need (chromium: the web client's browser test,
# tests/web/, which skips itself without it). Do not add libboost1.81-dev:
# it conflicts with libmsgpack-cxx-dev (which depends on Debian's default Boost 1.74).
# iproute2: `ip netns` for the three-host test (tests/integration/three_hosts_test.cpp, root only).
PACKAGES := build-essential cmake ninja-build pkg-config \
	libzmq3-dev cppzmq-dev libboost-dev libmsgpack-cxx-dev liblmdb-dev \
	libcli11-dev libgtest-dev libssl-dev libsystemd-dev libtomlplusplus-dev \
	nlohmann-json3-dev libsimdjson-dev libspdlog-dev \
	systemd nginx-light lintian chromium iproute2

# lintian: the package test (ctest package.deb) runs it on the .deb that CPack builds;
# iproute2: the three-host test (tests/integration/three_hosts_test.cpp) makes namespaces.

# Only `make bench` installs these (the mosquitto baseline, its client library, perf).
BENCH_PACKAGES := mosquitto libmosquitto-dev linux-perf
QUICK ?= 0

# Only `make fuzz` installs these: clang 14 and its libFuzzer runtime
# (libclang_rt.fuzzer-x86_64.a is in libclang-rt-14-dev on Debian 12).
FUZZ_PACKAGES := clang libclang-rt-14-dev
SECONDS ?= 60
FUZZ_TARGETS ?=
FUZZ_DIR := build/fuzz

# The TSan run: the tests that start daemons on threads in one process (test binaries, and
# the ctest regex of their tests).
TSAN_DIR := build/tsan
# Not the integration tests that spawn processes (process.*, Multiprocess, Units, Vartalapctl,
# Nginx): one process each, nothing shared between threads that the others do not cover.
TSAN_TARGETS := unit_runtime unit_ws_gateway unit_session unit_group unit_persistence integration_tests
TSAN_TESTS := ^(LoopDaemon|Ops|OpsReply|ZmqAsioWatcher|SessionDaemon|GroupDaemon|PersistenceDaemon|Chat|ChatDedupe|ChatRestart|ChatThreads|Group|Offline|OfflineRestart|Reload|WsGateway[A-Za-z]*|FcmPush|WebhookPush|PushProfileTokens)(Test)?\.

.PHONY: run test build deb deps bench bench-deps fuzz fuzz-deps tsan-test chaos install-packages clean

deps:
	@$(MAKE) --no-print-directory install-packages INSTALL='$(PACKAGES)'

bench-deps:
	@$(MAKE) --no-print-directory install-packages INSTALL='$(BENCH_PACKAGES)'

fuzz-deps:
	@$(MAKE) --no-print-directory install-packages INSTALL='$(FUZZ_PACKAGES)'

# Installs the Debian packages of INSTALL that are missing.
install-packages:
	@missing=$$(for p in $(INSTALL); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing missing Debian packages: $$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(BUILD_DIR)/build.ninja: | deps
	cmake -S . -B $(BUILD_DIR) -G Ninja $(CMAKE_EXTRA) -DVARTALAP_WERROR=$(if $(filter 1,$(WERROR)),ON,OFF)

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

# A topology that uses inproc:// runs in one process; one without (local-multiprocess.toml,
# cluster-example.toml) runs one vartalapd per daemon under `vartalapctl up --spawn`.
run: build
	@if grep -Eq '^[^#]*"inproc://' $(TOPOLOGY); then spawn=; else spawn=--spawn; fi; \
	echo "$(BUILD_DIR)/tools/vartalapctl up $(TOPOLOGY) $$spawn"; \
	exec $(BUILD_DIR)/tools/vartalapctl up $(TOPOLOGY) $$spawn

test: build
	cd $(BUILD_DIR) && $(TEST_ENV) ctest --output-on-failure -j $(JOBS) --timeout 300 $(TEST_EXCLUDE)

# The package holds vartalapd, vartalapctl and the files of packaging/ (package_files: the
# rendered vartalap.target and env files); CPack packages the built tree, nothing else is built.
deb: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS) --target vartalapd vartalapctl package_files
	cd $(BUILD_DIR) && cpack -G DEB
	@ls -l $(BUILD_DIR)/vartalap_*_amd64.deb

# Configures again when the tree predates libmosquitto-dev (no vartalap-mqtt-bench target),
# then builds only what the benchmark runs.
BENCH_TARGETS := vartalapctl vartalapd vartalap-loadgen vartalap-mqtt-bench
bench: deps bench-deps $(BUILD_DIR)/build.ninja
	@ninja -C $(BUILD_DIR) -t targets all 2>/dev/null | grep -q '^vartalap-mqtt-bench:' || \
		cmake -S . -B $(BUILD_DIR) -G Ninja $(CMAKE_EXTRA) -DVARTALAP_WERROR=$(if $(filter 1,$(WERROR)),ON,OFF)
	cmake --build $(BUILD_DIR) -j $(JOBS) --target $(BENCH_TARGETS)
	QUICK=$(QUICK) BUILD_DIR=$(BUILD_DIR) tools/bench/run.sh

CHAOS_TARGETS := vartalapctl vartalapd vartalap-chaos
chaos: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS) --target $(CHAOS_TARGETS)
	@status=0; for durability in fsync process; do \
		echo "== make chaos: $$durability durability, $(SECONDS) s"; \
		$(BUILD_DIR)/tools/vartalap-chaos --seconds $(SECONDS) --durability $$durability \
			--vartalapctl $(BUILD_DIR)/tools/vartalapctl --topology topology/local-multiprocess.toml || status=1; \
	done; exit $$status

# The fuzz tree is clang's (CXX=clang++); new corpus entries stay in build/fuzz/fuzz-corpus.
fuzz: deps fuzz-deps
	@[ -f $(FUZZ_DIR)/build.ninja ] || CXX=clang++ cmake -S . -B $(FUZZ_DIR) -G Ninja \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo -DVARTALAP_FUZZ=ON
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target fuzz_targets
	nice -n 10 tests/fuzz/run.sh $(FUZZ_DIR) $(SECONDS) $(FUZZ_TARGETS)

tsan-test: deps
	@[ -f $(TSAN_DIR)/build.ninja ] || cmake -S . -B $(TSAN_DIR) -G Ninja \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo -DVARTALAP_TSAN=ON \
		-DVARTALAP_WERROR=$(if $(filter 1,$(WERROR)),ON,OFF)
	cmake --build $(TSAN_DIR) -j $(JOBS) --target $(TSAN_TARGETS)
	cd $(TSAN_DIR) && VARTALAP_TEST_TIME_SCALE=5 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
		ctest --output-on-failure -j $(JOBS) --timeout 600 -R '$(TSAN_TESTS)'

clean:
	rm -rf build
