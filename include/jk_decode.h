/*
 * jk_decode — one checksum-valid 300-byte JK-BMS frame in, a plain struct out.
 *
 * Three payload layouts exist (jkbms-ble.md §4): JK02_24S (fw 6.x–10.x, u16 mV,
 * 24 cell slots), JK02_32S (fw >= 11.x and the PB series, 32 slots, most fields
 * 16 or 32 bytes later) and JK04 (old units, float32 volts).  Every field with
 * a known meaning is decoded; bytes of unknown meaning are not given invented
 * ones.  The offsets live in one table per layout in jk_decode.c, each with the
 * source of the fact.
 *
 * Units are SI milli-units (mV, mA, mAh, mW, mΩ), 0.1 °C for temperatures and
 * seconds for times; current is positive while charging.  A field a layout does
 * not carry has its JK_HAS_* bit clear in `has`.
 *
 * Pure core: no allocation, no I/O, no clock.
 */
#ifndef JK_DECODE_H
#define JK_DECODE_H

#include <stdbool.h>
#include <stdint.h>

#include "jk_stream.h"

#define JK_MAX_CELLS 32
#define JK_MAX_TEMPS 5		/* T1, T2 and the three extra 32S sensors */
#define JK_TEMP_ABSENT_DC (-2000)	/* 0xF830: "no sensor connected" */

enum jk_protocol {
	JK_PROTO_UNKNOWN = 0,
	JK_PROTO_JK02_24S,
	JK_PROTO_JK02_32S,
	JK_PROTO_JK04,
};

enum jk_frame_type {
	JK_FRAME_SETTINGS = 0x01,
	JK_FRAME_CELL_INFO = 0x02,
	JK_FRAME_DEVICE_INFO = 0x03,
	JK_FRAME_LOGBOOK = 0x05,
};

/* Fields that not every layout carries. */
enum {
	JK_HAS_CURRENT = 1u << 0,	/* current_ma, power_mw */
	JK_HAS_SOC = 1u << 1,		/* soc_pct, remaining_mah, capacity_mah */
	JK_HAS_CYCLES = 1u << 2,	/* cycles, cycle_capacity_mah */
	JK_HAS_SOH = 1u << 3,
	JK_HAS_TEMPS = 1u << 4,		/* temps_dc, temp_count, temp_presence */
	JK_HAS_MOS_TEMP = 1u << 5,
	JK_HAS_ERRORS = 1u << 6,
	JK_HAS_MOSFETS = 1u << 7,	/* charging_enabled, discharging_enabled */
	JK_HAS_HEATING = 1u << 8,
	JK_HAS_CELL_RES = 1u << 9,	/* cell_res_mohm */
	JK_HAS_PRECHARGE = 1u << 10,	/* 32S: precharging, balancer_working */
	JK_HAS_CHARGE_STATUS = 1u << 11,	/* 32S: charge_status, battery_type, ... */
	JK_HAS_EMERGENCY = 1u << 12,	/* 32S: emergency_countdown_s */
};

/* Balancer action, cell-info byte 140 (24S) / 172 (32S) / 220 (JK04). */
enum jk_balancing {
	JK_BALANCE_OFF = 0,
	JK_BALANCE_CHARGE = 1,
	JK_BALANCE_DISCHARGE = 2,
};

/* Cell-info frame (type 0x02): the live data. */
struct jk_sample {
	enum jk_protocol protocol;
	uint8_t counter;		/* frame counter, +1 per cell-info frame */
	uint32_t has;			/* JK_HAS_* */

	uint8_t cell_count;		/* enabled cells (popcount of cell_mask) */
	uint32_t cell_mask;		/* bit0 = cell 1 */
	uint16_t cells_mv[JK_MAX_CELLS];	/* index i = cell i+1; enabled cells only */
	uint16_t cell_res_mohm[JK_MAX_CELLS];
	uint16_t cell_avg_mv;		/* as reported by the BMS */
	uint16_t cell_delta_mv;
	uint8_t cell_max_index;		/* 0-based, as reported (can lag the voltages) */
	uint8_t cell_min_index;

	uint32_t voltage_mv;		/* JK04: sum of the enabled cells */
	int32_t current_ma;		/* positive = charging */
	uint32_t power_mw;		/* the BMS's unsigned magnitude; prefer V x I */
	int16_t temps_dc[JK_MAX_TEMPS];	/* T1, T2, 32S: extra sensors at 254/256/258 */
	uint8_t temp_count;		/* 2 on 24S, 5 on 32S */
	uint8_t temp_presence;		/* raw presence mask (byte 182 / 214) */
	int16_t mos_temp_dc;
	uint32_t errors;		/* raw bitmask: u16 on 24S, u32 on 32S */
	uint32_t wire_res_warnings;	/* bit per cell */

	int32_t balance_current_ma;	/* negative while discharge-balancing */
	enum jk_balancing balancing;	/* the raw byte: values other than 0-2 occur in junk */

	uint8_t soc_pct;
	uint8_t soh_pct;
	uint32_t remaining_mah;
	uint32_t capacity_mah;		/* on fw 11.x this follows SOH (settings 130 holds the configured value) */
	uint32_t cycles;
	uint32_t cycle_capacity_mah;	/* lifetime charge throughput */
	uint32_t uptime_s;

	bool charging_enabled;		/* charge MOSFET on */
	bool discharging_enabled;
	bool heating;
	bool precharging;		/* 32S */
	bool balancer_working;		/* 32S */
	uint16_t emergency_countdown_s;	/* 32S; > 0 = emergency mode */
	uint8_t battery_type;		/* 32S: 0 LFP, 1 Li-ion, 2 LTO */
	uint8_t charge_status;		/* 32S: 0 bulk, 1 absorption, 2 float */
	uint16_t charge_status_time_s;	/* 32S */
};

/* Settings frame (type 0x01). */
struct jk_settings {
	enum jk_protocol protocol;
	uint8_t cell_count;
	bool balancer_switch;

	/* JK02 (24S and 32S) only */
	uint32_t smart_sleep_mv;
	uint32_t cell_uvp_mv, cell_uvpr_mv;
	uint32_t cell_ovp_mv, cell_ovpr_mv;
	uint32_t balance_trigger_mv;
	uint32_t soc100_mv, soc0_mv;
	uint32_t rcv_mv, rfv_mv;	/* requested charge voltage / float voltage */
	uint32_t power_off_mv;
	uint32_t max_charge_current_ma;
	uint32_t charge_ocp_delay_s, charge_ocp_recovery_s;
	uint32_t max_discharge_current_ma;
	uint32_t discharge_ocp_delay_s, discharge_ocp_recovery_s;
	uint32_t scp_recovery_s;
	uint32_t max_balance_current_ma;
	int32_t charge_otp_dc, charge_otpr_dc;
	int32_t discharge_otp_dc, discharge_otpr_dc;
	int32_t charge_utp_dc, charge_utpr_dc;
	int32_t mos_otp_dc, mos_otpr_dc;
	bool charging_switch;
	bool discharging_switch;
	uint32_t capacity_mah;		/* the user's nominal capacity */
	uint32_t scp_delay_us;
	uint32_t balance_start_mv;
	uint32_t wire_res_mohm[JK_MAX_CELLS];	/* connection-wire resistances */
	uint8_t wire_res_count;			/* 24 on 24S, 32 on 32S */
	/* JK02_32S only */
	uint8_t device_address;
	uint8_t precharge_time_s;
	uint16_t controls;		/* bit0 heating ... bit15 GPS-locked discharging */
	int8_t heating_start_c, heating_stop_c;
	uint8_t smart_sleep_h;
	int8_t discharge_utp_c, discharge_utpr_c;

	/* JK04 only (float32 on the wire, stored here in milli-units) */
	uint32_t jk04_vref_mv;		/* voltage calibration / ADC reference */
	uint32_t jk04_balance_trigger_mv;
	uint32_t jk04_max_balance_current_ma;
	uint32_t jk04_power_off_mv;
	uint32_t jk04_balance_start_mv;
};

#define JK_STR_MAX 17			/* 16 characters + NUL */

/* Device-info frame (type 0x03), same common layout on every protocol. */
struct jk_device_info {
	char model[JK_STR_MAX];
	char hw_version[JK_STR_MAX];
	char sw_version[JK_STR_MAX];
	char name[JK_STR_MAX];
	char manufacturing_date[JK_STR_MAX];
	char serial[JK_STR_MAX];
	char user_data[JK_STR_MAX];
	uint32_t uptime_s;
	uint32_t power_on_count;
};

#define JK_LOGBOOK_MAX 50

struct jk_logbook {
	uint32_t entry_count;		/* as reported; at most JK_LOGBOOK_MAX are in the frame */
	uint8_t n;			/* entries decoded */
	struct {
		uint32_t time_s;
		uint8_t code;
	} entries[JK_LOGBOOK_MAX];
};

/* Every decoder returns 0, or -EINVAL for a frame of another type, or
 * -EPROTONOSUPPORT for a protocol the frame type does not exist in. */
int jk_decode_cell_info(const uint8_t frame[JK_FRAME_LEN], enum jk_protocol proto,
			struct jk_sample *out);
int jk_decode_settings(const uint8_t frame[JK_FRAME_LEN], enum jk_protocol proto,
		       struct jk_settings *out);
int jk_decode_device_info(const uint8_t frame[JK_FRAME_LEN], struct jk_device_info *out);
int jk_decode_logbook(const uint8_t frame[JK_FRAME_LEN], struct jk_logbook *out);

static inline enum jk_frame_type jk_frame_type(const uint8_t frame[JK_FRAME_LEN])
{
	return (enum jk_frame_type)frame[4];
}

/*
 * Protocol detection (jkbms-ble.md §4.1).  From the device info: software
 * major >= 11 -> JK02_32S; hardware major <= 3 -> JK04; otherwise JK02_24S
 * (the JK-B5A24S, hw 8.x, speaks JK04 and is only told apart by content).
 * From a cell-info frame: JK04 if byte 9 is the high byte of a float cell
 * voltage (0x40 or 0x3F); JK02_32S if the u32 at 54 is 0 and the u32 at 70 is
 * a mask of the form 2^n - 1; JK02_24S otherwise.  A settings frame is JK04
 * when its float at 6 reads 1.0 (0x3F at byte 9), otherwise JK02; which JK02
 * it is follows the bytes that only the 32S layout uses.
 */
enum jk_protocol jk_detect_from_device_info(const struct jk_device_info *info);
enum jk_protocol jk_detect_from_frame(const uint8_t frame[JK_FRAME_LEN]);

/*
 * The protocol to decode `frame` with: the configured one if any; else, for
 * a cell-info frame, its content (reliable over every captured frame); else
 * what the device info or earlier frames taught (`learned`), refined by the
 * content where that can tell JK04 from JK02.
 */
enum jk_protocol jk_protocol_for_frame(enum jk_protocol configured, enum jk_protocol learned,
				       const uint8_t frame[JK_FRAME_LEN]);

const char *jk_protocol_name(enum jk_protocol proto);	/* "JK02_24S", ... */
/* Parses "auto", "jk02_24s", "jk02_32s", "jk04" (any case); -EINVAL otherwise. */
int jk_protocol_parse(const char *s, enum jk_protocol *out);

#endif
