/*
 * jk_decode — JK-BMS frame payloads to structs.
 *
 * Offsets are absolute positions in the 300-byte frame, little-endian, as in
 * jkbms-ble.md §4 (sources: esphome-jk-bms decode_jk02_cell_info_ /
 * decode_jk04_cell_info_ / decode_device_info_, aiobmsble jikong_bms.py,
 * batmon-ha jikong.py, checked there against real frames).  The two JK02
 * layouts are one table with a column each: JK02_32S moves the block 54–111 by
 * 16 bytes and everything from 112 on by 32 (with a few fields that exist on
 * one layout only).  A zero offset means "not on this layout".
 */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#include "jk_decode.h"

static uint16_t u16_at(const uint8_t *f, unsigned off)
{
	return (uint16_t)(f[off] | f[off + 1] << 8);
}

static uint32_t u32_at(const uint8_t *f, unsigned off)
{
	return (uint32_t)f[off] | (uint32_t)f[off + 1] << 8 |
	       (uint32_t)f[off + 2] << 16 | (uint32_t)f[off + 3] << 24;
}

static int16_t s16_at(const uint8_t *f, unsigned off)
{
	return (int16_t)u16_at(f, off);
}

static int32_t s32_at(const uint8_t *f, unsigned off)
{
	return (int32_t)u32_at(f, off);
}

static float f32_at(const uint8_t *f, unsigned off)
{
	uint32_t bits = u32_at(f, off);
	float v;

	memcpy(&v, &bits, sizeof(v));
	return v;
}

/* A float in base units (V, A, Ω) to a clamped integer in milli-units. */
static long f32_milli(const uint8_t *f, unsigned off, long lo, long hi)
{
	float v = f32_at(f, off) * 1000.0f;

	if (isnan(v))
		return 0;
	if (v <= (float)lo)
		return lo;
	if (v >= (float)hi)
		return hi;
	return lroundf(v);
}

static bool is_cell_mask(uint32_t m)
{
	return m != 0 && (m & (m + 1)) == 0;
}

/* ---------------------------------------------------------------- JK02 */

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

static void decode_jk02_cells(const uint8_t *f, const struct jk02_layout *l, struct jk_sample *s)
{
	s->cell_mask = u32_at(f, l->cell_mask);
	if (l->max_cells < 32)
		s->cell_mask &= (1u << l->max_cells) - 1;
	for (unsigned i = 0; i < l->max_cells; i++) {
		if (!(s->cell_mask & 1u << i))
			continue;
		s->cells_mv[i] = u16_at(f, 6 + 2 * i);
		s->cell_res_mohm[i] = u16_at(f, l->cell_res + 2 * i);
		s->cell_count++;
	}
	s->cell_avg_mv = u16_at(f, l->cell_avg);
	s->cell_delta_mv = u16_at(f, l->cell_delta);
	s->cell_max_index = f[l->cell_max_idx];
	s->cell_min_index = f[l->cell_min_idx];
}

static void decode_jk02_temps(const uint8_t *f, const struct jk02_layout *l, struct jk_sample *s)
{
	s->temps_dc[s->temp_count++] = s16_at(f, l->temp1);
	s->temps_dc[s->temp_count++] = s16_at(f, l->temp2);
	for (unsigned i = 0; i < 3 && l->extra_temps[i]; i++)
		s->temps_dc[s->temp_count++] = s16_at(f, l->extra_temps[i]);
	s->temp_presence = f[l->temp_presence];
	s->mos_temp_dc = s16_at(f, l->mos_temp);
}

static void decode_jk02_32s_extras(const uint8_t *f, const struct jk02_layout *l, struct jk_sample *s)
{
	s->precharging = f[l->precharging] != 0;
	s->balancer_working = f[l->balancer_working] != 0;
	s->heating = f[l->heating] != 0;
	s->emergency_countdown_s = u16_at(f, l->emergency);
	s->battery_type = f[l->battery_type];
	s->charge_status_time_s = u16_at(f, l->charge_status_time);
	s->charge_status = f[l->charge_status];
	s->has |= JK_HAS_PRECHARGE | JK_HAS_HEATING | JK_HAS_EMERGENCY | JK_HAS_CHARGE_STATUS;
}

static void decode_jk02_cell_info(const uint8_t *f, const struct jk02_layout *l, struct jk_sample *s)
{
	decode_jk02_cells(f, l, s);
	decode_jk02_temps(f, l, s);
	s->voltage_mv = u32_at(f, l->voltage);
	s->power_mw = u32_at(f, l->power);
	s->current_ma = s32_at(f, l->current);
	s->errors = l->errors_size == 4 ? u32_at(f, l->errors) : u16_at(f, l->errors);
	s->wire_res_warnings = u32_at(f, l->wire_warn);
	s->balance_current_ma = s16_at(f, l->balance_current);
	s->balancing = (enum jk_balancing)f[l->balancing];
	s->soc_pct = f[l->soc];
	s->remaining_mah = u32_at(f, l->remaining);
	s->capacity_mah = u32_at(f, l->capacity);
	s->cycles = u32_at(f, l->cycles);
	s->cycle_capacity_mah = u32_at(f, l->cycle_capacity);
	s->soh_pct = f[l->soh];
	s->uptime_s = u32_at(f, l->uptime);
	s->charging_enabled = f[l->chg_mos] != 0;
	s->discharging_enabled = f[l->dsg_mos] != 0;
	s->has = JK_HAS_CURRENT | JK_HAS_SOC | JK_HAS_CYCLES | JK_HAS_SOH | JK_HAS_TEMPS |
		 JK_HAS_MOS_TEMP | JK_HAS_ERRORS | JK_HAS_MOSFETS | JK_HAS_CELL_RES;
	if (l->precharging)
		decode_jk02_32s_extras(f, l, s);
}

/* ---------------------------------------------------------------- JK04 */

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

static void decode_jk04_cell_info(const uint8_t *f, struct jk_sample *s)
{
	s->cell_mask = u32_at(f, JK04_CELL_MASK) & ((1u << JK04_MAX_CELLS) - 1);
	for (unsigned i = 0; i < JK04_MAX_CELLS; i++) {
		if (!(s->cell_mask & 1u << i))
			continue;
		s->cells_mv[i] = (uint16_t)f32_milli(f, JK04_CELLS + 4 * i, 0, UINT16_MAX);
		s->cell_res_mohm[i] = (uint16_t)f32_milli(f, JK04_CELL_RES + 4 * i, 0, UINT16_MAX);
		s->voltage_mv += s->cells_mv[i];	/* the pack voltage is the cell sum (esphome) */
		s->cell_count++;
	}
	s->cell_avg_mv = (uint16_t)f32_milli(f, JK04_CELL_AVG, 0, UINT16_MAX);
	s->cell_delta_mv = (uint16_t)f32_milli(f, JK04_CELL_DELTA, 0, UINT16_MAX);
	s->cell_max_index = f[JK04_CELL_MAX_IDX];
	s->cell_min_index = f[JK04_CELL_MIN_IDX];
	s->balancing = (enum jk_balancing)f[JK04_BALANCING];
	s->balance_current_ma = (int32_t)f32_milli(f, JK04_BALANCE_CURRENT, -1000000, 1000000);
	s->uptime_s = u32_at(f, JK04_UPTIME);
	s->has = JK_HAS_CELL_RES;
}

int jk_decode_cell_info(const uint8_t frame[JK_FRAME_LEN], enum jk_protocol proto,
			struct jk_sample *out)
{
	if (jk_frame_type(frame) != JK_FRAME_CELL_INFO)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->protocol = proto;
	out->counter = frame[5];
	switch (proto) {
	case JK_PROTO_JK02_24S:
		decode_jk02_cell_info(frame, &layout_24s, out);
		return 0;
	case JK_PROTO_JK02_32S:
		decode_jk02_cell_info(frame, &layout_32s, out);
		return 0;
	case JK_PROTO_JK04:
		decode_jk04_cell_info(frame, out);
		return 0;
	default:
		return -EPROTONOSUPPORT;
	}
}

/* ------------------------------------------------------------ settings */

/* JK02 settings: u32 at 6 + 4 * (register - 1) (jkbms-ble.md §2.3, §4.4). */
static void decode_jk02_settings(const uint8_t *f, enum jk_protocol proto, struct jk_settings *s)
{
	bool is32 = proto == JK_PROTO_JK02_32S;
	unsigned wire_res = is32 ? 142 : 158;

	s->smart_sleep_mv = u32_at(f, 6);
	s->cell_uvp_mv = u32_at(f, 10);
	s->cell_uvpr_mv = u32_at(f, 14);
	s->cell_ovp_mv = u32_at(f, 18);
	s->cell_ovpr_mv = u32_at(f, 22);
	s->balance_trigger_mv = u32_at(f, 26);
	s->soc100_mv = u32_at(f, 30);
	s->soc0_mv = u32_at(f, 34);
	s->rcv_mv = u32_at(f, 38);
	s->rfv_mv = u32_at(f, 42);
	s->power_off_mv = u32_at(f, 46);
	s->max_charge_current_ma = u32_at(f, 50);
	s->charge_ocp_delay_s = u32_at(f, 54);
	s->charge_ocp_recovery_s = u32_at(f, 58);
	s->max_discharge_current_ma = u32_at(f, 62);
	s->discharge_ocp_delay_s = u32_at(f, 66);
	s->discharge_ocp_recovery_s = u32_at(f, 70);
	s->scp_recovery_s = u32_at(f, 74);
	s->max_balance_current_ma = u32_at(f, 78);
	s->charge_otp_dc = s32_at(f, 82);
	s->charge_otpr_dc = s32_at(f, 86);
	s->discharge_otp_dc = s32_at(f, 90);
	s->discharge_otpr_dc = s32_at(f, 94);
	s->charge_utp_dc = s32_at(f, 98);
	s->charge_utpr_dc = s32_at(f, 102);
	s->mos_otp_dc = s32_at(f, 106);
	s->mos_otpr_dc = s32_at(f, 110);
	s->cell_count = f[114];
	s->charging_switch = f[118] != 0;
	s->discharging_switch = f[122] != 0;
	s->balancer_switch = f[126] != 0;
	s->capacity_mah = u32_at(f, 130);
	s->scp_delay_us = u32_at(f, 134);
	s->balance_start_mv = u32_at(f, 138);
	s->wire_res_count = is32 ? 32 : 24;
	for (unsigned i = 0; i < s->wire_res_count; i++)
		s->wire_res_mohm[i] = u32_at(f, wire_res + 4 * i);
	if (!is32)
		return;
	s->device_address = f[270];
	s->precharge_time_s = f[274];
	s->controls = u16_at(f, 282);
	s->heating_start_c = (int8_t)f[284];
	s->heating_stop_c = (int8_t)f[285];
	s->smart_sleep_h = f[286];
	s->discharge_utp_c = (int8_t)f[296];
	s->discharge_utpr_c = (int8_t)f[297];
}

/* JK04 settings (esphome decode_jk04_settings_): float32 unless noted. */
static void decode_jk04_settings(const uint8_t *f, struct jk_settings *s)
{
	s->cell_count = f[34];
	s->jk04_power_off_mv = (uint32_t)f32_milli(f, 38, 0, 1000000);
	s->jk04_vref_mv = (uint32_t)f32_milli(f, 74, 0, 1000000);
	s->jk04_balance_start_mv = (uint32_t)f32_milli(f, 98, 0, 1000000);
	s->jk04_balance_trigger_mv = (uint32_t)f32_milli(f, 106, 0, 1000000);
	s->jk04_max_balance_current_ma = (uint32_t)f32_milli(f, 110, 0, 1000000);
	s->balancer_switch = f[114] != 0;
}

int jk_decode_settings(const uint8_t frame[JK_FRAME_LEN], enum jk_protocol proto,
		       struct jk_settings *out)
{
	if (jk_frame_type(frame) != JK_FRAME_SETTINGS)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->protocol = proto;
	switch (proto) {
	case JK_PROTO_JK02_24S:
	case JK_PROTO_JK02_32S:
		decode_jk02_settings(frame, proto, out);
		return 0;
	case JK_PROTO_JK04:
		decode_jk04_settings(frame, out);
		return 0;
	default:
		return -EPROTONOSUPPORT;
	}
}

/* --------------------------------------------------------- device info */

/*
 * A NUL-padded ASCII field.  It ends at the first NUL or control byte (one
 * 19.27 unit has 0x10 in the model's last byte); other bytes outside
 * printable ASCII become '?', so the result is safe in logs, JSON and MQTT.
 */
static void copy_field(char *dst, const uint8_t *f, unsigned off, unsigned size)
{
	unsigned i;

	for (i = 0; i < size && i < JK_STR_MAX - 1 && f[off + i] >= 0x20; i++)
		dst[i] = f[off + i] < 0x7F ? (char)f[off + i] : '?';
	dst[i] = '\0';
}

int jk_decode_device_info(const uint8_t frame[JK_FRAME_LEN], struct jk_device_info *out)
{
	if (jk_frame_type(frame) != JK_FRAME_DEVICE_INFO)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	copy_field(out->model, frame, 6, 16);
	copy_field(out->hw_version, frame, 22, 8);
	copy_field(out->sw_version, frame, 30, 8);
	out->uptime_s = u32_at(frame, 38);
	out->power_on_count = u32_at(frame, 42);
	copy_field(out->name, frame, 46, 16);
	/* 62 and 97/118 hold the app's passcodes: deliberately not decoded. */
	copy_field(out->manufacturing_date, frame, 78, 8);
	copy_field(out->serial, frame, 86, 16);	/* up to 16 chars on newer units */
	copy_field(out->user_data, frame, 102, 16);
	return 0;
}

/* ------------------------------------------------------------- logbook */

int jk_decode_logbook(const uint8_t frame[JK_FRAME_LEN], struct jk_logbook *out)
{
	if (jk_frame_type(frame) != JK_FRAME_LOGBOOK)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->entry_count = u32_at(frame, 6);
	out->n = out->entry_count < JK_LOGBOOK_MAX ? (uint8_t)out->entry_count : JK_LOGBOOK_MAX;
	for (unsigned i = 0; i < out->n; i++) {
		out->entries[i].time_s = u32_at(frame, 11 + 5 * i);
		out->entries[i].code = frame[11 + 5 * i + 4];
	}
	return 0;
}

/* ----------------------------------------------------------- detection */

/* The leading number of a version string ("11.48", "V19.05", "15A"). */
static int version_major(const char *v)
{
	int major = 0;
	bool digits = false;

	if (*v == 'V' || *v == 'v')
		v++;
	for (; *v >= '0' && *v <= '9' && major < 1000; v++, digits = true)
		major = major * 10 + (*v - '0');
	return digits ? major : -1;
}

enum jk_protocol jk_detect_from_device_info(const struct jk_device_info *info)
{
	int sw = version_major(info->sw_version);
	int hw = version_major(info->hw_version);

	if (sw >= 11)
		return JK_PROTO_JK02_32S;
	if (strstr(info->model, "B5A24S"))	/* hw 8.x active balancer speaks JK04 (esphome README) */
		return JK_PROTO_JK04;
	if (hw >= 0 && hw <= 3)
		return JK_PROTO_JK04;
	if (sw >= 0)
		return JK_PROTO_JK02_24S;
	return JK_PROTO_UNKNOWN;
}

static bool looks_like_jk04(const uint8_t *f)
{
	/* The high byte of a float near 1.0–3.9 (cell volts, or 1.0 at settings 6). */
	return f[9] == 0x40 || f[9] == 0x3F;
}

static enum jk_protocol detect_cell_info(const uint8_t *f)
{
	bool mask24 = is_cell_mask(u32_at(f, 54));
	bool mask32 = is_cell_mask(u32_at(f, 70));

	if (looks_like_jk04(f))
		return JK_PROTO_JK04;
	if (mask32 && !mask24)
		return JK_PROTO_JK02_32S;
	return JK_PROTO_JK02_24S;
}

static enum jk_protocol detect_settings(const uint8_t *f)
{
	if (looks_like_jk04(f))
		return JK_PROTO_JK04;
	/* Bytes 270–298 are unused on 24S; 32S keeps its address and controls there. */
	for (unsigned i = 270; i < JK_FRAME_LEN - 1; i++)
		if (f[i])
			return JK_PROTO_JK02_32S;
	return JK_PROTO_JK02_24S;
}

enum jk_protocol jk_detect_from_frame(const uint8_t frame[JK_FRAME_LEN])
{
	switch (jk_frame_type(frame)) {
	case JK_FRAME_CELL_INFO:
		return detect_cell_info(frame);
	case JK_FRAME_SETTINGS:
		return detect_settings(frame);
	case JK_FRAME_LOGBOOK:
		return JK_PROTO_JK02_32S;
	default:
		return JK_PROTO_UNKNOWN;
	}
}

enum jk_protocol jk_protocol_for_frame(enum jk_protocol configured, enum jk_protocol learned,
				       const uint8_t frame[JK_FRAME_LEN])
{
	enum jk_protocol content;

	if (configured != JK_PROTO_UNKNOWN)
		return configured;
	content = jk_detect_from_frame(frame);
	if (jk_frame_type(frame) == JK_FRAME_SETTINGS && content != JK_PROTO_JK04 &&
	    (learned == JK_PROTO_JK02_24S || learned == JK_PROTO_JK02_32S))
		return learned;
	if (content == JK_PROTO_UNKNOWN)
		return learned;
	return content;
}

static const char *const protocol_names[] = {
	[JK_PROTO_UNKNOWN] = "unknown",
	[JK_PROTO_JK02_24S] = "JK02_24S",
	[JK_PROTO_JK02_32S] = "JK02_32S",
	[JK_PROTO_JK04] = "JK04",
};

const char *jk_protocol_name(enum jk_protocol proto)
{
	if ((unsigned)proto >= sizeof(protocol_names) / sizeof(protocol_names[0]))
		return "unknown";
	return protocol_names[proto];
}

int jk_protocol_parse(const char *s, enum jk_protocol *out)
{
	if (strcasecmp(s, "auto") == 0) {
		*out = JK_PROTO_UNKNOWN;
		return 0;
	}
	for (unsigned i = JK_PROTO_JK02_24S; i <= JK_PROTO_JK04; i++) {
		if (strcasecmp(s, protocol_names[i]) == 0) {
			*out = (enum jk_protocol)i;
			return 0;
		}
	}
	return -EINVAL;
}
