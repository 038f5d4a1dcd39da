/*
 * charge — the charge-control state machine and the limits it asks of the
 * inverter (inverter-can.md §3.1 YamBMS 1.7.0 and 1.7.1, §3.5; design.md
 * safety rules 3–6).
 *
 * One charge_step() per battery update:
 *   1. force-charge hysteresis on SOC;
 *   2. the state machine (charge_advance(); every change of state through
 *      charge_set_state());
 *   3. the targets of the state (CVL, CCL/DCL from limits, tapers and
 *      temperature tables, SOC);
 *   4. charge_clamp(), the ramp of increases, charge_clamp() again.
 * The clamp is the one function that enforces the invariants listed in
 * charge.h, and it is the last thing to touch an output on every path; the
 * first pass lets the ramp start from the clamped value, so a limit that a
 * protection forced to 0 ramps up again when the protection clears.
 *
 * Pure core: no I/O, no clock, no allocation.  The taper curve is the one
 * place with floating point (2 − 2^(r^1.8) has no integer form); it comes
 * back as parts per million and everything else is integer milli-units.
 */
#include <math.h>
#include <string.h>

#include "charge.h"

#define PPM 1000000u
#define DAY_S 86400
#define DT_MAX_MS 3600000u		/* a ramp step never spans more than this */
#define CAPACITY_MAX_MAH (1ull << 40)	/* keeps products in 64 bits */

/* Cut-off test (§3.1): R = (CVmax − CVmin) / (Ah × CUTOFF_C_RATE), with the
 * 1.7.1 deadband: a discharge below 0.005 C counts as rest. */
#define CUTOFF_PER_C 20			/* 1 / 0.05 C */
#define CUTOFF_DEADBAND_PER_MILLE_C 5	/* 0.005 C */

#define TAPER_SHAPE 1.8			/* factor = 2 − 2^(r^1.8), §3.1 Auto CCL */

/*
 * Chemistry constants (§3.1, YamBMS): nominal, CVmin, CVmax per cell.
 * The defaults of charge_config_defaults() are derived from them by the
 * offsets that give the YamBMS LFP defaults (3650 → 3450/3350/3300):
 *   OVP = CVmax, bulk = CVmax − 200, float = bulk − 100, rebulk = bulk − 150;
 *   Li-ion 4200 → 4000/3900/3850, LTO 2850 → 2650/2550/2500.  Bulk stays
 *   above CVmin in each, so the cut-off test can hold (at ~0.015 C).
 * UVP: LFP 2800 (YamBMS); Li-ion (NMC) 3000 and LTO 1800, the conservative
 * end of the usual datasheet discharge cut-offs (2.5–3.0 V and 1.5–1.8 V).
 * The DCL knee sits halfway between UVP + 200 mV and nominal, which is the
 * YamBMS LFP knee (3000..3200 → 3100): Li-ion 3400, LTO 2200.
 */
struct chem {
	uint32_t nominal_mv, cv_min_mv, cv_max_mv, uvp_mv;
};

static const struct chem chems[] = {
	[CHARGE_LFP] = { .nominal_mv = 3200, .cv_min_mv = 3370, .cv_max_mv = 3650, .uvp_mv = 2800 },
	[CHARGE_LIION] = { .nominal_mv = 3600, .cv_min_mv = 3900, .cv_max_mv = 4200, .uvp_mv = 3000 },
	[CHARGE_LTO] = { .nominal_mv = 2400, .cv_min_mv = 2550, .cv_max_mv = 2850, .uvp_mv = 1800 },
};

/*
 * Temperature → C-rate tables (§3.1 Auto temperature current, YamBMS
 * defaults), in 0.1 °C and milli-C, interpolated linearly, flat beyond the
 * ends.  Both the coldest and the hottest sensor are looked up and the
 * lower rate wins.
 */
struct temp_point {
	int32_t temp_dc;
	uint32_t milli_c;
};

static const struct temp_point charge_temps[] = {
	{ -1, 0 }, { 0, 50 }, { 50, 120 }, { 100, 300 }, { 200, 500 }, { 550, 500 }, { 600, 0 },
};

static const struct temp_point discharge_temps[] = {
	{ -300, 0 }, { -200, 500 }, { 550, 500 }, { 600, 0 },
};

#define NPOINTS(t) (sizeof(t) / sizeof((t)[0]))

/* Protections that stop one direction (charge.h invariants). */
static const uint32_t charge_blocking = BANK_ALARM_CELL_OV | BANK_ALARM_OVER_TEMP |
					BANK_ALARM_UNDER_TEMP | BANK_ALARM_CHARGE_OC;
static const uint32_t discharge_blocking = BANK_ALARM_CELL_UV | BANK_ALARM_DISCHARGE_OC;

/* The cut-off test's verdict: grey zone, keep bulk, or full. */
enum criterion {
	CRIT_NONE,
	CRIT_BULK,
	CRIT_CUTOFF,
};

static const struct chem *chem_of(enum charge_chemistry c)
{
	return (unsigned)c < NPOINTS(chems) ? &chems[c] : &chems[CHARGE_LFP];
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint32_t sat32(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static uint32_t pack_mv(const struct charge_config *k, uint64_t cell_mv)
{
	return sat32((uint64_t)k->cells * cell_mv);
}

void charge_config_defaults(struct charge_config *cfg, enum charge_chemistry chem, unsigned cells)
{
	const struct chem *k = chem_of(chem);

	*cfg = (struct charge_config){
		.chemistry = chem,
		.cells = cells,
		.min_packs = 1,
		.bulk_cell_mv = k->cv_max_mv - 200,
		.float_cell_mv = k->cv_max_mv - 300,
		.rebulk_cell_mv = k->cv_max_mv - 350,
		.cell_ovp_mv = k->cv_max_mv,
		.cell_uvp_mv = k->uvp_mv,
		.dcl_knee_cell_mv = (k->uvp_mv + CHARGE_DVL_MARGIN_MV + k->nominal_mv) / 2,
		.end_of_charge_timeout_s = 1800,
		.cutoff_hold_s = 10,
		.cutoff_timer_s = 60,
		.cutoff_min_soc = 95,
		.rebulk_soc = 85,
		.rebulk_days = 14,
		.float_enabled = true,
		.float_step_mv = 100,
		.float_step_interval_s = 180,
		.max_charge_ma = 200000,
		.max_discharge_ma = 200000,
		.ramp_ma_per_s = 5000,
		.force_charge_enabled = false,
		.force_charge_start_soc = 10,
		.force_charge_stop_soc = 30,
	};
}

const char *charge_state_name(enum charge_state s)
{
	switch (s) {
	case CHARGE_WAIT: return "wait";
	case CHARGE_BULK: return "bulk";
	case CHARGE_CUTOFF: return "cutoff";
	case CHARGE_EOC: return "eoc";
	case CHARGE_FLOAT: return "float";
	}
	return "unknown";
}

void charge_init(struct charge *c, const struct charge_config *cfg, uint64_t now_ms)
{
	memset(c, 0, sizeof(*c));
	c->cfg = *cfg;
	c->state = CHARGE_WAIT;
	c->state_since_ms = now_ms;
	c->last_step_ms = now_ms;
}

void charge_restore(struct charge *c, const struct charge_persist *p, uint64_t now_ms)
{
	enum charge_state s = p->state;

	switch (s) {
	case CHARGE_CUTOFF:
		s = CHARGE_BULK;	/* the hold and the timers start again */
		break;
	case CHARGE_WAIT:
	case CHARGE_BULK:
	case CHARGE_EOC:
	case CHARGE_FLOAT:
		break;
	default:
		s = CHARGE_WAIT;
	}
	c->state = s;
	c->state_since_ms = now_ms;
	c->have_criterion = false;
	c->last_eoc_wall_s = p->last_eoc_wall_s > 0 ? p->last_eoc_wall_s : 0;
	/* Before the restart the inverter most likely saw the float voltage;
	 * climbing back to bulk to step down again would charge once more. */
	c->float_cvl_mv = pack_mv(&c->cfg, c->cfg.float_cell_mv);
	c->float_step_ms = now_ms;
}

void charge_persist(const struct charge *c, struct charge_persist *p)
{
	p->state = c->state;
	p->last_eoc_wall_s = c->last_eoc_wall_s;
}

/* ---- inputs ---------------------------------------------------------- */

/* Anything to go by at all (otherwise transmit = false). */
static bool have_data(const struct battery *bat)
{
	return bat->ready && bat->packs_fresh > 0;
}

/* A battery of JK04 units only reports no SOC: the SOC rules then stay off. */
static bool soc_known(const struct battery *bat)
{
	return bat->packs_soc > 0;
}

static unsigned soc_pct(const struct battery *bat)
{
	unsigned pct = (bat->soc_centi_pct + 50u) / 100u;

	return pct > 100 ? 100 : pct;
}

static uint32_t ovp_mv(const struct charge *c, const struct battery *bat)
{
	uint32_t ovp = c->cfg.cell_ovp_mv;

	if (bat->cell_ovp_mv && bat->cell_ovp_mv < ovp)
		ovp = bat->cell_ovp_mv;
	return ovp;
}

static uint32_t uvp_mv(const struct charge *c, const struct battery *bat)
{
	return bat->cell_uvp_mv > c->cfg.cell_uvp_mv ? bat->cell_uvp_mv : c->cfg.cell_uvp_mv;
}

/* Highest cell voltage CVL may ask for: bulk, kept below OVP by the margin. */
static uint32_t cvl_cell_max_mv(const struct charge *c, const struct battery *bat)
{
	uint32_t ovp = ovp_mv(c, bat);
	uint32_t top = ovp > CHARGE_OVP_MARGIN_MV ? ovp - CHARGE_OVP_MARGIN_MV : 0;

	return c->cfg.bulk_cell_mv < top ? c->cfg.bulk_cell_mv : top;
}

static bool enough_packs(const struct charge *c, const struct battery *bat)
{
	return have_data(bat) && bat->packs_fresh >= c->cfg.min_packs;
}

/* May the state machine charge at all (WAIT -> BULK, and stay out of WAIT). */
static bool can_charge(const struct charge *c, const struct battery *bat)
{
	return enough_packs(c, bat) && bat->charge_allowed && !c->cfg.user_forbid_charge;
}

/* ---- state machine --------------------------------------------------- */

static void charge_set_state(struct charge *c, enum charge_state s, uint64_t now_ms,
			     struct charge_output *out)
{
	if (s == c->state)
		return;
	c->state = s;
	c->state_since_ms = now_ms;
	c->have_criterion = false;	/* a criterion holds within one state */
	if (s == CHARGE_FLOAT) {
		c->float_cvl_mv = pack_mv(&c->cfg, c->cfg.bulk_cell_mv);
		c->float_step_ms = now_ms;
	}
	out->changed = true;
}

/*
 * The cut-off test (§3.1, nordkyndesign): while charging, full when
 * V_cut = max_cell − R × I ≥ CVmin, with R = (CVmax − CVmin) / (0.05 C).
 * In milli-units R × I = span × 20 × I_mA / C_mAh.  While discharging: not
 * full when max_cell < bulk − R × 1 A, otherwise a grey zone.  1.7.1: no
 * cut-off below cutoff_min_soc (unless SOC is unknown).  Without a capacity
 * R is unbounded: only a battery at rest can be full.
 */
static enum criterion cutoff_criterion(const struct charge *c, const struct battery *bat)
{
	const struct chem *k = chem_of(c->cfg.chemistry);
	uint64_t cap = min_u64(bat->capacity_mah, CAPACITY_MAX_MAH);
	int64_t span = (int64_t)k->cv_max_mv - k->cv_min_mv;
	int64_t i = bat->current_ma;
	int64_t deadband = (int64_t)(cap * CUTOFF_DEADBAND_PER_MILLE_C / 1000);
	int64_t drop;

	if (i < 0 && -i <= deadband)
		i = 0;
	if (i < 0) {
		if (cap == 0)
			return CRIT_NONE;
		drop = span * CUTOFF_PER_C * 1000 / (int64_t)cap;
		return (int64_t)bat->cell_max_mv < (int64_t)c->cfg.bulk_cell_mv - drop ?
			CRIT_BULK : CRIT_NONE;
	}
	if (i > 0 && cap == 0)
		return CRIT_BULK;
	drop = i > 0 ? span * CUTOFF_PER_C * i / (int64_t)cap : 0;
	if ((int64_t)bat->cell_max_mv - drop < (int64_t)k->cv_min_mv)
		return CRIT_BULK;
	if (soc_known(bat) && bat->soc_centi_pct < c->cfg.cutoff_min_soc * 100u)
		return CRIT_BULK;
	return CRIT_CUTOFF;
}

static void criterion_track(struct charge *c, enum criterion k, uint64_t now_ms)
{
	bool cutoff = k == CRIT_CUTOFF;

	if (k == CRIT_NONE) {
		c->have_criterion = false;
		return;
	}
	if (!c->have_criterion || c->criterion != cutoff) {
		c->have_criterion = true;
		c->criterion = cutoff;
		c->criterion_since_ms = now_ms;
	}
}

static bool criterion_held(const struct charge *c, bool cutoff, uint64_t now_ms)
{
	return c->have_criterion && c->criterion == cutoff && now_ms >= c->criterion_since_ms &&
	       now_ms - c->criterion_since_ms >= (uint64_t)c->cfg.cutoff_hold_s * 1000;
}

/* The bank reports no balancing, so the cut-off timer always runs; the EOC
 * timeout only matters when it is the shorter of the two. */
static bool cutoff_done(const struct charge *c, uint64_t now_ms)
{
	uint64_t in_state = now_ms >= c->state_since_ms ? now_ms - c->state_since_ms : 0;
	uint64_t eoc_ms = (uint64_t)c->cfg.end_of_charge_timeout_s * 1000;

	return in_state >= (uint64_t)c->cfg.cutoff_timer_s * 1000 || (eoc_ms && in_state >= eoc_ms);
}

/* Days counted in elapsed seconds since the recorded EOC: the core knows no
 * time zone, so YamBMS's rounding to local midnight is left out. */
static bool rebulk_days_due(const struct charge *c, int64_t wall_s)
{
	int64_t last = c->last_eoc_wall_s;

	if (!c->cfg.rebulk_days || last <= 0 || wall_s <= last)
		return false;
	return (uint64_t)wall_s - (uint64_t)last >= (uint64_t)c->cfg.rebulk_days * DAY_S;
}

static bool rebulk_due(const struct charge *c, const struct battery *bat, int64_t wall_s)
{
	const struct charge_config *k = &c->cfg;

	if (!have_data(bat))
		return false;	/* no reading is not a low reading */
	if (bat->cell_max_mv <= k->rebulk_cell_mv)
		return true;
	if (k->rebulk_soc && soc_known(bat) && bat->soc_centi_pct <= k->rebulk_soc * 100u)
		return true;
	return c->force_charge || rebulk_days_due(c, wall_s);
}

static void float_step(struct charge *c, uint64_t now_ms)
{
	uint32_t target = pack_mv(&c->cfg, c->cfg.float_cell_mv);
	uint32_t step = c->cfg.float_step_mv;
	uint64_t interval_ms = (uint64_t)c->cfg.float_step_interval_s * 1000;

	if (!step || !interval_ms || c->float_cvl_mv <= target) {
		c->float_cvl_mv = target;
		return;
	}
	if (now_ms < c->float_step_ms || now_ms - c->float_step_ms < interval_ms)
		return;
	c->float_step_ms = now_ms;
	c->float_cvl_mv = c->float_cvl_mv - target > step ? c->float_cvl_mv - step : target;
}

static void charge_advance(struct charge *c, const struct battery *bat, uint64_t now_ms,
			   int64_t wall_s, struct charge_output *out)
{
	criterion_track(c, have_data(bat) ? cutoff_criterion(c, bat) : CRIT_NONE, now_ms);

	switch (c->state) {
	case CHARGE_WAIT:
		if (can_charge(c, bat))
			charge_set_state(c, CHARGE_BULK, now_ms, out);
		break;
	case CHARGE_BULK:
		if (!can_charge(c, bat))
			charge_set_state(c, CHARGE_WAIT, now_ms, out);
		else if (criterion_held(c, true, now_ms))
			charge_set_state(c, CHARGE_CUTOFF, now_ms, out);
		break;
	case CHARGE_CUTOFF:
		if (!can_charge(c, bat)) {
			charge_set_state(c, CHARGE_WAIT, now_ms, out);
		} else if (criterion_held(c, false, now_ms)) {
			charge_set_state(c, CHARGE_BULK, now_ms, out);
		} else if (cutoff_done(c, now_ms)) {
			c->last_eoc_wall_s = wall_s > 0 ? wall_s : 0;
			out->end_of_charge = true;
			charge_set_state(c, CHARGE_EOC, now_ms, out);
			if (c->cfg.float_enabled)	/* no one-step CVL dip to rebulk */
				charge_set_state(c, CHARGE_FLOAT, now_ms, out);
		}
		break;
	case CHARGE_EOC:
	case CHARGE_FLOAT:
		if (c->last_eoc_wall_s <= 0 && wall_s > 0)
			c->last_eoc_wall_s = wall_s;	/* unknown: count from now */
		if (rebulk_due(c, bat, wall_s))
			charge_set_state(c, CHARGE_BULK, now_ms, out);
		else if (c->state == CHARGE_EOC && c->cfg.float_enabled)
			charge_set_state(c, CHARGE_FLOAT, now_ms, out);
		else if (c->state == CHARGE_FLOAT && !c->cfg.float_enabled)
			charge_set_state(c, CHARGE_EOC, now_ms, out);
		else if (c->state == CHARGE_FLOAT)
			float_step(c, now_ms);
		break;
	default:
		charge_set_state(c, CHARGE_WAIT, now_ms, out);
	}
}

/* Request force charge (0x35C) below start SOC until stop SOC (§3.1).
 * Without data the request keeps its last value. */
static void force_charge_update(struct charge *c, const struct battery *bat)
{
	unsigned pct;

	if (!c->cfg.force_charge_enabled) {
		c->force_charge = false;
		return;
	}
	if (!have_data(bat) || !soc_known(bat))
		return;
	pct = soc_pct(bat);
	if (pct <= c->cfg.force_charge_start_soc)
		c->force_charge = true;
	else if (pct >= c->cfg.force_charge_stop_soc)
		c->force_charge = false;
}

/* ---- limits ---------------------------------------------------------- */

/*
 * 2 − 2^(r^1.8) with r = x / span (§3.1 Auto CCL), in ppm: 1 at x ≤ 0,
 * 0 at x ≥ span.  CCL: x = max_cell − float, span = cell_high − float;
 * DCL: x = knee − min_cell, span = knee − (UVP + 200 mV).
 */
static uint32_t taper_ppm(int64_t x, int64_t span)
{
	double f;

	if (x <= 0)
		return PPM;
	if (span <= 0 || x >= span)
		return 0;
	f = 2.0 - exp2(pow((double)x / (double)span, TAPER_SHAPE));
	return f <= 0.0 ? 0 : (uint32_t)(f * PPM);
}

static uint64_t scale_ppm(uint64_t v, uint32_t ppm)
{
	return v * ppm / PPM;
}

/* Rate at one temperature, in millionths of 1 C. */
static uint32_t temp_rate_ppm(const struct temp_point *t, size_t n, int32_t temp_dc)
{
	if (temp_dc <= t[0].temp_dc)
		return t[0].milli_c * 1000;
	for (size_t i = 1; i < n; i++) {
		const struct temp_point *a = &t[i - 1], *b = &t[i];

		if (temp_dc <= b->temp_dc) {
			uint64_t w = (uint64_t)(b->temp_dc - a->temp_dc);
			uint64_t sum = (uint64_t)a->milli_c * (uint64_t)(b->temp_dc - temp_dc) +
				       (uint64_t)b->milli_c * (uint64_t)(temp_dc - a->temp_dc);

			return (uint32_t)(sum * 1000 / w);
		}
	}
	return t[n - 1].milli_c * 1000;
}

/*
 * Temperature limit: rate × capacity.  No temperatures: no derating (the
 * packs' own temperature protections still block through the alarms and
 * their charge/discharge permissions); no value is invented.  No capacity
 * (JK04 units only): the rate as a fraction of the table's peak, applied to
 * `base`, so 0 °C still means 10 % and 60 °C still means 0.
 */
static uint64_t temp_limit_ma(const struct temp_point *t, size_t n, const struct battery *bat,
			      uint64_t base)
{
	uint32_t lo, hi, rate, peak = 0;
	uint64_t cap = min_u64(bat->capacity_mah, CAPACITY_MAX_MAH);

	if (!bat->have_temps)
		return base;
	lo = temp_rate_ppm(t, n, bat->temp_min_dc);
	hi = temp_rate_ppm(t, n, bat->temp_max_dc);
	rate = lo < hi ? lo : hi;
	if (cap)
		return cap * rate / PPM;	/* 1 C in mA is the capacity in mAh */
	for (size_t i = 0; i < n; i++)
		peak = t[i].milli_c * 1000 > peak ? t[i].milli_c * 1000 : peak;
	return peak ? base * rate / peak : 0;
}

static uint32_t ccl_target_ma(const struct charge *c, const struct battery *bat)
{
	const struct charge_config *k = &c->cfg;
	uint64_t base = min_u64(k->max_charge_ma, bat->charge_limit_ma);
	int64_t high = ((int64_t)ovp_mv(c, bat) + cvl_cell_max_mv(c, bat)) / 2;
	int64_t flt = k->float_cell_mv;
	uint64_t lim = base;

	if (bat->cell_max_mv >= high)
		return 0;
	lim = min_u64(lim, scale_ppm(base, taper_ppm(bat->cell_max_mv - flt, high - flt)));
	lim = min_u64(lim, temp_limit_ma(charge_temps, NPOINTS(charge_temps), bat, base));
	return sat32(lim);
}

static uint32_t dcl_target_ma(const struct charge *c, const struct battery *bat)
{
	const struct charge_config *k = &c->cfg;
	uint64_t base = min_u64(k->max_discharge_ma, bat->discharge_limit_ma);
	int64_t low = (int64_t)uvp_mv(c, bat) + CHARGE_DVL_MARGIN_MV;
	int64_t knee = k->dcl_knee_cell_mv;
	uint64_t lim = base;

	if (bat->cell_min_mv <= low)
		return 0;
	lim = min_u64(lim, scale_ppm(base, taper_ppm(knee - bat->cell_min_mv, knee - low)));
	lim = min_u64(lim, temp_limit_ma(discharge_temps, NPOINTS(discharge_temps), bat, base));
	return sat32(lim);
}

/*
 * What the state asks for (§3.1 table).  DCL needs no pack-voltage gate
 * against DVL: its taper is 0 once the lowest cell is at UVP + 200 mV,
 * which comes no later than the mean cell reaching DVL / cells.
 */
static void charge_targets(const struct charge *c, const struct battery *bat,
			   struct charge_output *out)
{
	const struct charge_config *k = &c->cfg;

	switch (c->state) {
	case CHARGE_BULK:
	case CHARGE_CUTOFF:
		out->cvl_mv = pack_mv(k, k->bulk_cell_mv);
		out->ccl_ma = ccl_target_ma(c, bat);
		break;
	case CHARGE_FLOAT:
		out->cvl_mv = c->float_cvl_mv;
		out->ccl_ma = ccl_target_ma(c, bat);
		break;
	default:
		out->cvl_mv = pack_mv(k, k->rebulk_cell_mv);
		out->ccl_ma = 0;
	}
	out->dvl_mv = pack_mv(k, (uint64_t)uvp_mv(c, bat) + CHARGE_DVL_MARGIN_MV);
	out->dcl_ma = dcl_target_ma(c, bat);
	out->soc_pct = (uint8_t)soc_pct(bat);
	out->soh_pct = bat->soh_pct;
	out->force_charge = c->force_charge;
	out->full_charge = false;	/* YamBMS never asks; rebulk-by-days does the job */
}

static uint32_t round_down_100(uint32_t ma)
{
	return ma - ma % 100;
}

/* Increases at ramp_ma_per_s over the time since the last step; a
 * reduction at once.  `last` keeps the value before rounding so that a
 * slow ramp still makes progress. */
static uint32_t ramp(uint32_t *last, uint32_t target, uint32_t ma_per_s, uint64_t dt_ms)
{
	uint64_t up;

	if (target <= *last || !ma_per_s) {
		*last = target;
		return target;
	}
	up = *last + (uint64_t)ma_per_s * min_u64(dt_ms, DT_MAX_MS) / 1000;
	*last = sat32(min_u64(up, target));
	return *last;
}

/* ---- the clamp --------------------------------------------------------- */

static bool charge_permitted(const struct charge *c, const struct battery *bat)
{
	bool charging_state = c->state == CHARGE_BULK || c->state == CHARGE_CUTOFF ||
			      c->state == CHARGE_FLOAT;

	return charging_state && can_charge(c, bat) && !(bat->protections & charge_blocking);
}

static bool discharge_permitted(const struct charge *c, const struct battery *bat)
{
	return enough_packs(c, bat) && bat->discharge_allowed && !c->cfg.user_forbid_discharge &&
	       !(bat->protections & discharge_blocking);
}

/*
 * Every invariant of charge.h, applied to whatever the rest computed.  The
 * BANK_ALARM_SYSTEM protection blocks nothing by itself: too few packs are
 * handled here through min_packs, and since YamBMS 1.5.1 a BMS-internal
 * alarm gates nothing (the packs' own permissions do).
 */
static void charge_clamp(const struct charge *c, const struct battery *bat,
			 struct charge_output *o)
{
	uint32_t cvl_max;

	if (!have_data(bat) || c->cfg.cells == 0) {
		*o = (struct charge_output){ .state = o->state, .changed = o->changed,
					     .end_of_charge = o->end_of_charge };
		return;
	}
	o->transmit = true;
	cvl_max = pack_mv(&c->cfg, cvl_cell_max_mv(c, bat));
	/* A pack with fewer cells than configured must not get the configured
	 * pack's voltage: bound CVL by the smallest cell count a pack reports. */
	if (bat->cells_per_pack_min && bat->cells_per_pack_min < c->cfg.cells)
		cvl_max = (uint32_t)min_u64(cvl_max, (uint64_t)bat->cells_per_pack_min *
						     cvl_cell_max_mv(c, bat));
	if (o->cvl_mv > cvl_max)
		o->cvl_mv = cvl_max;

	o->ccl_ma = (uint32_t)min_u64(o->ccl_ma, min_u64(c->cfg.max_charge_ma, bat->charge_limit_ma));
	o->dcl_ma = (uint32_t)min_u64(o->dcl_ma,
				      min_u64(c->cfg.max_discharge_ma, bat->discharge_limit_ma));
	if (!charge_permitted(c, bat))
		o->ccl_ma = 0;
	if (!discharge_permitted(c, bat))
		o->dcl_ma = 0;
	o->ccl_ma = round_down_100(o->ccl_ma);
	o->dcl_ma = round_down_100(o->dcl_ma);
	o->charge_enable = o->ccl_ma > 0;
	o->discharge_enable = o->dcl_ma > 0;
	o->force_charge = o->force_charge && o->charge_enable;
	o->full_charge = o->full_charge && o->charge_enable;

	if (o->soc_pct > 100)
		o->soc_pct = 100;
	if (o->soc_pct > 98 && c->state != CHARGE_EOC && c->state != CHARGE_FLOAT)
		o->soc_pct = 98;
	if (o->soh_pct > 100)
		o->soh_pct = 100;
}

void charge_step(struct charge *c, const struct battery *bat, uint64_t now_ms, int64_t wall_s,
		 struct charge_output *out)
{
	uint64_t dt_ms = now_ms > c->last_step_ms ? now_ms - c->last_step_ms : 0;

	*out = (struct charge_output){ 0 };
	force_charge_update(c, bat);
	charge_advance(c, bat, now_ms, wall_s, out);
	out->state = c->state;
	charge_targets(c, bat, out);
	charge_clamp(c, bat, out);
	out->ccl_ma = ramp(&c->ccl_ma, out->ccl_ma, c->cfg.ramp_ma_per_s, dt_ms);
	out->dcl_ma = ramp(&c->dcl_ma, out->dcl_ma, c->cfg.ramp_ma_per_s, dt_ms);
	charge_clamp(c, bat, out);	/* the last word, whatever happened above */
	c->last_step_ms = now_ms;
}
