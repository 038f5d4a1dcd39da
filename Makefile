# jkbridged — plain GNU make.
#
#   make            build the tools (build/jkbms)
#   make check      unit tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      decoder benchmark (a measurement, not a test)
#   make fuzz       libFuzzer over jk_stream + jk_decode (clang); FUZZ_SECONDS=60
#   make demo       the daemon on three simulated BLE packs, CAN frames on stdout
#   make decode-demo  decode a real capture from ../shared/vectors
#   make install    DESTDIR, PREFIX
#   make deb        build/jkbridged_<version>_<arch>.deb (scripts/make-deb)
#   make vm-check   CAN + package tests in a Debian VM (tests/vm/run.sh, root)
#
# CFLAGS/LDFLAGS from the environment (Debian's hardening flags) are kept:
# the project's own flags are appended, never assigned over them.

VERSION ?= 0.1.0
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
CC ?= cc
PKG_CONFIG ?= pkg-config
CLANG ?= clang
JKB_VECTORS ?= ../shared/vectors
FUZZ_SECONDS ?= 60

CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS += -Wno-unused-parameter
CPPFLAGS += -Iinclude -MMD -MP -DJKB_VERSION=\"$(VERSION)\"

# Libraries of the pure core: JSON and configuration only (no libsystemd,
# libmosquitto or BlueZ: an I/O call sneaking into the core breaks the tests'
# link).  The daemon's adapters add theirs.
CORE_PKGS = jansson libconfig
DAEMON_PKGS = libsystemd libmosquitto
DAEMON_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(DAEMON_PKGS))
DAEMON_LIBS = $(shell $(PKG_CONFIG) --libs $(DAEMON_PKGS))
CORE_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(CORE_PKGS))
CORE_LIBS = $(shell $(PKG_CONFIG) --libs $(CORE_PKGS)) -lm
CHECK_CFLAGS = $(shell $(PKG_CONFIG) --cflags check)
CHECK_LIBS = $(shell $(PKG_CONFIG) --libs check)

SAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

CORE_SRCS = src/jk_stream.c src/jk_decode.c src/jk_cmd.c src/jk_json.c src/capture.c src/cfg.c src/pack.c src/jk_encode.c \
	src/bank.c src/charge.c src/canmsg.c src/sim_battery.c src/ha.c src/energy.c
# The adapters: file descriptors, the loop, D-Bus, MQTT, SocketCAN.
ADAPTER_SRCS = src/loop.c src/service.c src/ble.c
TOOL_SRCS = src/jkbms.c src/jkbms_sim.c src/jkbms_ble.c src/sim.c src/sim_peripheral.c $(ADAPTER_SRCS)
DAEMON_SRCS = src/jkbridged.c src/canbus.c src/replay.c src/store.c src/mqtt.c $(ADAPTER_SRCS)
TEST_SRCS = $(wildcard tests/*.c)

B = build
CORE_OBJS = $(CORE_SRCS:%.c=$(B)/%.o)
TOOL_OBJS = $(TOOL_SRCS:%.c=$(B)/%.o)
DAEMON_OBJS = $(DAEMON_SRCS:%.c=$(B)/%.o)
SAN_CORE_OBJS = $(CORE_SRCS:%.c=$(B)/san/%.o)
TEST_OBJS = $(TEST_SRCS:%.c=$(B)/san/%.o)

all: $(B)/jkbms $(B)/jkbridged

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CORE_CFLAGS) $(DAEMON_CFLAGS) $(CFLAGS) -c -o $@ $<

$(B)/libjkcore.a: $(CORE_OBJS)
	$(AR) rcs $@ $^

$(B)/jkbms: $(TOOL_OBJS) $(B)/libjkcore.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(CORE_LIBS) $(DAEMON_LIBS)

$(B)/jkbridged: $(DAEMON_OBJS) $(B)/libjkcore.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(CORE_LIBS) $(DAEMON_LIBS)

# The unit tests: their own sanitized build of the core, linked with Check only.
$(B)/san/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CORE_CFLAGS) $(CHECK_CFLAGS) $(CFLAGS) $(SAN_FLAGS) -c -o $@ $<

$(B)/san/check_jk: $(TEST_OBJS) $(SAN_CORE_OBJS)
	$(CC) $(CFLAGS) $(SAN_FLAGS) $(LDFLAGS) -o $@ $^ $(CORE_LIBS) $(CHECK_LIBS)

check: $(B)/san/check_jk $(B)/jkbms $(B)/jkbridged
	JKB_VECTORS=$(JKB_VECTORS) JKBMS=$(B)/jkbms JKBRIDGED=$(B)/jkbridged \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	$(B)/san/check_jk

# Rewrite the golden files (tests/golden) after a deliberate change.
golden: $(B)/san/check_jk
	JKB_UPDATE_GOLDEN=1 CK_RUN_CASE=cfg $(B)/san/check_jk
	JKB_UPDATE_GOLDEN=1 CK_RUN_CASE=ha $(B)/san/check_jk

$(B)/bench_decode: bench/bench_decode.c $(B)/libjkcore.a
	$(CC) $(CPPFLAGS) $(CORE_CFLAGS) $(CFLAGS) -O2 $(LDFLAGS) -o $@ $^ $(CORE_LIBS)

bench: $(B)/bench_decode
	JKB_VECTORS=$(JKB_VECTORS) $(B)/bench_decode

$(B)/fuzz_stream_decode: fuzz/fuzz_stream_decode.c src/jk_stream.c src/jk_decode.c
	@mkdir -p $(@D)
	$(CLANG) -Iinclude -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $^

# libFuzzer's progress goes to build/fuzz.log; its closing statistics are shown.
fuzz: $(B)/fuzz_stream_decode
	@mkdir -p $(B)/fuzz-corpus
	@echo "fuzzing jk_stream + jk_decode for $(FUZZ_SECONDS) s (log: $(B)/fuzz.log)"
	@$(B)/fuzz_stream_decode -max_total_time=$(FUZZ_SECONDS) -max_len=2048 -print_final_stats=1 \
		$(B)/fuzz-corpus > $(B)/fuzz.log 2>&1 || { tail -n 60 $(B)/fuzz.log; exit 1; }
	@grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)' $(B)/fuzz.log || tail -n 5 $(B)/fuzz.log

demo: all
	JKBRIDGED=$(B)/jkbridged JKBMS=$(B)/jkbms scripts/demo

decode-demo: $(B)/jkbms
	$(B)/jkbms decode $(JKB_VECTORS)/jk02_32s_session_frag_esphome_1.txt

SYSCONFDIR ?= /etc
UNITDIR ?= /lib/systemd/system

install: all
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 $(B)/jkbms $(DESTDIR)$(BINDIR)/jkbms
	install -d $(DESTDIR)$(SBINDIR)
	install -m 755 $(B)/jkbridged $(DESTDIR)$(SBINDIR)/jkbridged
	install -d $(DESTDIR)$(SYSCONFDIR)/jkbridged $(DESTDIR)$(UNITDIR)
	install -m 644 conf/jkbridged.conf $(DESTDIR)$(SYSCONFDIR)/jkbridged/jkbridged.conf
	sed 's|/usr/sbin/|$(SBINDIR)/|g' systemd/jkbridged.service > $(DESTDIR)$(UNITDIR)/jkbridged.service

deb:
	scripts/make-deb

# Not part of `make check`: needs root, qemu and ../shared/testbed.
vm-check: all
	tests/vm/run.sh

.PHONY: deb vm-check

clean:
	rm -rf $(B)

.PHONY: all check golden bench fuzz demo decode-demo install clean

-include $(shell find $(B) -name '*.d' 2>/dev/null)
