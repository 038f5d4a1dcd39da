/*
 * ble — JK-BMS packs over Bluetooth LE, through BlueZ's D-Bus API (sd-bus).
 *
 * One manager (struct ble) owns one sd-bus connection on the caller's loop
 * and a cache of the BlueZ objects it needs: every Adapter1, Device1,
 * GattService1 and GattCharacteristic1 from ObjectManager, kept current by
 * InterfacesAdded / InterfacesRemoved / PropertiesChanged.  A lost bus or a
 * BlueZ that leaves it is a state: the manager retries and reloads.
 *
 * One link (struct ble_link) per pack runs this state machine; every
 * transition goes through one function that logs it once:
 *
 *	idle ──▶ discovering ──▶ connecting ──▶ resolving ──▶ subscribed ──▶ streaming
 *	  ▲          │  ▲             │              │             │   ▲          │
 *	  │          ▼  │             ▼              ▼             ▼   └──────────┤
 *	  └─────── back-off ◀─────────┴──────────────┴─────────────┴──────────────┘
 *
 *   idle         waiting for BlueZ, an adapter, or the adapter's connect slot
 *   discovering  BlueZ has no Device1 for the address: discovery runs
 *   connecting   stale-link cleanup (Disconnect of a Device1 still Connected
 *                from an earlier run), then Device1.Connect(); one Connect
 *                in flight per adapter, discovery paused on it meanwhile
 *   resolving    connected; waiting for ServicesResolved and the FFE0
 *                service's FFE1 characteristics (the one with notify, the
 *                one with write / write-without-response: one or two)
 *   subscribed   notifications on (AcquireNotify's fd where offered, else
 *                StartNotify + PropertiesChanged(Value)); handshake 0x97 →
 *                ack or device info (≤ 1 s) → 0x96; 0x96 again after 5 s
 *                without a cell-info frame; 30 s without one is a loss
 *   streaming    cell-info frames arrive
 *   back-off     after any loss or failure: pack_reset_link(), exponential
 *                delay 1 s → 60 s with jitter; after 5 consecutive failures
 *                the adapter is power-cycled once (unless another pack is
 *                streaming through it)
 *
 * Discovery (SetDiscoveryFilter {Transport le, UUIDs [FFE0]}) runs on an
 * adapter only while some pack that may use it is missing, and is paused
 * while a Connect is in flight there.  A pack bound to an adapter
 * (adapter = "hci1") uses only that one.
 *
 * The link reads its pack (pack.h) but leaves decoding to the caller: the
 * bytes go to ops->on_bytes(), which feeds them to pack_feed() (or its own
 * reassembler) and returns what it saw (PACK_EV_* bits), and the link
 * follows the handshake and the stream through those bits.  Protocol
 * detection stays in pack.c; the link only reads pack->learned and the
 * stream statistics.
 */
#ifndef BLE_H
#define BLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jk_cmd.h"
#include "loop.h"
#include "pack.h"

enum ble_state {
	BLE_IDLE,
	BLE_DISCOVERING,
	BLE_CONNECTING,
	BLE_RESOLVING,
	BLE_SUBSCRIBED,
	BLE_STREAMING,
	BLE_BACKOFF,
};

/* Timing (ms); tests and tools read them from here. */
#define BLE_HANDSHAKE_MS 1000		/* 0x97 → 0x96 at the latest */
#define BLE_ACK_GRACE_MS 250		/* after a frame, wait this long for its ack */
#define BLE_SILENCE_MS 5000		/* no cell info: re-send 0x96 */
#define BLE_SILENCE_LOSS_MS 30000	/* no cell info: the link is lost */
#define BLE_BACKOFF_MIN_MS 1000
#define BLE_BACKOFF_MAX_MS 60000
#define BLE_POWER_CYCLE_AFTER 5		/* consecutive failures */

struct ble;
struct ble_link;

struct ble_link_ops {
	/* One notification's bytes.  Returns the PACK_EV_* bits they produced
	 * (pack_feed()'s result).  Must not free the link. */
	uint32_t (*on_bytes)(void *ctx, const uint8_t *data, size_t n);
	/* Optional: the link changed state (already logged). */
	void (*on_state)(void *ctx, enum ble_state state);
};

struct ble_link_config {
	const char *name;		/* log lines read "pack NAME: ..." */
	const char *address;		/* "C8:47:8C:E1:E2:AA" */
	const char *adapter;		/* "hci1"; NULL or "" = any adapter */
	struct pack *pack;		/* the caller's; must outlive the link */
	const struct ble_link_ops *ops;
	void *ctx;
};

struct ble_link_stats {
	enum ble_state state;
	uint64_t state_since_ms;	/* loop_now_ms() of the last transition */
	char adapter[16];		/* of the current or last attempt; "" = none yet */
	bool have_rssi;
	int16_t rssi;			/* dBm, as BlueZ last reported it */
	bool notify_fd;			/* notifications through AcquireNotify's fd */
	uint32_t connects;		/* sessions that reached subscribed */
	uint32_t reconnects;		/* of those, all but the first */
	uint32_t failures;		/* consecutive, reset by streaming */
	uint32_t power_cycles;		/* adapter power-cycles this link asked for */
	uint32_t frames;		/* from pack->stream.stats */
	uint32_t bad_checksums;
};

/* A Device1 as BlueZ shows it (jkbms scan). */
struct ble_device {
	char address[18];
	char name[64];			/* Name, else Alias */
	char adapter[16];		/* "hci0" */
	bool have_rssi;
	int16_t rssi;
	bool connected;
	bool services_resolved;
	bool service_ffe0;		/* advertises (or has) service 0xFFE0 */
	unsigned n_manufacturer;
	uint16_t manufacturer[4];	/* company IDs of its manufacturer data */
};

/* Why a device looks like a JK-BMS (jkbms-ble.md §1.2). */
enum {
	BLE_MATCH_SERVICE = 1u << 0,		/* service 0xFFE0 */
	BLE_MATCH_MANUFACTURER = 1u << 1,	/* company ID 0x0B65 or 0x4B4A */
	BLE_MATCH_NAME = 1u << 2,		/* name starts with "JK-" or "JK_" */
};
unsigned ble_device_match(const struct ble_device *d);

/*
 * The manager.  ble_open() connects to the system bus
 * (DBUS_SYSTEM_BUS_ADDRESS) on `loop`; an unreachable bus or a missing
 * BlueZ is not an error, only a state retried in the background.  NULL only
 * when out of memory.  ble_close() frees the links still open, disconnects
 * their devices and flushes the bus.
 */
struct ble *ble_open(struct loop *loop);
void ble_close(struct ble *b);

/* BlueZ's objects are loaded (bus up, org.bluez present). */
bool ble_ready(const struct ble *b);
/* Adapter names ("hci0", ...) into names[0..max); returns how many exist. */
unsigned ble_adapters(const struct ble *b, const char **names, unsigned max);

/* A link starts at once (or as soon as BlueZ is there).  NULL on ENOMEM. */
struct ble_link *ble_link_new(struct ble *b, const struct ble_link_config *cfg);
/* Stops the link, disconnects its device; safe with NULL. */
void ble_link_free(struct ble_link *l);

enum ble_state ble_link_state(const struct ble_link *l);
void ble_link_stats(const struct ble_link *l, struct ble_link_stats *out);
const char *ble_state_name(enum ble_state s);

/*
 * Write a 20-byte command (jk_cmd.h) to the pack: WriteValue with type
 * "command" (write without response) where the characteristic allows it.
 * 0, -ENOTCONN before subscribed, -EBUSY with too many writes in flight,
 * or another -errno.
 */
int ble_link_write(struct ble_link *l, const uint8_t *cmd, size_t n);

/*
 * Switch the charge / discharge MOSFET or the balancer (jk_cmd_switch()
 * for the learned protocol), then re-request 0x96 once the BMS acked (or
 * after 1 s), so the settings frame confirms the new state.  -EINVAL while
 * the protocol is unknown, -EOPNOTSUPP for a switch the protocol lacks.
 */
int ble_link_switch(struct ble_link *l, enum jk_switch sw, bool on);

/*
 * Scanning for `jkbms scan`: while on, discovery runs (LE, no UUID filter,
 * so name and manufacturer matches show too) on `adapter` (NULL = all).
 */
void ble_scan(struct ble *b, const char *adapter, bool on);
void ble_foreach_device(const struct ble *b, void (*fn)(void *ctx, const struct ble_device *d),
			void *ctx);

#endif
