# Sluice: the two commands of the README, and a few for developers.
#   make run    install what is missing, build, run the gateway with conf/sluice.yaml
#   make test   install what is missing, build with ASan+UBSan, run unit, crash and
#               integration tests (real sockets, real peers)
#   make bench  build without sanitizers and run the benchmarks
#   make docker-smoke  build the image with a private Docker engine and run it
#               (docker/smoke.sh; needs root)
#   make format / make lint

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CONFIG ?= conf/sluice.yaml

.PHONY: run test deps build build-asan build-rel unit integration bench format lint clean \
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

bench: build-rel
	@bash tests/bench/run.sh build-rel

docker-smoke:
	@bash docker/smoke.sh

format:
	clang-format -i core/*.[ch] connectors/*.[ch] transforms/*.[ch] tests/unit/*.c \
	  tests/crash/*.c tests/bench/*.c tests/peers/*.c 2>/dev/null || true

lint:
	cppcheck --quiet --enable=warning,style,performance --inline-suppr --error-exitcode=1 \
	  -D_GNU_SOURCE -Icore -Iconnectors -Itransforms --suppress=missingIncludeSystem \
	  core connectors transforms

clean:
	rm -rf build build-asan build-rel
