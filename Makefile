# tcpotel build.
#
#   bpf/*.bpf.c --clang -target bpf--> .output/bpf/*.bpf.o
#               --bpftool gen object--> .output/tcpotel_tp.bpf.o, tcpotel_compat.bpf.o
#               --bpftool gen skeleton--> .output/tcpotel_tp.skel.h, tcpotel_compat.skel.h
#   src/*.c (+ skeletons) --cc--> .output/tcpotel
#
# Two objects, each with every shared program (any bpf/*.bpf.c that is not a
# back-end's): tcpotel_tp holds the tracepoint back-end (tp.bpf.c, 6.3+,
# which uses a kfunc), tcpotel_compat the fentry and kprobe back-ends (no
# kfunc: libbpf would look for a missing one in module BTFs, which only
# CAP_SYS_ADMIN may list on kernels before 6.x). src/capture.c says more.
#
# vmlinux.h is generated from the running kernel's BTF into .output/vmlinux.h;
# set VMLINUX_H=path to use a pinned copy instead (CO-RE relocates either one
# to the kernel it runs on). Everything built lands in .output/; `make clean`
# removes it.
#
# ARCH=arm64 on another machine cross-builds everything into .output/arm64/
# (see "Cross build" below); the kernel matrix's arm64 cells run that build.
#
# Knobs: V=1 (show commands), SANITIZE=address,undefined (or thread),
#        WERROR=1 (CI), CC, CLANG, BPFTOOL, LLVM_STRIP, ARCH.
#
# Targets: all, run, test (every tier), test-unit, test-bpf, test-integration,
#          test-kernels (the kernel matrix in QEMU: tests/kernels/README.md),
#          bench, fuzz, deps, install, image (podman), fmt, check-fmt, clean.

.DELETE_ON_ERROR:
.SECONDARY:

OUTPUT     := .output
CC         ?= cc
CLANG      ?= clang
BPFTOOL    ?= bpftool
LLVM_STRIP ?= llvm-strip
PKG_CONFIG ?= pkg-config
PREFIX     ?= /usr/local
VERSION    := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
HOST_ARCH  := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/;s/ppc64le/powerpc/;s/mips.*/mips/;s/riscv64/riscv/')
ARCH       := $(HOST_ARCH)
LIBS_PC    := libbpf libelf zlib libcurl json-c yaml-0.1 libmicrohttpd
# ISA-L (gzip of export bodies) ships no pkg-config file.
LIBS_EXTRA := -lisal

# ---- cross build ----------------------------------------------------------
# ARCH=arm64 on a machine of another architecture: Debian's cross compiler
# (gcc-aarch64-linux-gnu) and the :arm64 libraries (multiarch), in an output
# folder of its own. ISA-L's -dev package cannot be installed beside the
# machine's own (it is not Multi-Arch: same), so its arm64 packages are
# unpacked into a sysroot there. vmlinux.h comes from the BTF of Debian's
# arm64 kernel of VMLINUX_SUITE (fetched and cached by tests/kernels/fetch.sh):
# the machine's own BTF describes its own architecture's structures.
# `scripts/install-deps.sh cross` installs the packages.
DEB_ARCH   := $(shell dpkg --print-architecture 2>/dev/null)
ifneq ($(ARCH),$(HOST_ARCH))
ifneq ($(ARCH),arm64)
$(error ARCH=$(ARCH): the cross build knows arm64 only)
endif
DEB_ARCH      := arm64
OUTPUT        := .output/arm64
CROSS_COMPILE ?= aarch64-linux-gnu-
CC            := $(CROSS_COMPILE)gcc
CLANG_TARGET  := --target=aarch64-linux-gnu
VMLINUX_SUITE ?= trixie
SYSROOT       := $(OUTPUT)/sysroot
CROSS_DEPS    := $(SYSROOT)/.stamp
PKG_CONFIG    := PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig pkg-config
override LDFLAGS += -L$(SYSROOT)/usr/lib/aarch64-linux-gnu
endif

ifeq ($(V),1)
Q :=
msg =
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

WARNINGS := -Wall -Wextra -W -Wformat=2 -Wformat-signedness -Wshadow \
	-Wmissing-prototypes -Wstrict-prototypes -Wwrite-strings -Wundef \
	-Wformat-security -Wpointer-arith -Wcast-qual -Wvla -Wno-unused-parameter \
	-Wmissing-declarations -Wold-style-definition -Wnull-dereference \
	-Wno-missing-field-initializers
ifeq ($(WERROR),1)
WARNINGS += -Werror
endif

CFLAGS ?= -O2 -g
override CFLAGS += -std=gnu11 $(WARNINGS) -D_GNU_SOURCE -DTCPOTEL_VERSION='"$(VERSION)"' \
	-I$(OUTPUT) -Isrc -Ibpf $(shell $(PKG_CONFIG) --cflags $(LIBS_PC) 2>/dev/null)
override LDLIBS += $(shell $(PKG_CONFIG) --libs $(LIBS_PC) 2>/dev/null) $(LIBS_EXTRA) -lpthread -lm

ifneq ($(SANITIZE),)
override CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
override LDFLAGS += -fsanitize=$(SANITIZE)
endif

BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror=undef \
	-I$(OUTPUT) -Ibpf
# Let clang find the system's asm/ headers the way libbpf-bootstrap does.
CLANG_BPF_SYS_INCLUDES ?= $(shell $(CLANG) $(CLANG_TARGET) -v -E - </dev/null 2>&1 \
	| sed -n '/<...> search starts here:/,/End of search list./{ s| \(/.*\)|-idirafter \1|p }')

# maps.bpf.c first: the linker places definitions before the externs that use them.
BPF_TP_SRCS     := bpf/tp.bpf.c
BPF_COMPAT_SRCS := bpf/fentry.bpf.c bpf/kprobe.bpf.c
BPF_SHARED_SRCS := bpf/maps.bpf.c $(filter-out bpf/maps.bpf.c $(BPF_TP_SRCS) $(BPF_COMPAT_SRCS),\
	$(wildcard bpf/*.bpf.c))
# Every source is built once per object, in its own directory: the
# tracepoint object's with -DTCPOTEL_KERNEL_6_3 -mcpu=v3 (its hooks imply 6.3+, so its
# code may use what those kernels have: bpf/socktab.bpf.h).
bpf_objs    = $(patsubst bpf/%.bpf.c,$(OUTPUT)/bpf/$(2)/%.bpf.o,$(1))
BPF_SKELS  := $(OUTPUT)/tcpotel_tp.skel.h $(OUTPUT)/tcpotel_compat.skel.h
BPF_HDRS   := $(wildcard bpf/*.h)

# Every src/*.c but main.c is a module shared by the agent and the tests.
MOD_SRCS   := $(filter-out src/main.c,$(wildcard src/*.c))
MOD_OBJS   := $(patsubst src/%.c,$(OUTPUT)/src/%.o,$(MOD_SRCS))
SRC_HDRS   := $(wildcard src/*.h)
AGENT      := $(OUTPUT)/tcpotel
SINK_BIN   := $(OUTPUT)/otlp-sink

UNIT_SRCS  := $(wildcard tests/unit/*.c)
UNIT_OBJS  := $(patsubst tests/unit/%.c,$(OUTPUT)/tests/unit/%.o,$(UNIT_SRCS))
UNIT_BIN   := $(OUTPUT)/unit_tests
BPFT_SRCS  := $(filter-out %.bpf.c,$(wildcard tests/bpf/*.c)) tests/unit/runner.c
BPFT_OBJS  := $(patsubst tests/%.c,$(OUTPUT)/tests/%.o,$(BPFT_SRCS))
BPFT_BIN   := $(OUTPUT)/bpf_tests
HELPER_SRCS := $(wildcard tests/helpers/*.c)
HELPER_BINS := $(patsubst tests/helpers/%.c,$(OUTPUT)/%,$(HELPER_SRCS))

ifeq ($(VMLINUX_H),)
VMLINUX    := $(OUTPUT)/vmlinux.h
else
VMLINUX    := $(VMLINUX_H)
endif

.PHONY: all
all: $(AGENT) $(HELPER_BINS) web

$(OUTPUT) $(OUTPUT)/bpf/tp $(OUTPUT)/bpf/compat $(OUTPUT)/src $(OUTPUT)/tests/unit $(OUTPUT)/tests/bpf:
	$(Q)mkdir -p $@

ifeq ($(VMLINUX_H),)
ifeq ($(ARCH),$(HOST_ARCH))
$(OUTPUT)/vmlinux.h: | $(OUTPUT)
	$(call msg,GEN,$@)
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@
else
$(OUTPUT)/vmlinux.h: scripts/image-btf.py | $(OUTPUT)
	$(call msg,GEN,$@ (Debian $(VMLINUX_SUITE) $(DEB_ARCH) kernel))
	$(Q)kdir=$$(TCPOTEL_KERNEL_ARCH=$(DEB_ARCH) tests/kernels/fetch.sh $(VMLINUX_SUITE)) && \
		. "$$kdir/kernel.env" && scripts/image-btf.py "$$VMLINUZ" $(OUTPUT)/vmlinux.btf
	$(Q)$(BPFTOOL) btf dump file $(OUTPUT)/vmlinux.btf format c > $@
endif
else
$(OUTPUT)/vmlinux.h: $(VMLINUX_H) | $(OUTPUT)
	$(Q)cp $< $@
endif

$(OUTPUT)/bpf/tp/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS) $(OUTPUT)/vmlinux.h | $(OUTPUT)/bpf/tp
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -mcpu=v3 -DTCPOTEL_KERNEL_6_3 $(CLANG_BPF_SYS_INCLUDES) -c $< -o $@
	$(Q)$(LLVM_STRIP) -g $@

$(OUTPUT)/bpf/compat/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS) $(OUTPUT)/vmlinux.h | $(OUTPUT)/bpf/compat
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) $(CLANG_BPF_SYS_INCLUDES) -c $< -o $@
	$(Q)$(LLVM_STRIP) -g $@

$(OUTPUT)/tcpotel_tp.bpf.o: $(call bpf_objs,$(BPF_SHARED_SRCS) $(BPF_TP_SRCS),tp)
$(OUTPUT)/tcpotel_compat.bpf.o: $(call bpf_objs,$(BPF_SHARED_SRCS) $(BPF_COMPAT_SRCS),compat)
$(OUTPUT)/tcpotel_tp.bpf.o $(OUTPUT)/tcpotel_compat.bpf.o:
	$(call msg,LINK,$@)
	$(Q)$(BPFTOOL) gen object $@ $^

$(OUTPUT)/tcpotel_%.skel.h: $(OUTPUT)/tcpotel_%.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name tcpotel_$*_bpf > $@

# capture.c is the one file that includes the skeletons.
$(OUTPUT)/src/capture.o: $(BPF_SKELS)

$(OUTPUT)/src/%.o: src/%.c $(SRC_HDRS) bpf/tcpotel.h bpf/siphash.h | $(OUTPUT)/src
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(AGENT): $(OUTPUT)/src/main.o $(MOD_OBJS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(OUTPUT)/tests/bpf/%.o: $(BPF_SKELS)
$(OUTPUT)/tests/%.o: tests/%.c $(SRC_HDRS) $(wildcard tests/unit/*.h tests/bpf/*.h) bpf/tcpotel.h
	$(Q)mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/unit -c $< -o $@

# tests/bpf/*.bpf.c: BPF programs of the bpf tier, each with its own skeleton.
$(OUTPUT)/tests/bpf/%.bpf.o: tests/bpf/%.bpf.c $(BPF_HDRS) $(OUTPUT)/vmlinux.h
	$(Q)mkdir -p $(dir $@)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) $(CLANG_BPF_SYS_INCLUDES) -c $< -o $@
	$(Q)$(LLVM_STRIP) -g $@

$(OUTPUT)/ids_test.skel.h: $(OUTPUT)/tests/bpf/ids_test.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name ids_test_bpf > $@

$(OUTPUT)/tests/bpf/test_ids.o: $(OUTPUT)/ids_test.skel.h

$(UNIT_BIN): $(UNIT_OBJS) $(MOD_OBJS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BPFT_BIN): $(BPFT_OBJS) $(MOD_OBJS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The cross build's link needs the sysroot's libraries first.
$(AGENT) $(UNIT_BIN) $(BPFT_BIN) $(SINK_BIN): | $(CROSS_DEPS)
ifneq ($(CROSS_DEPS),)
$(CROSS_DEPS): scripts/cross-sysroot.sh
	$(call msg,SYSROOT,$(SYSROOT))
	$(Q)scripts/cross-sysroot.sh $(DEB_ARCH) $(SYSROOT) libisal2 libisal-dev
endif

# Test workload programs (traffic generators), one file each.
$(OUTPUT)/%: tests/helpers/%.c | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< -o $@ -lpthread -lm

# ---- the live map's page ---------------------------------------------------
# Apache ECharts comes from the npm registry at build time, pinned by
# web/package-lock.json, installed into .output/web/node_modules (never into
# the source tree); the page files and echarts.min.js are copied to
# .output/web/, beside the agent, where it looks for them. Without npm or the
# registry the build goes on: the agent then serves its built-in copy of the
# page, which says that the map library is missing. `rm .output/web/.npm-stamp`
# (or `make clean`) to try the registry again.
NPM       ?= npm
WEB_OUT   := $(OUTPUT)/web
WEB_PAGE  := web/index.html web/app.js web/style.css

.PHONY: web
web: $(patsubst web/%,$(WEB_OUT)/%,$(WEB_PAGE)) $(WEB_OUT)/.npm-stamp

$(WEB_OUT):
	$(Q)mkdir -p $@

$(WEB_OUT)/%: web/% | $(WEB_OUT)
	$(Q)cp $< $@

$(WEB_OUT)/.npm-stamp: web/package.json web/package-lock.json | $(WEB_OUT)
	$(call msg,NPM,$(WEB_OUT)/echarts.min.js)
	$(Q)cp web/package.json web/package-lock.json $(WEB_OUT)/
	$(Q)rm -f $(WEB_OUT)/echarts.min.js
	$(Q)if command -v $(NPM) >/dev/null && (cd $(WEB_OUT) && $(NPM) ci --omit=dev --no-audit \
		--no-fund --fetch-retries=1 --loglevel=error) >$(WEB_OUT)/npm.log 2>&1; then \
		cp $(WEB_OUT)/node_modules/echarts/dist/echarts.min.js $(WEB_OUT)/echarts.min.js; \
	else \
		echo "  web: Apache ECharts not installed (npm or its registry unavailable, see" \
			"$(WEB_OUT)/npm.log): the map page will show the tables only" >&2; \
	fi
	$(Q)touch $@

# ui.c builds the page files in (.incbin) as the fallback.
$(OUTPUT)/src/ui.o: $(WEB_PAGE)

# ---- set-up, run, tests ----------------------------------------------------

.PHONY: deps
deps:
	$(Q)scripts/install-deps.sh

.PHONY: run
run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)exec $(AGENT) --config config/tcpotel.yaml $(ARGS)

# `sudo make test`: install what is missing, build, run every tier, one summary.
.PHONY: test
test: deps
	$(Q)$(MAKE) --no-print-directory all $(UNIT_BIN) $(BPFT_BIN) $(SINK_BIN)
	$(Q)$(MAKE) --no-print-directory sanitize-build fuzz-build
	$(Q)tests/run.sh all

# The unit tier again, and the agent for a LeakSanitizer run, built with
# ASan+UBSan in their own output folder.
ASAN_OUT := $(OUTPUT)/asan
.PHONY: sanitize-build
sanitize-build:
	$(Q)$(MAKE) --no-print-directory OUTPUT=$(ASAN_OUT) SANITIZE=address,undefined \
		$(ASAN_OUT)/unit_tests $(ASAN_OUT)/tcpotel

# libFuzzer targets (clang): the configuration loader and the OTLP encoder (with the
# Prometheus writer that shares its emitter).
FUZZ_OUT   := $(OUTPUT)/fuzz
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
	-DTCPOTEL_VERSION='"$(VERSION)"' -Isrc -Ibpf
.PHONY: fuzz-build fuzz
fuzz-build: $(FUZZ_OUT)/fuzz_config $(FUZZ_OUT)/fuzz_otlp
$(FUZZ_OUT)/fuzz_config: tests/fuzz/fuzz_config.c src/config.c src/cidr.c src/log.c $(SRC_HDRS)
	$(Q)mkdir -p $(FUZZ_OUT)
	$(call msg,FUZZ,$@)
	$(Q)$(CLANG) $(FUZZ_FLAGS) $(shell $(PKG_CONFIG) --cflags yaml-0.1 libbpf) \
		tests/fuzz/fuzz_config.c src/config.c src/cidr.c src/log.c \
		$(shell $(PKG_CONFIG) --libs yaml-0.1 libbpf) -o $@
FUZZ_OTLP_SRCS := src/otlp.c src/jbuf.c src/prom.c src/htable.c src/log.c
$(FUZZ_OUT)/fuzz_otlp: tests/fuzz/fuzz_otlp.c tests/unit/json_check.h $(FUZZ_OTLP_SRCS) $(SRC_HDRS)
	$(Q)mkdir -p $(FUZZ_OUT)
	$(call msg,FUZZ,$@)
	$(Q)$(CLANG) $(FUZZ_FLAGS) -Itests/unit $(shell $(PKG_CONFIG) --cflags json-c libbpf) \
		tests/fuzz/fuzz_otlp.c $(FUZZ_OTLP_SRCS) \
		$(shell $(PKG_CONFIG) --libs json-c libbpf) -lm -o $@
# FUZZ_TIME seconds per target (CI runs them for a bounded time through `make test`).
fuzz: fuzz-build
	$(Q)tests/run.sh fuzz

.PHONY: test-unit test-bpf test-integration
test-unit: $(UNIT_BIN)
	$(Q)tests/run.sh unit
test-bpf: $(BPFT_BIN)
	$(Q)tests/run.sh bpf
test-integration: all $(SINK_BIN)
	$(Q)tests/run.sh integration

# The kernel matrix: every kernel of tests/kernels/matrix.conf booted in QEMU
# (root). KERNELS="SPEC[:BACKENDS[:AUTO]] ..." runs others instead. With
# ARCH=arm64 on an x86 machine: the arm64 rows, on the cross build.
PROGSTATS := $(OUTPUT)/progstats
$(PROGSTATS): $(OUTPUT)/tests/kernels/progstats.o $(MOD_OBJS) | $(CROSS_DEPS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

.PHONY: test-kernels
test-kernels:
	$(Q)scripts/install-deps.sh kernels $(if $(CROSS_DEPS),cross)
	$(Q)$(MAKE) --no-print-directory all $(BPFT_BIN) $(PROGSTATS)
	$(Q)KERNELS="$(KERNELS)" MATRIX_PROFILE="$(MATRIX_PROFILE)" MATRIX_ARCH=$(DEB_ARCH) \
		tests/kernels/matrix.sh

# Micro-benchmarks of the user-space hot paths, linked like the unit tests.
MICRO_BIN  := $(OUTPUT)/micro

$(OUTPUT)/bench/%.o: bench/%.c $(SRC_HDRS) bpf/tcpotel.h
	$(Q)mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(MICRO_BIN): $(OUTPUT)/bench/micro.o $(MOD_OBJS) | $(CROSS_DEPS)
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Programs that do (almost) nothing on the agent's per-call hooks, for A/B runs.
HOOKS_BIN  := $(OUTPUT)/bench-hooks
$(OUTPUT)/bench/hooks.bpf.o: bench/hooks.bpf.c $(OUTPUT)/vmlinux.h
	$(Q)mkdir -p $(dir $@)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) $(CLANG_BPF_SYS_INCLUDES) -c $< -o $@
	$(Q)$(LLVM_STRIP) -g $@
$(OUTPUT)/bench_hooks.skel.h: $(OUTPUT)/bench/hooks.bpf.o
	$(call msg,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name bench_hooks_bpf > $@
$(HOOKS_BIN): bench/hooks.c $(OUTPUT)/bench_hooks.skel.h
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< -o $@ $(shell $(PKG_CONFIG) --libs libbpf libelf zlib)

# The benchmark's OTLP receiver: gunzips and counts, as cheap as a receiver can be.
$(SINK_BIN): bench/otlp_sink.c | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< -o $@ -lisal

.PHONY: bench
bench: all $(MICRO_BIN) $(SINK_BIN) $(HOOKS_BIN)
	$(Q)bench/run.sh

.PHONY: install
install: $(AGENT) web
	install -D -m 0755 $(AGENT) $(DESTDIR)$(PREFIX)/bin/tcpotel
	install -D -m 0644 config/tcpotel.yaml $(DESTDIR)/etc/tcpotel/tcpotel.yaml
	install -d $(DESTDIR)/etc/systemd/system
	sed 's|/usr/local/bin/tcpotel|$(PREFIX)/bin/tcpotel|' deploy/tcpotel.service \
		> $(DESTDIR)/etc/systemd/system/tcpotel.service
	install -d $(DESTDIR)$(PREFIX)/share/tcpotel/web
	install -m 0644 $(WEB_OUT)/index.html $(WEB_OUT)/app.js $(WEB_OUT)/style.css \
		$(DESTDIR)$(PREFIX)/share/tcpotel/web/
	[ ! -f $(WEB_OUT)/echarts.min.js ] || install -m 0644 $(WEB_OUT)/echarts.min.js \
		$(DESTDIR)$(PREFIX)/share/tcpotel/web/

# ---- the container image -------------------------------------------------------
# Containerfile, built with podman. BUILD_BASE and RUNTIME_BASE name the two
# stages' base images: by default Debian's from a registry; for a build with
# no registry, import the roots scripts/debian-rootfs.sh makes and name them
# (docs/deploy.md).
PODMAN       ?= podman
IMAGE        ?= tcpotel:$(VERSION)
BUILD_BASE   ?= docker.io/library/debian:12
RUNTIME_BASE ?= docker.io/library/debian:12-slim

.PHONY: image
image:
	$(PODMAN) build -f Containerfile -t $(IMAGE) \
		--build-arg BUILD_BASE=$(BUILD_BASE) --build-arg RUNTIME_BASE=$(RUNTIME_BASE) \
		$(if $(VMLINUX_H),--build-arg VMLINUX_H=$(VMLINUX_H)) .

.PHONY: fmt check-fmt
FMT_FILES = $(wildcard src/*.[ch] bpf/*.[ch] tests/unit/*.[ch] tests/bpf/*.[ch] tests/helpers/*.c \
	tests/kernels/*.c bench/*.c)
fmt:
	clang-format -i $(FMT_FILES)
check-fmt:
	clang-format --dry-run --Werror $(FMT_FILES)

.PHONY: clean
clean:
	$(call msg,CLEAN,$(OUTPUT))
	$(Q)rm -rf $(OUTPUT)
