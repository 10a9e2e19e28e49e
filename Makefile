# Sluice: the two commands of the README, and a few for developers.
#   make run    install what is missing, build, run the gateway with conf/sluice.yaml
#   make test   install what is missing, build with ASan+UBSan, run unit, crash and
#               integration tests (real sockets, real peers)
#   make bench  build without sanitizers and run the benchmarks
#   make soak   the power-cut and SIGKILL tests with many more faults than make test
#   make reference  regenerate docs/config-reference.md from the code (CI checks it)
#   make fuzz   run each libFuzzer target for FUZZ_SECONDS (default 300)
#   make docker-smoke  build the image with a private Docker engine and run it
#               (docker/smoke.sh; needs root)
#   make format / make lint

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CONFIG ?= conf/sluice.yaml

.PHONY: soak reference run test deps build build-asan build-rel unit integration bench fuzz format lint clean \
        docker-smoke

deps:
	@bash docker/install-deps.sh

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_SANITIZE=OFF >/dev/null
	@cmake --build build -j$(JOBS) --target sluice

build-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j$(JOBS)

build-rel: deps
	@cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release -DSLUICE_SANITIZE=OFF >/dev/null
	@cmake --build build-rel -j$(JOBS)

run: build
	./build/sluice run -c $(CONFIG)

unit: build-asan
	cd build-asan && ctest --output-on-failure -j$(JOBS)

integration: build-asan
	python3 tests/integration/run.py --sluice build-asan/sluice

test: build-asan
	@bash tests/run-all.sh build-asan

reference: build
	./build/sluice config reference > docs/config-reference.md

bench: build-rel
	@bash tests/bench/run.sh build-rel

# the custody tests with more faults than make test: SOAK_LOG_CUTS power cuts
# of the log, SOAK_GATEWAY_CUTS of the gateway under load, strict directories
SOAK_LOG_CUTS ?= 500
SOAK_GATEWAY_CUTS ?= 30
soak: build-asan
	./build-asan/log_powercut $(SOAK_LOG_CUTS) $$(date +%s) strict
	./build-asan/log_crash 200
	SL_POWERCUT_GATEWAY_CUTS=$(SOAK_GATEWAY_CUTS) python3 tests/integration/run.py \
	  --sluice build-asan/sluice -k powercut -k sigkill

# every libFuzzer target of tests/fuzz for FUZZ_SECONDS each (CI runs 60)
FUZZ_SECONDS ?= 300
fuzz: deps
	@bash tests/fuzz/run.sh $(FUZZ_SECONDS)

docker-smoke:
	@bash docker/smoke.sh

format:
	clang-format -i lib/*.[ch] core/*.[ch] connectors/*.[ch] transforms/*.[ch] tests/unit/*.c \
	  tests/crash/*.c tests/bench/*.c tests/peers/*.c 2>/dev/null || true

lint:
	cppcheck --quiet --enable=warning,style,performance --inline-suppr --error-exitcode=1 \
	  -D_GNU_SOURCE -Ilib -Icore -Iconnectors -Itransforms --suppress=missingIncludeSystem \
	  lib core connectors transforms

clean:
	rm -rf build build-asan build-rel
