/*
 * bank — per-pack freshness and the virtual battery (see bank.h).
 *
 * Choices where the sources are silent:
 *   - A pack's own limit is 90 % of its BMS's over-current setting (settings
 *     frame, max charge/discharge current), as YamBMS does, so the inverter
 *     never trips one pack's OCP; a pack that sent no settings frame (or a
 *     JK04 balancer, which has none) counts with the pack's configured cap, or an equal share of the battery's
 *     maximum; a configured cap bounds the BMS-derived limit too.
 *   - A pack allows charging when its charge MOSFET is on and its charging
 *     switch (settings) is not off; a JK04 unit has no MOSFET and does not
 *     gate anything.
 *   - Temperatures: T1 and T2, plus the 32S sensors at 256/258 when they
 *     read other than 0 (non-PB 11.x units leave unused slots at 0).  The
 *     slot at 254 is left out: on most units it repeats the MOSFET sensor,
 *     which runs far hotter than the cells.
 */
#include <string.h>

#include "bank.h"

#define PACK_LIMIT_PERCENT 90

/* JK error bit -> alarm class (jkbms-ble.md §4.3; 0 = not an alarm). */
static const uint32_t jk_error_class[32] = {
	[0] = BANK_ALARM_SYSTEM,		/* wire resistance too high */
	[1] = BANK_ALARM_OVER_TEMP,		/* MOSFET over-temperature */
	[2] = BANK_ALARM_SYSTEM,		/* cell count != setting */
	[4] = BANK_ALARM_CELL_OV,		/* cell over-voltage */
	[5] = BANK_ALARM_CELL_OV,		/* pack over-voltage */
	[6] = BANK_ALARM_CHARGE_OC,		/* charge over-current */
	[7] = BANK_ALARM_CHARGE_OC,		/* charge short circuit */
	[8] = BANK_ALARM_OVER_TEMP,		/* charge over-temperature */
	[9] = BANK_ALARM_UNDER_TEMP,		/* charge under-temperature */
	[10] = BANK_ALARM_SYSTEM,		/* coprocessor communication */
	[11] = BANK_ALARM_CELL_UV,		/* cell under-voltage */
	[12] = BANK_ALARM_CELL_UV,		/* pack under-voltage */
	[13] = BANK_ALARM_DISCHARGE_OC,		/* discharge over-current */
	[14] = BANK_ALARM_DISCHARGE_OC,		/* discharge short circuit */
	[15] = BANK_ALARM_OVER_TEMP,		/* discharge over-temperature */
	[16] = BANK_ALARM_SYSTEM,		/* charging MOSFET abnormal */
	[17] = BANK_ALARM_SYSTEM,		/* discharging MOSFET abnormal */
	[20] = BANK_ALARM_SYSTEM,		/* discharge-on failed */
	[21] = BANK_ALARM_OVER_TEMP,		/* battery over-temperature */
	[22] = BANK_ALARM_SYSTEM,		/* temperature sensor anomaly */
	[23] = BANK_ALARM_SYSTEM,		/* parallel module anomaly */
	[24] = BANK_ALARM_SYSTEM,		/* SCP release failed */
	[25] = BANK_ALARM_DISCHARGE_OC,		/* discharge OCP II */
	[26] = BANK_ALARM_DISCHARGE_OC,		/* discharge OCP III */
	[27] = BANK_ALARM_UNDER_TEMP,		/* discharge under-temperature */
	/* 3 unused, 18 GPS disconnected, 19 "modify password", 28 GPS lock:
	 * none of them says anything about the cells. */
};

uint32_t bank_alarms_from_jk(uint32_t jk_errors)
{
	uint32_t classes = 0;

	for (unsigned bit = 0; bit < 32; bit++)
		if (jk_errors & 1u << bit)
			classes |= jk_error_class[bit];
	return classes;
}

void bank_init(struct bank *b, const struct bank_config *cfg, unsigned npacks, uint64_t now_ms)
{
	memset(b, 0, sizeof(*b));
	b->cfg = *cfg;
	b->npacks = npacks < BANK_MAX_PACKS ? npacks : BANK_MAX_PACKS;
	b->start_ms = now_ms;
}

void bank_set_sample(struct bank *b, unsigned pack, const struct jk_sample *s, uint64_t now_ms)
{
	if (pack >= b->npacks)
		return;
	b->packs[pack].sample = *s;
	b->packs[pack].sample_ms = now_ms;
	b->packs[pack].have_sample = true;
	b->packs[pack].offline = false;
}

void bank_set_settings(struct bank *b, unsigned pack, const struct jk_settings *s)
{
	if (pack >= b->npacks)
		return;
	b->packs[pack].settings = *s;
	b->packs[pack].have_settings = true;
}

bool bank_pack_fresh(const struct bank *b, unsigned pack, uint64_t now_ms)
{
	const struct bank_pack *p = &b->packs[pack];

	return pack < b->npacks && p->have_sample && now_ms >= p->sample_ms &&
	       now_ms - p->sample_ms <= b->cfg.stale_after_ms;
}

/* Rule 1: every pack reported, or the start-up timeout declared it offline. */
static void advance_startup(struct bank *b, uint64_t now_ms)
{
	bool all = true;

	if (b->started)
		return;
	for (unsigned i = 0; i < b->npacks; i++)
		all &= b->packs[i].have_sample;
	if (!all && (now_ms < b->start_ms || now_ms - b->start_ms < b->cfg.startup_timeout_ms))
		return;
	for (unsigned i = 0; i < b->npacks; i++)
		b->packs[i].offline = !b->packs[i].have_sample;
	b->started = true;
}

static void add_cells(struct battery *bat, const struct jk_sample *s, unsigned pack)
{
	for (unsigned i = 0; i < JK_MAX_CELLS; i++) {
		if (!(s->cell_mask & 1u << i))
			continue;
		if (!bat->cell_min_mv || s->cells_mv[i] < bat->cell_min_mv) {
			bat->cell_min_mv = s->cells_mv[i];
			bat->cell_min_at = (struct bank_where){ .pack = pack, .index = i };
		}
		if (s->cells_mv[i] > bat->cell_max_mv) {
			bat->cell_max_mv = s->cells_mv[i];
			bat->cell_max_at = (struct bank_where){ .pack = pack, .index = i };
		}
	}
	if (s->cell_count > bat->cells_per_pack_max)
		bat->cells_per_pack_max = s->cell_count;
	if (s->cell_count && (!bat->cells_per_pack_min || s->cell_count < bat->cells_per_pack_min))
		bat->cells_per_pack_min = s->cell_count;
}

static bool temp_usable(const struct jk_sample *s, unsigned i)
{
	int16_t t = s->temps_dc[i];

	if (t == JK_TEMP_ABSENT_DC)
		return false;
	if (i < 2)
		return true;
	return i >= 3 && t != 0;	/* see the file comment */
}

static void add_temps(struct battery *bat, const struct jk_sample *s, unsigned pack)
{
	if (s->has & JK_HAS_MOS_TEMP) {
		if (!bat->have_mos_temp || s->mos_temp_dc > bat->mos_temp_max_dc)
			bat->mos_temp_max_dc = s->mos_temp_dc;
		bat->have_mos_temp = true;
	}
	if (!(s->has & JK_HAS_TEMPS))
		return;
	for (unsigned i = 0; i < s->temp_count; i++) {
		int16_t t = s->temps_dc[i];

		if (!temp_usable(s, i))
			continue;
		if (!bat->have_temps || t < bat->temp_min_dc) {
			bat->temp_min_dc = t;
			bat->temp_min_at = (struct bank_where){ .pack = pack, .index = i };
		}
		if (!bat->have_temps || t > bat->temp_max_dc) {
			bat->temp_max_dc = t;
			bat->temp_max_at = (struct bank_where){ .pack = pack, .index = i };
		}
		bat->have_temps = true;
	}
}

static uint32_t pack_limit(uint32_t bms_ma, uint32_t cap_ma, uint32_t fallback_ma)
{
	uint32_t limit = bms_ma ? (uint32_t)((uint64_t)bms_ma * PACK_LIMIT_PERCENT / 100) :
			 cap_ma ? cap_ma : fallback_ma;

	return cap_ma && limit > cap_ma ? cap_ma : limit;
}

static void add_limits(struct battery *bat, const struct bank *b, unsigned i)
{
	const struct bank_pack *p = &b->packs[i];
	const struct jk_sample *s = &p->sample;
	const struct jk_settings *st = p->have_settings ? &p->settings : NULL;
	bool jk02_settings = st && st->protocol != JK_PROTO_JK04;
	bool mosfets = s->has & JK_HAS_MOSFETS;
	bool may_charge = (!mosfets || s->charging_enabled) && !(jk02_settings && !st->charging_switch);
	bool may_discharge = (!mosfets || s->discharging_enabled) &&
			     !(jk02_settings && !st->discharging_switch);

	if (may_charge) {
		bat->charge_allowed = true;
		bat->charge_limit_ma += pack_limit(jk02_settings ? st->max_charge_current_ma : 0,
						   b->cfg.cap_charge_ma[i], b->cfg.fallback_charge_ma);
	}
	if (may_discharge) {
		bat->discharge_allowed = true;
		bat->discharge_limit_ma += pack_limit(jk02_settings ? st->max_discharge_current_ma : 0,
						      b->cfg.cap_discharge_ma[i], b->cfg.fallback_discharge_ma);
	}
	if (jk02_settings && st->cell_ovp_mv && (!bat->cell_ovp_mv || st->cell_ovp_mv < bat->cell_ovp_mv))
		bat->cell_ovp_mv = st->cell_ovp_mv;
	if (jk02_settings && st->cell_uvp_mv > bat->cell_uvp_mv)
		bat->cell_uvp_mv = st->cell_uvp_mv;
}

/* Sums over one fresh pack; the means are taken by the caller. */
static void add_pack(struct battery *bat, const struct bank *b, unsigned i,
		     uint64_t *voltage_sum, uint64_t *soh_weighted, uint64_t *cycles_sum)
{
	const struct jk_sample *s = &b->packs[i].sample;

	bat->packs_fresh++;
	*voltage_sum += s->voltage_mv;
	if (s->has & JK_HAS_CURRENT)
		bat->current_ma += s->current_ma;
	if ((s->has & JK_HAS_SOC) && s->capacity_mah > 0) {
		bat->packs_soc++;
		bat->remaining_mah += s->remaining_mah < s->capacity_mah ? s->remaining_mah : s->capacity_mah;
		bat->capacity_mah += s->capacity_mah;
		*soh_weighted += (uint64_t)s->soh_pct * s->capacity_mah;
		*cycles_sum += s->cycles;
	}
	add_cells(bat, s, i);
	add_temps(bat, s, i);
	add_limits(bat, b, i);
}

static void merge_alarms(struct battery *bat, const struct bank *b, uint64_t now_ms)
{
	uint32_t all = ~0u, any = 0;
	bool seen = false;

	for (unsigned i = 0; i < b->npacks; i++) {
		const struct jk_sample *s = &b->packs[i].sample;
		uint32_t classes;

		if (!bank_pack_fresh(b, i, now_ms) || !(s->has & JK_HAS_ERRORS))
			continue;
		classes = bank_alarms_from_jk(s->errors);
		all &= classes;
		any |= classes;
		seen = true;
	}
	bat->protections = seen ? all : 0;
	bat->warnings = any & ~bat->protections;
}

void bank_aggregate(struct bank *b, uint64_t now_ms, struct battery *out)
{
	uint64_t voltage_sum = 0, soh_weighted = 0, cycles_sum = 0;

	memset(out, 0, sizeof(*out));
	out->packs_configured = b->npacks;
	advance_startup(b, now_ms);
	out->ready = b->started;
	if (!out->ready)
		return;

	for (unsigned i = 0; i < b->npacks; i++)
		if (bank_pack_fresh(b, i, now_ms))
			add_pack(out, b, i, &voltage_sum, &soh_weighted, &cycles_sum);
	if (out->packs_fresh)
		out->voltage_mv = (uint32_t)(voltage_sum / out->packs_fresh);
	if (out->capacity_mah) {
		out->soc_centi_pct = (uint16_t)((out->remaining_mah * 10000 + out->capacity_mah / 2) /
						out->capacity_mah);
		out->soh_pct = (uint8_t)(soh_weighted / out->capacity_mah);
		out->cycles = (uint32_t)(cycles_sum / out->packs_soc);
	}
	merge_alarms(out, b, now_ms);

	if (out->packs_fresh < b->cfg.min_packs) {
		out->charge_allowed = out->discharge_allowed = false;
		out->charge_limit_ma = out->discharge_limit_ma = 0;
		out->protections |= BANK_ALARM_SYSTEM;
		out->warnings &= ~BANK_ALARM_SYSTEM;
	}
}
