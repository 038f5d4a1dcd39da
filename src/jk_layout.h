/*
 * jk_layout — where each field sits in a JK-BMS frame (internal to
 * jk_decode.c and jk_encode.c).  Offsets are absolute positions in the
 * 300-byte frame, little-endian, from jkbms-ble.md §4 (sources:
 * esphome-jk-bms decode_jk02_cell_info_ / decode_jk04_cell_info_,
 * aiobmsble jikong_bms.py, batmon-ha jikong.py, checked there against real
 * frames).  The two JK02 layouts are one table with a column each:
 * JK02_32S moves the block 54–111 by 16 bytes and everything from 112 on by
 * 32.  A zero offset means "not on this layout".
 */
#ifndef JK_LAYOUT_H
#define JK_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "jk_decode.h"

struct jk02_layout {
	uint8_t max_cells;
	uint16_t cell_mask, cell_avg, cell_delta, cell_max_idx, cell_min_idx, cell_res;
	uint16_t mos_temp, wire_warn, voltage, power, current, temp1, temp2;
	uint16_t errors, errors_size, balance_current, balancing, soc, remaining;
	uint16_t capacity, cycles, cycle_capacity, soh, uptime, chg_mos, dsg_mos;
	uint16_t temp_presence;
	/* JK02_32S only */
	uint16_t precharging, balancer_working, heating, emergency;
	uint16_t extra_temps[3], battery_type, charge_status_time, charge_status;
};

static const struct jk02_layout layout_24s = {
	.max_cells = 24,
	.cell_mask = 54, .cell_avg = 58, .cell_delta = 60,
	.cell_max_idx = 62, .cell_min_idx = 63,	/* 0-based, checked on mpp-solar's frame */
	.cell_res = 64,
	.wire_warn = 114, .voltage = 118, .power = 122, .current = 126,
	.temp1 = 130, .temp2 = 132, .mos_temp = 134,
	.errors = 136, .errors_size = 2,	/* u16 LE (esphome 9a3a3a6) */
	.balance_current = 138, .balancing = 140, .soc = 141, .remaining = 142,
	.capacity = 146, .cycles = 150, .cycle_capacity = 154, .soh = 158,
	.uptime = 162, .chg_mos = 166, .dsg_mos = 167,
	.temp_presence = 182,
	/* 168/169 hold a u16 of unknown meaning on 24S; 183 "heating" is
	 * uncertain there (reads 1 on a unit without heater): not decoded. */
};

static const struct jk02_layout layout_32s = {
	.max_cells = 32,
	.cell_mask = 70, .cell_avg = 74, .cell_delta = 76,
	.cell_max_idx = 78, .cell_min_idx = 79,
	.cell_res = 80,
	.mos_temp = 144,	/* esphome#147, dbus-serialbattery#716 */
	.wire_warn = 146, .voltage = 150, .power = 154, .current = 158,
	.temp1 = 162, .temp2 = 164,
	.errors = 166, .errors_size = 4,	/* u32 LE */
	.balance_current = 170, .balancing = 172, .soc = 173, .remaining = 174,
	.capacity = 178, .cycles = 182, .cycle_capacity = 186, .soh = 190,
	.uptime = 194, .chg_mos = 198, .dsg_mos = 199,
	.precharging = 200, .balancer_working = 201,
	.temp_presence = 214, .heating = 215, .emergency = 218,
	.extra_temps = { 254, 256, 258 },	/* naming disputed (§7): kept in frame order */
	.battery_type = 275, .charge_status_time = 278, .charge_status = 280,
};

/* JK04 cell info (esphome decode_jk04_cell_info_, mpp-solar jk04.py):
 * float32 volts and ohms; no current, SOC, capacity, cycles or MOSFETs. */
enum {
	JK04_CELLS = 6,		/* 24 x f32, V */
	JK04_CELL_RES = 102,	/* 24 x f32, Ω */
	JK04_CELL_AVG = 202,
	JK04_CELL_DELTA = 206,
	JK04_CELL_MASK = 214,	/* u32 */
	JK04_CELL_MAX_IDX = 218,
	JK04_CELL_MIN_IDX = 219,
	JK04_BALANCING = 220,
	JK04_BALANCE_CURRENT = 222,	/* f32, A, signed */
	JK04_UPTIME = 286,	/* u32, s */
	JK04_MAX_CELLS = 24,
};


/* JK02 settings (jkbms-ble.md §2.3, §4.4): u32 at 6 + 4 * (register - 1). */
static const struct {
	uint16_t off;
	uint16_t field;		/* offsetof(struct jk_settings, ...), a 32-bit field */
} jk02_settings_u32[] = {
	{ 6, offsetof(struct jk_settings, smart_sleep_mv) },
	{ 10, offsetof(struct jk_settings, cell_uvp_mv) },
	{ 14, offsetof(struct jk_settings, cell_uvpr_mv) },
	{ 18, offsetof(struct jk_settings, cell_ovp_mv) },
	{ 22, offsetof(struct jk_settings, cell_ovpr_mv) },
	{ 26, offsetof(struct jk_settings, balance_trigger_mv) },
	{ 30, offsetof(struct jk_settings, soc100_mv) },
	{ 34, offsetof(struct jk_settings, soc0_mv) },
	{ 38, offsetof(struct jk_settings, rcv_mv) },
	{ 42, offsetof(struct jk_settings, rfv_mv) },
	{ 46, offsetof(struct jk_settings, power_off_mv) },
	{ 50, offsetof(struct jk_settings, max_charge_current_ma) },
	{ 54, offsetof(struct jk_settings, charge_ocp_delay_s) },
	{ 58, offsetof(struct jk_settings, charge_ocp_recovery_s) },
	{ 62, offsetof(struct jk_settings, max_discharge_current_ma) },
	{ 66, offsetof(struct jk_settings, discharge_ocp_delay_s) },
	{ 70, offsetof(struct jk_settings, discharge_ocp_recovery_s) },
	{ 74, offsetof(struct jk_settings, scp_recovery_s) },
	{ 78, offsetof(struct jk_settings, max_balance_current_ma) },
	{ 82, offsetof(struct jk_settings, charge_otp_dc) },	/* 0.1 °C, signed */
	{ 86, offsetof(struct jk_settings, charge_otpr_dc) },
	{ 90, offsetof(struct jk_settings, discharge_otp_dc) },
	{ 94, offsetof(struct jk_settings, discharge_otpr_dc) },
	{ 98, offsetof(struct jk_settings, charge_utp_dc) },
	{ 102, offsetof(struct jk_settings, charge_utpr_dc) },
	{ 106, offsetof(struct jk_settings, mos_otp_dc) },
	{ 110, offsetof(struct jk_settings, mos_otpr_dc) },
	{ 130, offsetof(struct jk_settings, capacity_mah) },	/* the user's nominal capacity */
	{ 134, offsetof(struct jk_settings, scp_delay_us) },
	{ 138, offsetof(struct jk_settings, balance_start_mv) },
};

#define JK02_SETTINGS_U32_COUNT (sizeof(jk02_settings_u32) / sizeof(jk02_settings_u32[0]))

enum {
	JK02_SET_CELL_COUNT = 114,	/* byte 114 is enough */
	JK02_SET_CHARGING = 118,
	JK02_SET_DISCHARGING = 122,
	JK02_SET_BALANCER = 126,
	JK02_SET_WIRE_RES_24S = 158,	/* 24 x u32 mΩ */
	JK02_SET_WIRE_RES_32S = 142,	/* 32 x u32 mΩ */
	/* JK02_32S only */
	JK02_SET_DEVICE_ADDRESS = 270,
	JK02_SET_PRECHARGE_TIME = 274,
	JK02_SET_CONTROLS = 282,	/* u16 bitmask */
	JK02_SET_HEATING_START = 284,	/* int8 °C */
	JK02_SET_HEATING_STOP = 285,
	JK02_SET_SMART_SLEEP_H = 286,
	JK02_SET_DISCHARGE_UTP = 296,	/* int8 °C */
	JK02_SET_DISCHARGE_UTPR = 297,
};

/* JK04 settings (esphome decode_jk04_settings_): float32 unless noted. */
enum {
	JK04_SET_CELL_COUNT = 34,	/* u8 */
	JK04_SET_POWER_OFF = 38,
	JK04_SET_VREF = 74,
	JK04_SET_BALANCE_START = 98,
	JK04_SET_BALANCE_TRIGGER = 106,
	JK04_SET_MAX_BALANCE_CURRENT = 110,
	JK04_SET_BALANCER = 114,	/* u8 */
};

/* Device info, every layout (jkbms-ble.md §4.5): offset and size. */
enum {
	JK_DEV_MODEL = 6, JK_DEV_MODEL_LEN = 16,
	JK_DEV_HW = 22, JK_DEV_HW_LEN = 8,
	JK_DEV_SW = 30, JK_DEV_SW_LEN = 8,
	JK_DEV_UPTIME = 38,		/* u32 s */
	JK_DEV_POWER_ON = 42,		/* u32 */
	JK_DEV_NAME = 46, JK_DEV_NAME_LEN = 16,
	JK_DEV_DATE = 78, JK_DEV_DATE_LEN = 8,
	JK_DEV_SERIAL = 86, JK_DEV_SERIAL_LEN = 16,	/* up to 16 on newer units */
	JK_DEV_USER = 102, JK_DEV_USER_LEN = 16,
	/* 62, 97 and 118 hold the app's passcodes: deliberately not decoded. */
};

#endif
