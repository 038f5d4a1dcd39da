/*
 * jk_json — decoded frames as jansson objects, with the field names that
 * `jkbms decode` prints (see jk_json.h).  Keys are inserted in a fixed order
 * so that output is stable and diffable.
 */
#include "jk_json.h"

static void set_int(json_t *o, const char *key, json_int_t v)
{
	json_object_set_new(o, key, json_integer(v));
}

static void set_bool(json_t *o, const char *key, bool v)
{
	json_object_set_new(o, key, json_boolean(v));
}

static void set_str(json_t *o, const char *key, const char *v)
{
	json_object_set_new(o, key, json_string(v));
}

static json_t *header(const char *type, enum jk_protocol proto)
{
	json_t *o = json_object();

	set_str(o, "type", type);
	set_str(o, "protocol", jk_protocol_name(proto));
	return o;
}

static json_t *cells_array(const uint16_t *v, uint32_t mask, unsigned max)
{
	json_t *a = json_array();

	for (unsigned i = 0; i < max; i++)
		if (mask & 1u << i)
			json_array_append_new(a, json_integer(v[i]));
	return a;
}

static json_t *temps_array(const struct jk_sample *s)
{
	json_t *a = json_array();

	for (unsigned i = 0; i < s->temp_count; i++)
		json_array_append_new(a, s->temps_dc[i] == JK_TEMP_ABSENT_DC ?
					 json_null() : json_integer(s->temps_dc[i]));
	return a;
}

static void sample_cells(json_t *o, const struct jk_sample *s)
{
	set_int(o, "cell_count", s->cell_count);
	json_object_set_new(o, "cells_mv", cells_array(s->cells_mv, s->cell_mask, JK_MAX_CELLS));
	if (s->has & JK_HAS_CELL_RES)
		json_object_set_new(o, "cell_res_mohm",
				    cells_array(s->cell_res_mohm, s->cell_mask, JK_MAX_CELLS));
	set_int(o, "cell_avg_mv", s->cell_avg_mv);
	set_int(o, "cell_delta_mv", s->cell_delta_mv);
	set_int(o, "cell_max_index", s->cell_max_index);
	set_int(o, "cell_min_index", s->cell_min_index);
	set_int(o, "voltage_mv", s->voltage_mv);
}

static void sample_pack(json_t *o, const struct jk_sample *s)
{
	if (s->has & JK_HAS_CURRENT) {
		set_int(o, "current_ma", s->current_ma);
		set_int(o, "power_mw", s->power_mw);
	}
	if (s->has & JK_HAS_SOC) {
		set_int(o, "soc_pct", s->soc_pct);
		set_int(o, "remaining_mah", s->remaining_mah);
		set_int(o, "capacity_mah", s->capacity_mah);
	}
	if (s->has & JK_HAS_SOH)
		set_int(o, "soh_pct", s->soh_pct);
	if (s->has & JK_HAS_CYCLES) {
		set_int(o, "cycles", s->cycles);
		set_int(o, "cycle_capacity_mah", s->cycle_capacity_mah);
	}
	if (s->has & JK_HAS_TEMPS) {
		json_object_set_new(o, "temps_dc", temps_array(s));
		set_int(o, "temp_presence", s->temp_presence);
	}
	if (s->has & JK_HAS_MOS_TEMP)
		set_int(o, "mos_temp_dc", s->mos_temp_dc);
	if (s->has & JK_HAS_ERRORS) {
		set_int(o, "errors", s->errors);
		set_int(o, "wire_res_warnings", s->wire_res_warnings);
	}
}

static void sample_state(json_t *o, const struct jk_sample *s)
{
	set_int(o, "balance_current_ma", s->balance_current_ma);
	set_int(o, "balancing", s->balancing);
	if (s->has & JK_HAS_MOSFETS) {
		set_bool(o, "charging_enabled", s->charging_enabled);
		set_bool(o, "discharging_enabled", s->discharging_enabled);
	}
	if (s->has & JK_HAS_PRECHARGE) {
		set_bool(o, "precharging", s->precharging);
		set_bool(o, "balancer_working", s->balancer_working);
	}
	if (s->has & JK_HAS_HEATING)
		set_bool(o, "heating", s->heating);
	if (s->has & JK_HAS_EMERGENCY)
		set_int(o, "emergency_countdown_s", s->emergency_countdown_s);
	if (s->has & JK_HAS_CHARGE_STATUS) {
		set_int(o, "battery_type", s->battery_type);
		set_int(o, "charge_status", s->charge_status);
		set_int(o, "charge_status_time_s", s->charge_status_time_s);
	}
	set_int(o, "uptime_s", s->uptime_s);
	set_int(o, "counter", s->counter);
}

json_t *jk_json_sample(const struct jk_sample *s)
{
	json_t *o = header("cell_info", s->protocol);

	sample_cells(o, s);
	sample_pack(o, s);
	sample_state(o, s);
	return o;
}

static void settings_jk02(json_t *o, const struct jk_settings *s)
{
	const struct {
		const char *key;
		json_int_t value;
	} ints[] = {
		{ "smart_sleep_mv", s->smart_sleep_mv },
		{ "cell_uvp_mv", s->cell_uvp_mv }, { "cell_uvpr_mv", s->cell_uvpr_mv },
		{ "cell_ovp_mv", s->cell_ovp_mv }, { "cell_ovpr_mv", s->cell_ovpr_mv },
		{ "balance_trigger_mv", s->balance_trigger_mv },
		{ "soc100_mv", s->soc100_mv }, { "soc0_mv", s->soc0_mv },
		{ "rcv_mv", s->rcv_mv }, { "rfv_mv", s->rfv_mv },
		{ "power_off_mv", s->power_off_mv },
		{ "max_charge_current_ma", s->max_charge_current_ma },
		{ "charge_ocp_delay_s", s->charge_ocp_delay_s },
		{ "charge_ocp_recovery_s", s->charge_ocp_recovery_s },
		{ "max_discharge_current_ma", s->max_discharge_current_ma },
		{ "discharge_ocp_delay_s", s->discharge_ocp_delay_s },
		{ "discharge_ocp_recovery_s", s->discharge_ocp_recovery_s },
		{ "scp_recovery_s", s->scp_recovery_s },
		{ "max_balance_current_ma", s->max_balance_current_ma },
		{ "charge_otp_dc", s->charge_otp_dc }, { "charge_otpr_dc", s->charge_otpr_dc },
		{ "discharge_otp_dc", s->discharge_otp_dc },
		{ "discharge_otpr_dc", s->discharge_otpr_dc },
		{ "charge_utp_dc", s->charge_utp_dc }, { "charge_utpr_dc", s->charge_utpr_dc },
		{ "mos_otp_dc", s->mos_otp_dc }, { "mos_otpr_dc", s->mos_otpr_dc },
		{ "capacity_mah", s->capacity_mah },
		{ "scp_delay_us", s->scp_delay_us },
		{ "balance_start_mv", s->balance_start_mv },
	};
	json_t *wires = json_array();

	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
		set_int(o, ints[i].key, ints[i].value);
	set_bool(o, "charging_switch", s->charging_switch);
	set_bool(o, "discharging_switch", s->discharging_switch);
	for (unsigned i = 0; i < s->wire_res_count; i++)
		json_array_append_new(wires, json_integer(s->wire_res_mohm[i]));
	json_object_set_new(o, "wire_res_mohm", wires);
	if (s->protocol != JK_PROTO_JK02_32S)
		return;
	set_int(o, "device_address", s->device_address);
	set_int(o, "precharge_time_s", s->precharge_time_s);
	set_int(o, "controls", s->controls);
	set_int(o, "heating_start_c", s->heating_start_c);
	set_int(o, "heating_stop_c", s->heating_stop_c);
	set_int(o, "smart_sleep_h", s->smart_sleep_h);
	set_int(o, "discharge_utp_c", s->discharge_utp_c);
	set_int(o, "discharge_utpr_c", s->discharge_utpr_c);
}

static void settings_jk04(json_t *o, const struct jk_settings *s)
{
	set_int(o, "power_off_mv", s->jk04_power_off_mv);
	set_int(o, "vref_mv", s->jk04_vref_mv);
	set_int(o, "balance_start_mv", s->jk04_balance_start_mv);
	set_int(o, "balance_trigger_mv", s->jk04_balance_trigger_mv);
	set_int(o, "max_balance_current_ma", s->jk04_max_balance_current_ma);
}

json_t *jk_json_settings(const struct jk_settings *s)
{
	json_t *o = header("settings", s->protocol);

	set_int(o, "cell_count", s->cell_count);
	set_bool(o, "balancer_switch", s->balancer_switch);
	if (s->protocol == JK_PROTO_JK04)
		settings_jk04(o, s);
	else
		settings_jk02(o, s);
	return o;
}

json_t *jk_json_device_info(const struct jk_device_info *d, enum jk_protocol proto)
{
	json_t *o = header("device_info", proto);

	set_str(o, "model", d->model);
	set_str(o, "hw_version", d->hw_version);
	set_str(o, "sw_version", d->sw_version);
	set_str(o, "serial", d->serial);
	set_str(o, "name", d->name);
	set_str(o, "manufacturing_date", d->manufacturing_date);
	set_str(o, "user_data", d->user_data);
	set_int(o, "uptime_s", d->uptime_s);
	set_int(o, "power_on_count", d->power_on_count);
	return o;
}

json_t *jk_json_logbook(const struct jk_logbook *l)
{
	json_t *o = header("logbook", JK_PROTO_JK02_32S);
	json_t *entries = json_array();

	set_int(o, "entry_count", l->entry_count);
	for (unsigned i = 0; i < l->n; i++)
		json_array_append_new(entries, json_pack("{s:I, s:i}", "time_s",
							 (json_int_t)l->entries[i].time_s,
							 "code", l->entries[i].code));
	json_object_set_new(o, "entries", entries);
	return o;
}

json_t *jk_json_frame(const uint8_t frame[JK_FRAME_LEN], enum jk_protocol proto)
{
	union {
		struct jk_sample sample;
		struct jk_settings settings;
		struct jk_device_info info;
		struct jk_logbook logbook;
	} u;

	switch (jk_frame_type(frame)) {
	case JK_FRAME_CELL_INFO:
		return jk_decode_cell_info(frame, proto, &u.sample) ? NULL : jk_json_sample(&u.sample);
	case JK_FRAME_SETTINGS:
		return jk_decode_settings(frame, proto, &u.settings) ? NULL :
		       jk_json_settings(&u.settings);
	case JK_FRAME_DEVICE_INFO:
		jk_decode_device_info(frame, &u.info);
		return jk_json_device_info(&u.info, proto);
	case JK_FRAME_LOGBOOK:
		jk_decode_logbook(frame, &u.logbook);
		return jk_json_logbook(&u.logbook);
	}
	return NULL;
}

bool jk_json_print_frame(FILE *to, const uint8_t frame[JK_FRAME_LEN], enum jk_protocol proto)
{
	json_t *o = jk_json_frame(frame, proto);

	if (!o)
		return false;
	json_dumpf(o, to, JSON_COMPACT);
	fputc('\n', to);
	json_decref(o);
	return true;
}
