/*
 * sim_battery — one simulated JK-BMS: the battery, the BMS firmware's side
 * of the protocol and the BLE module's chunking, for `jkbms sim`.
 *
 * The battery: SOC follows the current (charge integrated in mA·ms, clamped
 * to 0..capacity), the MOSFET switches gate the current (no charge current
 * with the charging switch off or at 100 %, no discharge current with the
 * discharging switch off or at 0 %), every cell sits on an LFP open-circuit
 * voltage curve at the SOC plus a small fixed per-cell offset plus the
 * IR drop of the current, the pack voltage is the sum of the cells and the
 * temperatures are the configured one (T2 and the MOSFET a little warmer).
 *
 * The firmware (jkbms-ble.md §2.2, §2.5, §5): 0x97 -> device-info frame
 * then the C8 ack; 0x96 -> settings frame then the ack, then a cell-info
 * frame about every 500 ms until the link drops; switch writes (0x1D, 0x1E,
 * 0x1F u32 on JK02; 0x6C one byte on JK04) change the state and are acked;
 * other register writes are acked and otherwise ignored; a command with a
 * bad checksum is ignored, as the real BMS does.  Every frame is built by
 * jk_encode and every command and ack by jk_cmd: no frame is written here
 * by hand.
 *
 * The BLE module (§1.3): what the firmware sends is cut into notifications
 * of at most MTU - 3 bytes, in UART blocks of 150 bytes on the units that
 * show 128/22/128/22 in the captures (block_len 150) or in one piece on the
 * others (block_len 0: 128/128/44 at MTU 131, 20-byte pieces at MTU 23).
 *
 * Faults: silence (nothing is sent, commands are not answered), junk
 * ("AT\r\n" and random bytes before every reply and frame), corrupt (every
 * data frame has one payload byte flipped, so its checksum fails).
 *
 * Pure core: time is a parameter (monotonic ms), no I/O, no allocation;
 * the random numbers come from a seeded generator in the struct.
 */
#ifndef SIM_BATTERY_H
#define SIM_BATTERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jk_decode.h"

#define SIM_NOTIFY_MAX 512		/* an ATT value never exceeds 512 bytes */
#define SIM_QUEUE_LEN 64		/* notifications waiting to be delivered */
#define SIM_STREAM_INTERVAL_MS 500	/* cell-info frames, jittered ±60 ms */

struct sim_battery_config {
	char name[JK_STR_MAX];		/* the BLE name, also in the device info */
	enum jk_protocol protocol;	/* JK02_24S, JK02_32S or JK04 */
	uint8_t cells;			/* 1..24 (1..32 on JK02_32S) */
	uint32_t capacity_mah;
	uint16_t soc_permille;		/* at start, 0..1000 */
	int32_t current_ma;		/* the load (< 0) or charger (> 0) */
	int16_t temp_dc;		/* 0.1 °C */
	uint32_t seed;			/* per-cell offsets and junk; any value */
	bool strict_order;		/* fw 20.20 (E#1020): 0x96 without 0x97 first starts no stream */
};

enum sim_fault {
	SIM_FAULT_SILENCE = 1u << 0,
	SIM_FAULT_JUNK = 1u << 1,
	SIM_FAULT_CORRUPT = 1u << 2,
};

/* What one 20-byte command was, for the log and the tests. */
enum sim_command_kind {
	SIM_CMD_DEVICE_INFO,		/* 0x97 */
	SIM_CMD_CELL_INFO,		/* 0x96 */
	SIM_CMD_SWITCH,			/* a switch register; .sw and .on say which */
	SIM_CMD_REGISTER,		/* another register write or request: acked, not modelled */
	SIM_CMD_BAD_CHECKSUM,		/* ignored, no ack */
};

struct sim_command {
	enum sim_command_kind kind;
	uint8_t reg;
	uint8_t len;
	uint32_t value;			/* the value bytes, little-endian, first 4 */
	uint8_t sw;			/* enum jk_switch, for SIM_CMD_SWITCH */
	bool on;
	bool answered;			/* false while silenced */
};

struct sim_notification {
	uint16_t len;
	uint8_t data[SIM_NOTIFY_MAX];
};

struct sim_battery {
	struct sim_battery_config cfg;

	/* the battery */
	int64_t charge_mams;		/* remaining charge, mA·ms */
	int64_t capacity_mams;
	uint64_t throughput_mams;	/* |current| integrated: the cycle capacity */
	int32_t load_ma;		/* what the load or charger asks; see sim_battery_current_ma() */
	int16_t temp_dc;
	int8_t cell_offset_mv[JK_MAX_CELLS];
	uint32_t cell_res_uohm;		/* internal resistance per cell, for the IR drop */
	bool charging_switch, discharging_switch, balancer_switch;
	uint64_t now_ms;		/* time of the last advance */
	uint64_t boot_ms;
	uint8_t counter;		/* frame counter, +1 per cell-info frame */
	uint32_t rng;
	unsigned faults;		/* enum sim_fault bits */

	/* the link: reset by sim_battery_link_up() and _link_down() */
	bool linked;
	bool info_sent;			/* 0x97 answered on this link */
	bool streaming;
	uint64_t next_frame_ms;
	uint16_t payload_max;		/* MTU - 3 */
	uint16_t block_len;		/* 0 or the module's UART block */
	uint8_t rx[JK_CMD_LEN];		/* a command being written in pieces */
	size_t rx_len;
	struct sim_notification queue[SIM_QUEUE_LEN];
	unsigned q_head, q_len;
	uint32_t dropped;		/* notifications lost to a full queue */
};

/* Device-info strings for a protocol: model, hardware, software version. */
struct sim_identity {
	const char *model, *hw_version, *sw_version;
};
const struct sim_identity *sim_battery_identity(enum jk_protocol proto);

void sim_battery_init(struct sim_battery *b, const struct sim_battery_config *c, uint64_t now_ms);

/* Integrate the current up to now_ms (a time before the last one is ignored). */
void sim_battery_advance(struct sim_battery *b, uint64_t now_ms);

/* The operator's knobs (`set ADDR soc=N current=A temperature=T`). */
void sim_battery_set_soc(struct sim_battery *b, uint16_t soc_permille);
void sim_battery_set_load(struct sim_battery *b, int32_t current_ma);
void sim_battery_set_temp(struct sim_battery *b, int16_t temp_dc);
void sim_battery_set_fault(struct sim_battery *b, enum sim_fault f, bool on);

/* The current that flows: the load gated by the MOSFETs and by full/empty. */
int32_t sim_battery_current_ma(const struct sim_battery *b);
uint16_t sim_battery_soc_permille(const struct sim_battery *b);

/* The model as the next frames will report it (the counter is not advanced). */
void sim_battery_sample(const struct sim_battery *b, struct jk_sample *out);
void sim_battery_settings(const struct sim_battery *b, struct jk_settings *out);
void sim_battery_device_info(const struct sim_battery *b, struct jk_device_info *out);

/* A client connected (mtu = the ATT MTU, 23..517) or the link went away. */
void sim_battery_link_up(struct sim_battery *b, uint16_t mtu, uint16_t block_len, uint64_t now_ms);
void sim_battery_link_down(struct sim_battery *b);

/*
 * Bytes the client wrote to the BMS (one GATT write).  Complete commands
 * are handled at once and their replies queued; up to `max` of them are
 * described in cmds.  Returns how many commands were complete (which may
 * exceed max).  Bytes before a command header are dropped, as by the BMS's
 * UART parser.
 */
unsigned sim_battery_write(struct sim_battery *b, const uint8_t *data, size_t len, uint64_t now_ms,
			   struct sim_command *cmds, unsigned max);

/* When the next streamed frame is due, or UINT64_MAX when none is. */
uint64_t sim_battery_next_due_ms(const struct sim_battery *b);

/* Advance to now_ms and queue the cell-info frames that are due. */
void sim_battery_tick(struct sim_battery *b, uint64_t now_ms);

/* The next notification to deliver; false when none is queued. */
bool sim_battery_pop(struct sim_battery *b, struct sim_notification *out);

/* "0x97 device info", "0x1D charging switch off", ... for the log. */
void sim_command_describe(const struct sim_command *c, char *buf, size_t size);

#endif
