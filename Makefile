# flowc: the flow language compiler and its runtime, libflowrt.
#
#   make            build/flowc and build/libflowrt.a
#   make demo       build, compile examples/crm_hygiene.flow, run it offline (--mock)
#   make test       every test, also under ASan/UBSan; ends with "N passed, N failed"
#   make fuzz       the long fuzz campaigns (make test replays their corpora only)
#   make bench      the figures in bench/
#   make graphs     doc/crm_hygiene.svg, the picture of an example (needs graphviz)
#   make install PREFIX=/usr/local   (DESTDIR too): flowc, the runtime, the
#                   stdlib, a man page per command, the reference and the
#                   diagnostics' codes, editors/, the GitHub problem matcher
#
# Both demo and test first install the Debian packages they need (make deps).
# CC, CFLAGS, CPPFLAGS, LDFLAGS and AR are honoured; `make -j` is safe.

PREFIX   ?= /usr/local
CC       ?= cc
AR       ?= ar
BUILD    ?= build
WARN     := -Wall -Wextra -Wshadow -Wundef -Wmissing-prototypes -Wstrict-prototypes \
            -Wno-unused-parameter
CFLAGS   ?= -O2 -g
SAN      ?=
ALL_CFLAGS = -std=gnu11 $(CPPFLAGS) $(CFLAGS) $(SAN) $(WARN) -D_GNU_SOURCE -pthread
LDLIBS   := -ljansson -lcsv -lsqlite3 -lpthread -lm
VERSION  := $(shell sed -n 's/^\#define FLOWRT_VERSION "\(.*\)"/\1/p' runtime/flowrt.h)

COMPILER_SRC := $(sort $(wildcard compiler/*.c))
RUNTIME_SRC  := $(sort $(wildcard runtime/*.c))
COMPILER_OBJ := $(COMPILER_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/flow.tab.o $(BUILD)/gen/lex.yy.o
RUNTIME_OBJ  := $(RUNTIME_SRC:%.c=$(BUILD)/%.o)
TOOLS        := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(wildcard tests/tools/*.c))

# Debian packages the build and the tests need, and a header or binary that
# shows each is there (chromium: tests/sh/report.sh renders a run report in it).
DEB_PKGS := gcc make flex bison pkg-config libjansson-dev libcurl4-openssl-dev \
            libsqlite3-dev sqlite3 clang libcsv-dev libhiredis-dev redis-server git \
            pre-commit chromium
BENCH_PKGS := time wrk
DOC_PKGS := graphviz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps demo test test-quick fuzz bench install clean asan graphs
all: $(BUILD)/flowc $(BUILD)/libflowrt.a $(TOOLS)

deps:
	@missing=""; \
	for p in $(DEB_PKGS) $(EXTRA_PKGS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BUILD)/gen/flow.tab.c $(BUILD)/gen/flow.tab.h &: grammar/flow.y
	@mkdir -p $(BUILD)/gen
	bison -Wall -Werror --defines=$(BUILD)/gen/flow.tab.h -o $(BUILD)/gen/flow.tab.c $<

$(BUILD)/gen/lex.yy.c $(BUILD)/gen/lex.yy.h &: grammar/flow.l
	@mkdir -p $(BUILD)/gen
	flex --header-file=$(BUILD)/gen/lex.yy.h -o $(BUILD)/gen/lex.yy.c $<

# The generated parser and lexer are compiled without the prototype warnings
# their skeletons trip.
$(BUILD)/gen/%.o: $(BUILD)/gen/%.c $(BUILD)/gen/flow.tab.h $(BUILD)/gen/lex.yy.h compiler/flowc.h
	$(CC) -std=gnu11 $(CPPFLAGS) $(CFLAGS) $(SAN) -Wall -Wno-unused-function -Wno-sign-compare \
	  -D_GNU_SOURCE -Icompiler -Igrammar -I$(BUILD)/gen -c -o $@ $<

$(BUILD)/compiler/%.o: compiler/%.c compiler/flowc.h $(BUILD)/gen/flow.tab.h $(BUILD)/gen/lex.yy.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Icompiler -Igrammar -I$(BUILD)/gen -c -o $@ $<

# check --data reads data files with the runtime's own readers; flow test
# checks fixtures with its validator.
$(BUILD)/compiler/datacheck.o $(BUILD)/compiler/flowtest.o: $(BUILD)/compiler/%.o: compiler/%.c compiler/flowc.h runtime/fr_data.h \
    runtime/flowrt.h $(BUILD)/gen/flow.tab.h $(BUILD)/gen/lex.yy.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Icompiler -Igrammar -Iruntime -I$(BUILD)/gen -c -o $@ $<

$(BUILD)/runtime/%.o: runtime/%.c runtime/flowrt.h $(wildcard runtime/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fPIC -Iruntime -c -o $@ $<

$(BUILD)/flowc: $(COMPILER_OBJ) $(BUILD)/libflowrt.a
	$(CC) $(CFLAGS) $(SAN) $(LDFLAGS) -o $@ $^ -ljansson -lcsv -lsqlite3 -lm

$(BUILD)/libflowrt.a: $(RUNTIME_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

# Test tools (the fake LLM server, fuzz drivers, runtime self-tests) link
# against the runtime.
$(BUILD)/tools/%: tests/tools/%.c $(wildcard tests/tools/*.h) $(BUILD)/libflowrt.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iruntime $(LDFLAGS) -o $@ $< $(BUILD)/libflowrt.a $(LDLIBS)

# The front end's fuzz harness: the compiler's objects but the driver and
# the back end (tests/sh/fuzz_frontend.sh runs it, make fuzz at length).
FRONTEND_OBJ := $(filter-out $(addprefix $(BUILD)/compiler/,main.o build.o cg.o estimate_cmd.o datacheck.o flowtest.o lsp.o), \
                  $(COMPILER_OBJ))
$(BUILD)/tools/fuzz_frontend: tests/fuzz/fuzz_frontend.c $(FRONTEND_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Icompiler -Igrammar -I$(BUILD)/gen $(LDFLAGS) -o $@ $^ -lm

# The whole compiler's fuzz harness: every object but the driver, linked
# as flowc is (jansson also reads back the JSON Schemas) (tests/sh/fuzz_pipeline.sh runs it,
# make fuzz at length through tests/fuzz/campaign.sh).
PIPELINE_OBJ := $(filter-out $(BUILD)/compiler/main.o,$(COMPILER_OBJ))
$(BUILD)/tools/fuzz_pipeline: tests/fuzz/fuzz_pipeline.c $(PIPELINE_OBJ) $(BUILD)/libflowrt.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Icompiler -Igrammar -I$(BUILD)/gen $(LDFLAGS) -o $@ $^ \
	  -ljansson -lcsv -lsqlite3 -lpthread -lm

# The same compiler and runtime under AddressSanitizer and UBSan, for the tests.
asan:
	$(MAKE) --no-print-directory BUILD=build/asan CFLAGS="-O1 -g -fno-omit-frame-pointer" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  build/asan/flowc build/asan/libflowrt.a build/asan/tools/rt_values build/asan/tools/rt_exec \
	  build/asan/tools/rt_http build/asan/tools/fakeserver build/asan/tools/fuzz_runtime \
	  build/asan/tools/fakecrm \
	  build/asan/tools/rt_journal build/asan/tools/rt_limit build/asan/tools/rt_cost \
	  build/asan/tools/fuzz_frontend build/asan/tools/fuzz_pipeline build/asan/tools/rt_sched

demo: deps all
	@sh tests/demo.sh

# Without -j on the command line the two trees build in parallel anyway.
NPROC := $(shell getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
PAR   := $(if $(findstring j,$(firstword $(MAKEFLAGS))),,-j$(NPROC))

test: deps
	@$(MAKE) --no-print-directory $(PAR) all asan
	@sh tests/run

# The long campaigns: the front end on 200,000 mutants, the runtime's
# parsers on 200,000 (make test runs 2,000 of each), the whole compiler on
# 100,000 with their C compiled (make test runs 1,000).
fuzz: deps
	@$(MAKE) --no-print-directory $(PAR) all asan
	@mkdir -p build/fuzz
	@cd build/fuzz && TOP=$(CURDIR) FLOWC=$(CURDIR)/build/asan/flowc TESTTMP=$(CURDIR)/build/fuzz \
	  FUZZ_ITERATIONS=$${FUZZ_ITERATIONS:-200000} sh $(CURDIR)/tests/sh/fuzz_frontend.sh
	@cd build/fuzz && TOP=$(CURDIR) FLOWC=$(CURDIR)/build/asan/flowc \
	  FUZZ_RUNTIME_ARGS="$${FUZZ_RUNTIME_ARGS:--n 200000}" sh $(CURDIR)/tests/sh/fuzz_runtime.sh
	@TOP=$(CURDIR) sh tests/fuzz/campaign.sh

test-quick: all
	@FLOWC_NO_ASAN=1 sh tests/run

bench: all
	@$(MAKE) --no-print-directory deps EXTRA_PKGS="$(BENCH_PKGS)"
	@sh bench/run

# The picture of examples/crm_hygiene.flow in the README and the reference.
graphs: all
	@$(MAKE) --no-print-directory deps EXTRA_PKGS="$(DOC_PKGS)"
	$(BUILD)/flowc graph examples/crm_hygiene.flow >doc/crm_hygiene.dot
	dot -Tsvg doc/crm_hygiene.dot -o doc/crm_hygiene.svg

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/share/flowc/stdlib $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BUILD)/flowc $(DESTDIR)$(PREFIX)/bin/flowc
	install -m 644 $(BUILD)/libflowrt.a $(DESTDIR)$(PREFIX)/lib/libflowrt.a
	install -m 644 runtime/flowrt.h $(DESTDIR)$(PREFIX)/include/flowrt.h
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' runtime/flowrt.pc.in \
	  >$(DESTDIR)$(PREFIX)/lib/pkgconfig/flowrt.pc
	install -m 644 stdlib/*.flow $(DESTDIR)$(PREFIX)/share/flowc/stdlib/
	install -m 644 doc/flowc.1 doc/flowc-*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -d $(DESTDIR)$(PREFIX)/share/doc/flowc
	install -m 644 doc/language.md doc/diagnostics.md doc/deploy.md doc/crm_hygiene.svg \
	  $(DESTDIR)$(PREFIX)/share/doc/flowc/
	install -m 644 .github/flowc-problem-matcher.json $(DESTDIR)$(PREFIX)/share/flowc/
	for d in $$(cd editors && find . -type d); do \
	  install -d $(DESTDIR)$(PREFIX)/share/flowc/editors/$$d || exit 1; done
	for f in $$(cd editors && find . -type f); do \
	  install -m 644 editors/$$f $(DESTDIR)$(PREFIX)/share/flowc/editors/$$f || exit 1; done

clean:
	rm -rf $(BUILD)
