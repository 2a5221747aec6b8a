# ngx_eas — build, test and demo.  See README.md.

NGINX_SRC    ?= /usr/share/nginx/src
PYTHON       ?= /usr/bin/python3
CC           ?= cc
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 300
SMOKE_SECONDS ?= 15
PYTEST_ARGS  ?=

MODULE      = build/ngx_http_eas_module.so
PROTO_SRCS  = $(wildcard ngx_eas_module/proto/*.c)
PROTO_HDRS  = $(wildcard ngx_eas_module/proto/*.h)
TEST_HDRS   = $(wildcard tests/common/*.h)
GLUE_FILES  = $(wildcard ngx_eas_module/*.c ngx_eas_module/*.h)
CONSOLE     = $(wildcard ngx_eas_module/console/*)
UNIT_TESTS  = $(patsubst tests/unit/%.c,build/%,$(wildcard tests/unit/test_*.c))
FUZZERS     = $(patsubst tests/fuzz/fuzz_%.c,build/fuzz_%,$(wildcard tests/fuzz/fuzz_*.c))

SANITIZE    = -fsanitize=address,undefined -fno-sanitize-recover=all
UNIT_CFLAGS = -std=c99 -Wall -Wextra -Werror -g -O1 $(SANITIZE) \
              -I ngx_eas_module/proto

.PHONY: all deps test test-asan unit integration fuzz fuzz-smoke lint demo \
        demo-stop clean deb

all: $(MODULE)

$(MODULE): config $(PROTO_SRCS) $(PROTO_HDRS) $(GLUE_FILES) $(CONSOLE) \
           tools/build-module.sh tools/console-embed.sh
	tools/build-module.sh "$(NGINX_SRC)"

deps:
	tools/install-deps.sh

# the one command: everything a change must pass
test: deps
	$(MAKE) all
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) fuzz-smoke
	$(MAKE) integration

build/test_%: tests/unit/test_%.c $(PROTO_SRCS) $(PROTO_HDRS) $(TEST_HDRS)
	@mkdir -p build
	$(CC) $(UNIT_CFLAGS) $< $(PROTO_SRCS) -o $@

unit: $(UNIT_TESTS)
	@for t in $(UNIT_TESTS); do echo "== $$t"; $$t || exit 1; done

build/fuzz_%: tests/fuzz/fuzz_%.c $(PROTO_SRCS) $(PROTO_HDRS) $(TEST_HDRS)
	@mkdir -p build
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined \
	    -I ngx_eas_module/proto $< $(PROTO_SRCS) -o $@

# replays the seed corpus, then explores for a bounded time; new inputs
# go to build/, never into the committed seeds
fuzz-smoke: $(FUZZERS)
	@for f in $(FUZZERS); do \
	    name=$${f#build/fuzz_eas_}; \
	    mkdir -p build/corpus/$$name; \
	    echo "== $$f ($(SMOKE_SECONDS) s)"; \
	    $$f -max_total_time=$(SMOKE_SECONDS) -print_final_stats=1 \
	        -artifact_prefix=build/ \
	        -dict=tests/fuzz/$$name.dict \
	        build/corpus/$$name tests/fuzz/corpus/$$name || exit 1; \
	done

fuzz:
	$(MAKE) fuzz-smoke SMOKE_SECONDS=$(FUZZ_SECONDS)

integration: $(MODULE)
	$(PYTHON) -m pytest -q tests/integration tests/adversarial $(PYTEST_ARGS)

# the integration suite against Debian's nginx and the module, both built
# with AddressSanitizer from the nginx source package; every dynamic module
# repeats ngx_module_names, hence no ODR check; nginx frees its pools at
# exit by ending the process, hence no leak check (the pools are checked
# with NGX_DEBUG_PALLOC instead)
ASAN_TREE = $(CURDIR)/build/asan/nginx-$(shell dpkg-query -W -f='$${Version}' nginx 2>/dev/null | sed 's/-.*//')

test-asan: deps
	tools/asan-nginx.sh
	ASAN_OPTIONS=detect_leaks=0:detect_odr_violation=0 \
	NGINX_BIN=$(ASAN_TREE)/objs/nginx \
	EAS_MODULE=$(ASAN_TREE)/objs/ngx_http_eas_module.so \
	    $(PYTHON) -m pytest -q tests/integration tests/adversarial $(PYTEST_ARGS)

lint:
	tools/lint.sh

# the Debian package libnginx-mod-http-eas, built with dh_nginx from a
# copy of the tree in build/deb/src; the .deb lands in build/deb/ and is
# checked with lintian
deb: deps
	tools/build-deb.sh

# the demo installs only what it needs (tools/install-deps.sh demo)
demo:
	tools/install-deps.sh demo
	$(MAKE) all
	tools/demo.sh start

demo-stop:
	tools/demo.sh stop

clean:
	rm -rf build
