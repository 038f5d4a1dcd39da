/*
 * jk_encode — the frames jk_decode reads, built from its structs.
 */
#include <errno.h>
#include <string.h>

#include "jk_encode.h"
#include "jk_layout.h"

static void put_u16(uint8_t *f, unsigned off, uint16_t v)
{
	f[off] = (uint8_t)v;
	f[off + 1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *f, unsigned off, uint32_t v)
{
	put_u16(f, off, (uint16_t)v);
	put_u16(f, off + 2, (uint16_t)(v >> 16));
}

static void put_f32(uint8_t *f, unsigned off, float v)
{
	uint32_t bits;

	memcpy(&bits, &v, sizeof(bits));
	put_u32(f, off, bits);
}

static void start(uint8_t *f, enum jk_frame_type type, uint8_t counter)
{
	static const uint8_t hdr[4] = { 0x55, 0xAA, 0xEB, 0x90 };

	memset(f, 0, JK_FRAME_LEN);
	memcpy(f, hdr, sizeof(hdr));
	f[4] = (uint8_t)type;
	f[5] = counter;
}

static void finish(uint8_t *f)
{
	f[JK_FRAME_LEN - 1] = jk_sum8(f, JK_FRAME_LEN - 1);
}

static void encode_jk02_cell_info(uint8_t *f, const struct jk02_layout *l, const struct jk_sample *s)
{
	uint32_t mask = l->max_cells < 32 ? s->cell_mask & ((1u << l->max_cells) - 1) : s->cell_mask;

	for (unsigned i = 0; i < l->max_cells; i++) {
		if (!(mask & 1u << i))
			continue;
		put_u16(f, 6 + 2 * i, s->cells_mv[i]);
		put_u16(f, l->cell_res + 2 * i, s->cell_res_mohm[i]);
	}
	put_u32(f, l->cell_mask, mask);
	put_u16(f, l->cell_avg, s->cell_avg_mv);
	put_u16(f, l->cell_delta, s->cell_delta_mv);
	f[l->cell_max_idx] = s->cell_max_index;
	f[l->cell_min_idx] = s->cell_min_index;
	put_u16(f, l->mos_temp, (uint16_t)s->mos_temp_dc);
	put_u32(f, l->wire_warn, s->wire_res_warnings);
	put_u32(f, l->voltage, s->voltage_mv);
	put_u32(f, l->power, s->power_mw);
	put_u32(f, l->current, (uint32_t)s->current_ma);
	put_u16(f, l->temp1, (uint16_t)s->temps_dc[0]);
	put_u16(f, l->temp2, (uint16_t)s->temps_dc[1]);
	for (unsigned i = 0; i < 3 && l->extra_temps[i]; i++)
		put_u16(f, l->extra_temps[i], (uint16_t)s->temps_dc[2 + i]);
	if (l->errors_size == 4)
		put_u32(f, l->errors, s->errors);
	else
		put_u16(f, l->errors, (uint16_t)s->errors);
	put_u16(f, l->balance_current, (uint16_t)s->balance_current_ma);
	f[l->balancing] = (uint8_t)s->balancing;
	f[l->soc] = s->soc_pct;
	put_u32(f, l->remaining, s->remaining_mah);
	put_u32(f, l->capacity, s->capacity_mah);
	put_u32(f, l->cycles, s->cycles);
	put_u32(f, l->cycle_capacity, s->cycle_capacity_mah);
	f[l->soh] = s->soh_pct;
	put_u32(f, l->uptime, s->uptime_s);
	f[l->chg_mos] = s->charging_enabled;
	f[l->dsg_mos] = s->discharging_enabled;
	f[l->temp_presence] = s->temp_presence;
	if (!l->precharging)
		return;
	f[l->precharging] = s->precharging;
	f[l->balancer_working] = s->balancer_working;
	f[l->heating] = s->heating;
	put_u16(f, l->emergency, s->emergency_countdown_s);
	f[l->battery_type] = s->battery_type;
	put_u16(f, l->charge_status_time, s->charge_status_time_s);
	f[l->charge_status] = s->charge_status;
}

static void encode_jk04_cell_info(uint8_t *f, const struct jk_sample *s)
{
	uint32_t mask = s->cell_mask & ((1u << JK04_MAX_CELLS) - 1);

	for (unsigned i = 0; i < JK04_MAX_CELLS; i++) {
		if (!(mask & 1u << i))
			continue;
		put_f32(f, JK04_CELLS + 4 * i, s->cells_mv[i] / 1000.0f);
		put_f32(f, JK04_CELL_RES + 4 * i, s->cell_res_mohm[i] / 1000.0f);
	}
	put_f32(f, JK04_CELL_AVG, s->cell_avg_mv / 1000.0f);
	put_f32(f, JK04_CELL_DELTA, s->cell_delta_mv / 1000.0f);
	put_u32(f, JK04_CELL_MASK, mask);
	f[JK04_CELL_MAX_IDX] = s->cell_max_index;
	f[JK04_CELL_MIN_IDX] = s->cell_min_index;
	f[JK04_BALANCING] = (uint8_t)s->balancing;
	put_f32(f, JK04_BALANCE_CURRENT, s->balance_current_ma / 1000.0f);
	put_u32(f, JK04_UPTIME, s->uptime_s);
}

int jk_encode_cell_info(uint8_t frame[JK_FRAME_LEN], const struct jk_sample *s)
{
	start(frame, JK_FRAME_CELL_INFO, s->counter);
	switch (s->protocol) {
	case JK_PROTO_JK02_24S:
		encode_jk02_cell_info(frame, &layout_24s, s);
		break;
	case JK_PROTO_JK02_32S:
		encode_jk02_cell_info(frame, &layout_32s, s);
		break;
	case JK_PROTO_JK04:
		encode_jk04_cell_info(frame, s);
		break;
	default:
		return -EPROTONOSUPPORT;
	}
	finish(frame);
	return 0;
}

static void encode_jk02_settings(uint8_t *f, const struct jk_settings *s)
{
	bool is32 = s->protocol == JK_PROTO_JK02_32S;
	unsigned wire_res = is32 ? JK02_SET_WIRE_RES_32S : JK02_SET_WIRE_RES_24S;
	unsigned nwire = is32 ? 32 : 24;

	for (size_t i = 0; i < JK02_SETTINGS_U32_COUNT; i++) {
		uint32_t v;

		memcpy(&v, (const char *)s + jk02_settings_u32[i].field, sizeof(v));
		put_u32(f, jk02_settings_u32[i].off, v);
	}
	f[JK02_SET_CELL_COUNT] = s->cell_count;
	f[JK02_SET_CHARGING] = s->charging_switch;
	f[JK02_SET_DISCHARGING] = s->discharging_switch;
	f[JK02_SET_BALANCER] = s->balancer_switch;
	for (unsigned i = 0; i < nwire && i < s->wire_res_count; i++)
		put_u32(f, wire_res + 4 * i, s->wire_res_mohm[i]);
	if (!is32)
		return;
	f[JK02_SET_DEVICE_ADDRESS] = s->device_address;
	f[JK02_SET_PRECHARGE_TIME] = s->precharge_time_s;
	put_u16(f, JK02_SET_CONTROLS, s->controls);
	f[JK02_SET_HEATING_START] = (uint8_t)s->heating_start_c;
	f[JK02_SET_HEATING_STOP] = (uint8_t)s->heating_stop_c;
	f[JK02_SET_SMART_SLEEP_H] = s->smart_sleep_h;
	f[JK02_SET_DISCHARGE_UTP] = (uint8_t)s->discharge_utp_c;
	f[JK02_SET_DISCHARGE_UTPR] = (uint8_t)s->discharge_utpr_c;
}

static void encode_jk04_settings(uint8_t *f, const struct jk_settings *s)
{
	put_f32(f, 6, 1.0f);	/* unknown, always 1.0; what tells JK04 settings apart */
	f[JK04_SET_CELL_COUNT] = s->cell_count;
	put_f32(f, JK04_SET_POWER_OFF, s->jk04_power_off_mv / 1000.0f);
	put_f32(f, JK04_SET_VREF, s->jk04_vref_mv / 1000.0f);
	put_f32(f, JK04_SET_BALANCE_START, s->jk04_balance_start_mv / 1000.0f);
	put_f32(f, JK04_SET_BALANCE_TRIGGER, s->jk04_balance_trigger_mv / 1000.0f);
	put_f32(f, JK04_SET_MAX_BALANCE_CURRENT, s->jk04_max_balance_current_ma / 1000.0f);
	f[JK04_SET_BALANCER] = s->balancer_switch;
}

int jk_encode_settings(uint8_t frame[JK_FRAME_LEN], const struct jk_settings *s)
{
	start(frame, JK_FRAME_SETTINGS, 0);
	switch (s->protocol) {
	case JK_PROTO_JK02_24S:
	case JK_PROTO_JK02_32S:
		encode_jk02_settings(frame, s);
		break;
	case JK_PROTO_JK04:
		encode_jk04_settings(frame, s);
		break;
	default:
		return -EPROTONOSUPPORT;
	}
	finish(frame);
	return 0;
}

static void put_str(uint8_t *f, unsigned off, unsigned size, const char *s)
{
	size_t n = strlen(s);

	memcpy(f + off, s, n < size ? n : size);
}

void jk_encode_device_info(uint8_t frame[JK_FRAME_LEN], const struct jk_device_info *d, uint8_t counter)
{
	start(frame, JK_FRAME_DEVICE_INFO, counter);
	put_str(frame, JK_DEV_MODEL, JK_DEV_MODEL_LEN, d->model);
	put_str(frame, JK_DEV_HW, JK_DEV_HW_LEN, d->hw_version);
	put_str(frame, JK_DEV_SW, JK_DEV_SW_LEN, d->sw_version);
	put_u32(frame, JK_DEV_UPTIME, d->uptime_s);
	put_u32(frame, JK_DEV_POWER_ON, d->power_on_count);
	put_str(frame, JK_DEV_NAME, JK_DEV_NAME_LEN, d->name);
	put_str(frame, JK_DEV_DATE, JK_DEV_DATE_LEN, d->manufacturing_date);
	put_str(frame, JK_DEV_SERIAL, JK_DEV_SERIAL_LEN, d->serial);
	put_str(frame, JK_DEV_USER, JK_DEV_USER_LEN, d->user_data);
	finish(frame);
}
