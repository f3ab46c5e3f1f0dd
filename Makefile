# The commands a newcomer needs. Everything builds in build/release (optimised, -Werror).
#   make run    install dependencies, build, run the firewall in the foreground (root)
#   make demo   the same, sandboxed in network namespaces with a simulated internet
#   make test   all tests: unit, fuzz, and (as root) integration in namespaces
#   make bench  the system benchmarks in namespaces
PRESET ?= release
BUILD_DIR := build/$(PRESET)
PORTWARDEN := $(BUILD_DIR)/src/cli/portwarden
ARGS ?=

.PHONY: setup build run demo test unit bench lint format clean

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
	ctest --test-dir $(BUILD_DIR) --output-on-failure --timeout 900

unit: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -L unit

# Debian's opensnitchd is unpacked (never installed: that would start it on this host's own
# network) and measured beside portwarden; the benchmark goes on without it if it cannot be had.
bench: build
	@osn=$$(bench/extract_opensnitchd.sh build/opensnitch || true); \
	python3 bench/run_bench.py --portwarden $(PORTWARDEN) $${osn:+--opensnitchd $$osn} $(ARGS)

lint: build
	run-clang-tidy-19 -quiet -p $(BUILD_DIR) 'src/.*\.cc$$'

format:
	clang-format-19 -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf build
