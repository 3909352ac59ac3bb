# KoruDelta build. `make run` and `make test` install missing Debian packages first
# (scripts/deps.sh), then build. Targets:
#   all        library (static + shared), kdelta, korudelta.pc
#   run        guided demo on the default database, then `kdelta serve` on it (port 8080)
#   test       every test (unit, black-box, crash loop); ends with "N passed, N failed"
#   asan       the test suite under ASan+UBSan (separate build tree build-asan/)
#   tsan       the threaded tests (db, crash, query, subscriptions) and the server's stress
#              tests under ThreadSanitizer (build-tsan/)
#   valgrind   unit tests under valgrind
#   bench      benchmarks against SQLite (and hnswlib for vector search); writes
#              build/bench.json
#   test-crash long crash runs: kill -9 loop (200 rounds), kill -9 of the server under HTTP
#              writers (100 rounds), of kdelta import/batch/set (60 rounds each), 50,000
#              power cuts per model
#   fuzz       every libFuzzer target (tests/fuzz/) for FUZZ_SECONDS each (default 60), with
#              clang, ASan and UBSan (build-fuzz/); `make test` replays their seed corpus
#   install    PREFIX=/usr/local (DESTDIR honoured)

BUILD   ?= build
CC      ?= cc
PREFIX  ?= /usr/local
OPT     ?= -O2 -g
SANFLAGS ?=
CFLAGS_BASE = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC $(OPT) $(SANFLAGS) \
              -Iinclude -Isrc -I$(BUILD)/blake3 $(shell pkg-config --cflags libsodium 2>/dev/null)
LDLIBS  = $(shell pkg-config --libs libsodium 2>/dev/null) -lpthread -lm

BLAKE3_DIR := $(firstword $(wildcard /usr/share/cargo/registry/blake3-*/c))
BLAKE3_C   := blake3.c blake3_dispatch.c blake3_portable.c
BLAKE3_S   := blake3_sse2_x86-64_unix.S blake3_sse41_x86-64_unix.S \
              blake3_avx2_x86-64_unix.S blake3_avx512_x86-64_unix.S
BLAKE3_OBJ := $(addprefix $(BUILD)/blake3/,$(BLAKE3_C:.c=.o) $(BLAKE3_S:.S=.o))

LIB_SRC := $(sort $(wildcard src/os/*.c src/base/*.c src/json/*.c src/crypto/*.c \
                             src/log/*.c src/store/*.c src/db/*.c \
                             src/query/*.c src/views/*.c src/sub/*.c src/wire/*.c \
                             src/vector/*.c))
LIB_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(BLAKE3_OBJ)
CLI_SRC := $(sort $(wildcard src/cli/*.c src/server/*.c))
CLI_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(CLI_SRC))
# The server (libmicrohttpd) and the remote CLI (libcurl) live in kdelta, not in the
# library: an application embedding libkorudelta does not link HTTP code.
NET_CFLAGS := $(shell pkg-config --cflags libmicrohttpd libcurl 2>/dev/null)
NET_LIBS   := $(shell pkg-config --libs libmicrohttpd libcurl 2>/dev/null)
HDRS    := $(wildcard include/*.h src/*/*.h)

UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all deps deps-test deps-bench run test asan tsan valgrind bench test-crash install clean examples fuzz

all: $(BUILD)/libkorudelta.a $(BUILD)/libkorudelta.so $(BUILD)/kdelta $(BUILD)/korudelta.pc

deps:
	@scripts/deps.sh build
deps-test:
	@scripts/deps.sh test
deps-bench:
	@scripts/deps.sh bench

# BLAKE3's official C sources come from Debian's librust-blake3-dev at build time.
$(BUILD)/blake3/.stamp:
	@if [ -z "$(BLAKE3_DIR)" ]; then echo "BLAKE3 sources missing: run scripts/deps.sh" >&2; exit 1; fi
	@mkdir -p $(BUILD)/blake3
	cp $(BLAKE3_DIR)/*.c $(BLAKE3_DIR)/*.h $(BLAKE3_DIR)/*.S $(BUILD)/blake3/
	@touch $@
$(BUILD)/blake3/%.o: $(BUILD)/blake3/.stamp
	$(CC) -O3 -fPIC $(SANFLAGS) -c $(BUILD)/blake3/$(basename $(notdir $@)).$(if $(filter %_unix.o,$@),S,c) -o $@

$(BUILD)/obj/%.o: src/%.c $(HDRS) $(BUILD)/blake3/.stamp
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -c $< -o $@

# The CLI and the server see only the public header (and their own): they are clients of
# the library.
$(BUILD)/obj/cli/%.o: src/cli/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Isrc -I$(BUILD)/blake3,$(CFLAGS_BASE)) $(NET_CFLAGS) -c $< -o $@
$(BUILD)/obj/server/%.o: src/server/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Isrc -I$(BUILD)/blake3,$(CFLAGS_BASE)) $(NET_CFLAGS) -c $< -o $@

$(BUILD)/libkorudelta.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(BUILD)/libkorudelta.so: $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(SANFLAGS) $(LDLIBS)
$(BUILD)/kdelta: $(CLI_OBJ) $(BUILD)/libkorudelta.a
	$(CC) $(SANFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libkorudelta.a $(NET_LIBS) $(LDLIBS)

# The .pc file names PREFIX, so `make install PREFIX=...` writes it afresh.
PC_TEXT = 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: korudelta\nDescription: time-aware embedded JSON database\nVersion: 0.1.0\nRequires.private: libsodium\nLibs: -L$${libdir} -lkorudelta\nLibs.private: -lpthread -lm\nCflags: -I$${includedir}\n'
$(BUILD)/korudelta.pc: Makefile
	@mkdir -p $(BUILD)
	@printf $(PC_TEXT) '$(PREFIX)' > $@

# ---- tests ------------------------------------------------------------------------
$(BUILD)/tests/test_json: LDEXTRA = $(shell pkg-config --libs jansson 2>/dev/null)
$(BUILD)/tests/%: tests/unit/%.c tests/unit/t.h $(BUILD)/libkorudelta.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -Wno-unused-function -o $@ $< $(BUILD)/libkorudelta.a $(LDEXTRA) $(LDLIBS)

$(BUILD)/examples/%: examples/%.c $(BUILD)/libkorudelta.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -Iinclude -o $@ $< $(BUILD)/libkorudelta.a $(LDLIBS)
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
examples: $(EXAMPLES)

test: deps-test
	@$(MAKE) --no-print-directory all $(UNIT_BIN) examples
	@BUILD=$(BUILD) tests/run.sh

test-crash: deps-test
	@$(MAKE) --no-print-directory all $(BUILD)/tests/test_crash $(BUILD)/tests/test_fault
	@KD_CRASH_ROUNDS=200 $(BUILD)/tests/test_crash
	@KD_HTTP_CRASH_ROUNDS=100 KDELTA=$(CURDIR)/$(BUILD)/kdelta python3 tests/server/test_http_crash.py
	@KD_CLI_CRASH_ROUNDS=60 KDELTA=$(CURDIR)/$(BUILD)/kdelta bash tests/cli/test_cli_crash.sh
	@KD_FAULT_LONG=1 $(BUILD)/tests/test_fault

# ---- fuzzing (tests/fuzz/; docs/testing.md, "Fuzzing") --------------------------------
# Each target tests/fuzz/fuzz_<t>.c is built twice: as a corpus replay program with the
# normal compiler ($(BUILD)/tests/test_fuzz_<t>, run by `make test`, `make asan` and
# `make valgrind` like every unit test), and as a libFuzzer binary with clang under
# ASan+UBSan by `make fuzz` (build-fuzz/fuzz/fuzz_<t>), which runs each for FUZZ_SECONDS.
FUZZ_TARGETS := json filter time record dbfile http
FUZZ_SECONDS ?= 60
FUZZ_REPLAY  := $(patsubst %,$(BUILD)/tests/test_fuzz_%,$(FUZZ_TARGETS))
UNIT_BIN     += $(FUZZ_REPLAY)
FUZZ_COMMON  := tests/fuzz/fuzz_util.c
# The http target drives the server's route handlers: it links the server's objects.
SERVER_OBJ   := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(sort $(wildcard src/server/*.c)))
$(BUILD)/tests/test_fuzz_http $(BUILD)/fuzz/fuzz_http: $(SERVER_OBJ)
$(BUILD)/tests/test_fuzz_http $(BUILD)/fuzz/fuzz_http: FUZZ_LINK = $(SERVER_OBJ) $(NET_LIBS)
$(BUILD)/tests/test_fuzz_http $(BUILD)/fuzz/fuzz_http: FUZZ_CFLAGS = $(NET_CFLAGS)

$(FUZZ_REPLAY): $(BUILD)/tests/test_fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(FUZZ_COMMON) \
	   tests/fuzz/fuzz.h $(BUILD)/libkorudelta.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(FUZZ_CFLAGS) -DFUZZ_TARGET='"$*"' -o $@ tests/fuzz/fuzz_$*.c \
	   tests/fuzz/replay.c $(FUZZ_COMMON) $(FUZZ_LINK) $(BUILD)/libkorudelta.a $(LDLIBS)

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_COMMON) tests/fuzz/fuzz.h $(BUILD)/libkorudelta.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ tests/fuzz/fuzz_$*.c $(FUZZ_COMMON) \
	   $(FUZZ_LINK) $(BUILD)/libkorudelta.a $(LDLIBS)

fuzz:
	@scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang OPT="-O1 -g -fno-omit-frame-pointer" \
	   SANFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all" \
	   $(patsubst %,build-fuzz/fuzz/fuzz_%,$(FUZZ_TARGETS))
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run_fuzz.sh build-fuzz $(FUZZ_TARGETS)

asan:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	   SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all" all \
	   $(patsubst $(BUILD)/%,build-asan/%,$(UNIT_BIN)) \
	   $(patsubst $(BUILD)/%,build-asan/%,$(EXAMPLES))
	@ASAN_OPTIONS=detect_leaks=1 KD_CC_FLAGS="-fsanitize=address,undefined" BUILD=build-asan tests/run.sh

tsan:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory BUILD=build-tsan OPT="-O1 -g" SANFLAGS="-fsanitize=thread" \
	   build-tsan/libkorudelta.a build-tsan/tests/test_db build-tsan/tests/test_crash build-tsan/tests/test_query build-tsan/tests/test_sub \
	   build-tsan/tests/test_vector build-tsan/tests/test_backup
	@rm -rf build-tsan/tests/run && mkdir -p build-tsan/tests/run && \
	   cp build-tsan/tests/test_db build-tsan/tests/test_crash build-tsan/tests/test_query build-tsan/tests/test_sub \
	      build-tsan/tests/test_vector build-tsan/tests/test_backup build-tsan/tests/run/
	@BUILD=build-tsan/tests/run KD_UNIT_ONLY=1 KD_VEC_N=2500 TSAN_OPTIONS=halt_on_error=1 tests/run.sh
	@# The server under ThreadSanitizer, through the stress scenarios (smaller: TSan is slow).
	@$(MAKE) --no-print-directory BUILD=build-tsan OPT="-O1 -g" SANFLAGS="-fsanitize=thread" build-tsan/kdelta
	@KDELTA=$(CURDIR)/build-tsan/kdelta KD_STRESS_WRITES=2000 KD_STRESS_SUBS=10 \
	   TSAN_OPTIONS=halt_on_error=1 python3 tests/server/test_http_stress.py

valgrind: deps-test
	@$(MAKE) --no-print-directory all $(UNIT_BIN)
	@BUILD=$(BUILD) KD_VALGRIND=1 tests/run.sh

run: deps
	@$(MAKE) --no-print-directory all
	@scripts/serve.sh $(BUILD)/kdelta

bench: deps-bench
	@$(MAKE) --no-print-directory all $(BUILD)/bench $(BUILD)/bench_http
	@BUILD=$(BUILD) bench/run.sh
$(BUILD)/bench: bench/bench.c bench/bench_query.c bench/bench_vector.c bench/bench_common.c \
	   bench/bench.h bench/hnswlib_shim.h $(BUILD)/obj/bench/hnswlib_shim.o $(BUILD)/libkorudelta.a
	$(CC) $(CFLAGS_BASE) -O2 -o $@ bench/bench.c bench/bench_query.c bench/bench_vector.c \
	   bench/bench_common.c $(BUILD)/obj/bench/hnswlib_shim.o $(BUILD)/libkorudelta.a \
	   -lsqlite3 -lstdc++ $(LDLIBS)
# The vector figures' baseline: hnswlib (header-only C++, Debian's libhnswlib-dev) behind a
# small C shim, built with g++ and linked into build/bench only. hnswlib chooses its SIMD
# distance kernels at compile time and the library chooses its own at run time, so the
# shim is built for this CPU (HNSWLIB_ARCH) to give the baseline the same kernels.
BENCH_CXX ?= g++
HNSWLIB_ARCH ?= -march=native
HNSWLIB_VERSION = $(shell dpkg-query -W -f='$${Version}' libhnswlib-dev 2>/dev/null)
$(BUILD)/obj/bench/hnswlib_shim.o: bench/hnswlib_shim.cpp bench/hnswlib_shim.h Makefile
	@mkdir -p $(dir $@)
	$(BENCH_CXX) -O2 -std=c++11 $(HNSWLIB_ARCH) -Wall -Wextra -Werror $(SANFLAGS) \
	   -DHNSWLIB_DEB_VERSION='"$(HNSWLIB_VERSION)"' -c $< -o $@
# The HTTP figures: a client of kdelta serve, nginx and wrk; it links no KoruDelta code.
$(BUILD)/bench_http: bench/bench_http.c bench/bench_proc.c bench/bench_common.c \
	   bench/bench_proc.h bench/bench.h
	$(CC) $(CFLAGS_BASE) -O2 -o $@ bench/bench_http.c bench/bench_proc.c bench/bench_common.c \
	   -lsqlite3 -lpthread -lm

install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/korudelta.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libkorudelta.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libkorudelta.so $(DESTDIR)$(PREFIX)/lib/
	printf $(PC_TEXT) '$(PREFIX)' > $(DESTDIR)$(PREFIX)/lib/pkgconfig/korudelta.pc
	install -m 755 $(BUILD)/kdelta $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf build build-asan build-tsan build-fuzz
