# Molt: the commands of the README. Each one installs missing Debian packages first
# (scripts/install-deps, idempotent), then configures and builds with CMake.
MAKEFLAGS += --no-print-directory
PREFIX ?= /usr/local
BUILD  ?= build
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps configure test test-all demo tour bench install fuzz asan clean

all: configure
	cmake --build $(BUILD) -j $(JOBS)

deps:
	@scripts/install-deps

configure: deps
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE long

# Everything, including the tests labelled `long` (the 200-run randomised campaign of issue 5).
test-all: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# kvd, a Redis-protocol server, updated live v1 -> v5 under redis-benchmark (examples/kvd).
demo: all
	examples/kvd/demo.sh $(BUILD)

# A tour of the tools on small programs: molt schema/diff/check/old-types, a live update.
tour: all
	examples/tour.sh $(BUILD)/bin/molt $(BUILD)/lib

bench: all
	bench/run.sh $(BUILD)

install: all
	cmake --install $(BUILD) --prefix $(PREFIX)

# Every test under AddressSanitizer and UndefinedBehaviorSanitizer (in build-asan): Molt's code
# instrumented, the live fixtures and kvd plain with libmolt preloaded ahead of the sanitizers.
asan: deps
	cmake --preset debug-asan
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j $(JOBS) -LE long

# libFuzzer on the DWARF reader (clang), for FUZZ_SECONDS seconds.
FUZZ_SECONDS ?= 60
fuzz: deps
	cmake --preset fuzz
	cmake --build build-fuzz -j $(JOBS) --target fuzz_schema_reader
	tests/fuzz/run-libfuzzer.sh build-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
