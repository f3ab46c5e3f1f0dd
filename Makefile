# The commands a newcomer needs. Everything builds in build/release (optimised, -Werror).
#   make run    install dependencies, build, run the firewall in the foreground (root)
#   make demo   the same, sandboxed in network namespaces with a simulated internet
#   make test   all tests: unit, fuzz (20 s each), and (as root) integration in namespaces
#   make fuzz   the fuzzing campaign: every fuzz target for FUZZ_RUNS executions, one at a time,
#               new coverage merged into tests/fuzz/corpus/ (commit it); figures in
#               build/release/fuzz-campaign/stats.txt. FUZZ_TARGETS="a b" limits it to those;
#               PW_FUZZ_MAX_SECONDS=N stops each target after N s (reported as not done).
#   make bench  the system benchmarks in namespaces
#   make deb    the Debian package build/portwarden_<version>_<arch>.deb from the release binary,
#               checked with lintian; installs nothing and starts nothing
PRESET ?= release
BUILD_DIR := build/$(PRESET)
PORTWARDEN := $(BUILD_DIR)/src/cli/portwarden
ARGS ?=
CTEST_ARGS ?=
FUZZ_RUNS ?= 10000000
FUZZ_TARGETS ?=

.PHONY: setup build run demo test unit fuzz bench deb lint format clean

setup:
	@scripts/setup.sh

build: setup
	@cmake --preset $(PRESET) >/dev/null
	@cmake --build --preset $(PRESET)

run: build
	$(PORTWARDEN) run $(ARGS)

demo: build
	scripts/demo.sh $(PORTWARDEN)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure --timeout 900 $(CTEST_ARGS)

unit: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -L unit

# Only the fuzzers are built (with clang++-19); a fuzzer that cannot be built fails the campaign.
fuzz: setup
	@cmake --preset $(PRESET) >/dev/null
	@cmake --build --preset $(PRESET) --target fuzz_targets
	tests/fuzz/campaign.sh $(BUILD_DIR)/tests/fuzz/fuzzers.txt $(BUILD_DIR)/fuzz-campaign \
		$(FUZZ_RUNS) $(FUZZ_TARGETS)

# Debian's opensnitchd is unpacked (never installed: that would start it on this host's own
# network) and measured beside portwarden; the benchmark goes on without it if it cannot be had.
bench: build
	@osn=$$(bench/extract_opensnitchd.sh build/opensnitch || true); \
	python3 bench/run_bench.py --portwarden $(PORTWARDEN) $${osn:+--opensnitchd $$osn} $(ARGS)

# Only the binary is built (not the tests). lintian prints nothing when the package is clean;
# any error or warning (W:) fails the target; overrides: packaging/debian/lintian-overrides.
deb: setup
	@cmake --preset release >/dev/null
	@cmake --build --preset release --target portwarden
	@deb=$$(packaging/build-deb.sh build/release/src/cli/portwarden build) && \
	lintian --fail-on error,warning $$deb && \
	echo "deb: $$deb"

lint: build
	run-clang-tidy-19 -quiet -p $(BUILD_DIR) 'src/.*\.cc$$'

format:
	clang-format-19 -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf build
