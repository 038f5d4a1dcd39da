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
#include <stddef.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#include "jk_decode.h"
#include "jk_layout.h"

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

/* The offset tables are in jk_layout.h, shared with the encoder. */

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

static void decode_jk04_cell_info(const uint8_t *f, struct jk_sample *s)
{
	double volts = 0;

	s->cell_mask = u32_at(f, JK04_CELL_MASK) & ((1u << JK04_MAX_CELLS) - 1);
	for (unsigned i = 0; i < JK04_MAX_CELLS; i++) {
		if (!(s->cell_mask & 1u << i))
			continue;
		s->cells_mv[i] = (uint16_t)f32_milli(f, JK04_CELLS + 4 * i, 0, UINT16_MAX);
		s->cell_res_mohm[i] = (uint16_t)f32_milli(f, JK04_CELL_RES + 4 * i, 0, UINT16_MAX);
		volts += s->cells_mv[i] == UINT16_MAX ? 65.535 : fmax(f32_at(f, JK04_CELLS + 4 * i), 0);
		s->cell_count++;
	}
	/* The pack voltage is the sum of the float cells, rounded once (esphome). */
	s->voltage_mv = (uint32_t)lround(volts * 1000.0);
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

/* JK02 settings: the u32 table of jk_layout.h plus a few bytes. */
static void decode_jk02_settings(const uint8_t *f, enum jk_protocol proto, struct jk_settings *s)
{
	bool is32 = proto == JK_PROTO_JK02_32S;
	unsigned wire_res = is32 ? JK02_SET_WIRE_RES_32S : JK02_SET_WIRE_RES_24S;

	for (size_t i = 0; i < JK02_SETTINGS_U32_COUNT; i++) {
		uint32_t v = u32_at(f, jk02_settings_u32[i].off);

		memcpy((char *)s + jk02_settings_u32[i].field, &v, sizeof(v));
	}
	s->cell_count = f[JK02_SET_CELL_COUNT];
	s->charging_switch = f[JK02_SET_CHARGING] != 0;
	s->discharging_switch = f[JK02_SET_DISCHARGING] != 0;
	s->balancer_switch = f[JK02_SET_BALANCER] != 0;
	s->wire_res_count = is32 ? 32 : 24;
	for (unsigned i = 0; i < s->wire_res_count; i++)
		s->wire_res_mohm[i] = u32_at(f, wire_res + 4 * i);
	if (!is32)
		return;
	s->device_address = f[JK02_SET_DEVICE_ADDRESS];
	s->precharge_time_s = f[JK02_SET_PRECHARGE_TIME];
	s->controls = u16_at(f, JK02_SET_CONTROLS);
	s->heating_start_c = (int8_t)f[JK02_SET_HEATING_START];
	s->heating_stop_c = (int8_t)f[JK02_SET_HEATING_STOP];
	s->smart_sleep_h = f[JK02_SET_SMART_SLEEP_H];
	s->discharge_utp_c = (int8_t)f[JK02_SET_DISCHARGE_UTP];
	s->discharge_utpr_c = (int8_t)f[JK02_SET_DISCHARGE_UTPR];
}

/* JK04 settings (esphome decode_jk04_settings_): float32 unless noted. */
static void decode_jk04_settings(const uint8_t *f, struct jk_settings *s)
{
	s->cell_count = f[JK04_SET_CELL_COUNT];
	s->jk04_power_off_mv = (uint32_t)f32_milli(f, JK04_SET_POWER_OFF, 0, 1000000);
	s->jk04_vref_mv = (uint32_t)f32_milli(f, JK04_SET_VREF, 0, 1000000);
	s->jk04_balance_start_mv = (uint32_t)f32_milli(f, JK04_SET_BALANCE_START, 0, 1000000);
	s->jk04_balance_trigger_mv = (uint32_t)f32_milli(f, JK04_SET_BALANCE_TRIGGER, 0, 1000000);
	s->jk04_max_balance_current_ma = (uint32_t)f32_milli(f, JK04_SET_MAX_BALANCE_CURRENT, 0, 1000000);
	s->balancer_switch = f[JK04_SET_BALANCER] != 0;
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
	copy_field(out->model, frame, JK_DEV_MODEL, JK_DEV_MODEL_LEN);
	copy_field(out->hw_version, frame, JK_DEV_HW, JK_DEV_HW_LEN);
	copy_field(out->sw_version, frame, JK_DEV_SW, JK_DEV_SW_LEN);
	out->uptime_s = u32_at(frame, JK_DEV_UPTIME);
	out->power_on_count = u32_at(frame, JK_DEV_POWER_ON);
	copy_field(out->name, frame, JK_DEV_NAME, JK_DEV_NAME_LEN);
	copy_field(out->manufacturing_date, frame, JK_DEV_DATE, JK_DEV_DATE_LEN);
	copy_field(out->serial, frame, JK_DEV_SERIAL, JK_DEV_SERIAL_LEN);
	copy_field(out->user_data, frame, JK_DEV_USER, JK_DEV_USER_LEN);
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
