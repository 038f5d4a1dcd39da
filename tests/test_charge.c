/*
 * charge: the state machine over simulated time (one step per second, no
 * sleeping), the limits it computes, and the safety invariants of design.md
 * attacked one rule at a time and then with random batteries and configs.
 *
 * Expected values are worked out here from the formulas of inverter-can.md
 * §3.1, not taken from the code under test.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "charge.h"
#include "tests.h"

#define NCASES(a) (sizeof(a) / sizeof((a)[0]))
#define CELLS 16
#define DAY_S 86400

/* 16S LFP, two 280 Ah packs at rest, 25 °C, each allowing 200 A. */
static struct battery battery_16s(void)
{
	return (struct battery){
		.ready = true,
		.packs_configured = 2,
		.packs_fresh = 2,
		.packs_soc = 2,
		.voltage_mv = 53000,
		.current_ma = 0,
		.remaining_mah = 280000,
		.capacity_mah = 560000,
		.soc_centi_pct = 5000,
		.soh_pct = 100,
		.cycles = 10,
		.cell_min_mv = 3300,
		.cell_max_mv = 3310,
		.cells_per_pack_max = CELLS,
		.have_temps = true,
		.temp_min_dc = 250,
		.temp_max_dc = 250,
		.charge_allowed = true,
		.discharge_allowed = true,
		.charge_limit_ma = 400000,
		.discharge_limit_ma = 400000,
		.cell_ovp_mv = 3650,
		.cell_uvp_mv = 2800,
	};
}

static struct charge_config config_lfp(void)
{
	struct charge_config k;

	charge_config_defaults(&k, CHARGE_LFP, CELLS);
	return k;
}

struct sim {
	struct charge c;
	struct battery bat;
	uint64_t now_ms;
	int64_t wall_s;
	struct charge_output out;
};

static void sim_init(struct sim *s, const struct charge_config *k)
{
	memset(s, 0, sizeof(*s));
	s->bat = battery_16s();
	s->now_ms = 5000000;
	s->wall_s = 1750000000;
	charge_init(&s->c, k, s->now_ms);
}

static const struct charge_output *sim_step(struct sim *s)
{
	s->now_ms += 1000;
	s->wall_s += 1;
	charge_step(&s->c, &s->bat, s->now_ms, s->wall_s, &s->out);
	return &s->out;
}

static void sim_steps(struct sim *s, unsigned n)
{
	while (n--)
		sim_step(s);
}

/* Steps until the output state is `st`; the number of steps it took. */
static unsigned sim_until(struct sim *s, enum charge_state st, unsigned max)
{
	for (unsigned n = 1; n <= max; n++)
		if (sim_step(s)->state == st)
			return n;
	ck_abort_msg("state %s not reached in %u steps (now %s)", charge_state_name(st), max,
		     charge_state_name(s->out.state));
	return 0;
}

/* Charging hard: the cut-off criterion cannot hold. */
static void bat_bulk_charging(struct battery *b)
{
	b->soc_centi_pct = 9900;
	b->cell_max_mv = 3400;
	b->current_ma = 100000;
}

/* Full: 3 A into 560 Ah at 3.45 V gives V_cut = 3.45 − 0.01 × 3 = 3.42 ≥ 3.37. */
static void bat_full(struct battery *b)
{
	b->soc_centi_pct = 10000;
	b->cell_max_mv = 3450;
	b->current_ma = 3000;
}

static void sim_reach_float(struct sim *s)
{
	bat_bulk_charging(&s->bat);
	sim_until(s, CHARGE_BULK, 2);
	bat_full(&s->bat);
	sim_until(s, CHARGE_CUTOFF, 20);
	sim_until(s, CHARGE_FLOAT, 100);
}

/* ---- configuration and names ------------------------------------------ */

struct defaults_case {
	enum charge_chemistry chem;
	uint32_t bulk, flt, rebulk, ovp, uvp, knee;
	uint32_t cv_min;	/* §3.1 chemistry constant: bulk must lie above it */
};

START_TEST(test_defaults_per_chemistry_are_ordered_and_follow_the_constants)
{
	static const struct defaults_case cases[] = {
		{ .chem = CHARGE_LFP, .bulk = 3450, .flt = 3350, .rebulk = 3300, .ovp = 3650,
		  .uvp = 2800, .knee = 3100, .cv_min = 3370 },
		{ .chem = CHARGE_LIION, .bulk = 4000, .flt = 3900, .rebulk = 3850, .ovp = 4200,
		  .uvp = 3000, .knee = 3400, .cv_min = 3900 },
		{ .chem = CHARGE_LTO, .bulk = 2650, .flt = 2550, .rebulk = 2500, .ovp = 2850,
		  .uvp = 1800, .knee = 2200, .cv_min = 2550 },
	};

	for (size_t i = 0; i < NCASES(cases); i++) {
		const struct defaults_case *d = &cases[i];
		struct charge_config k;

		charge_config_defaults(&k, d->chem, CELLS);
		ck_assert_uint_eq(k.cells, CELLS);
		ck_assert_uint_eq(k.bulk_cell_mv, d->bulk);
		ck_assert_uint_eq(k.float_cell_mv, d->flt);
		ck_assert_uint_eq(k.rebulk_cell_mv, d->rebulk);
		ck_assert_uint_eq(k.cell_ovp_mv, d->ovp);
		ck_assert_uint_eq(k.cell_uvp_mv, d->uvp);
		ck_assert_uint_eq(k.dcl_knee_cell_mv, d->knee);
		ck_assert(k.cell_uvp_mv + CHARGE_DVL_MARGIN_MV < k.dcl_knee_cell_mv);
		ck_assert(k.rebulk_cell_mv < k.float_cell_mv && k.float_cell_mv < k.bulk_cell_mv);
		ck_assert(k.bulk_cell_mv + CHARGE_OVP_MARGIN_MV <= k.cell_ovp_mv);
		ck_assert(k.bulk_cell_mv > d->cv_min);
	}
}
END_TEST

START_TEST(test_defaults_carry_the_yambms_timers_and_limits)
{
	struct charge_config k = config_lfp();

	ck_assert_uint_eq(k.end_of_charge_timeout_s, 1800);
	ck_assert_uint_eq(k.cutoff_hold_s, 10);
	ck_assert_uint_eq(k.cutoff_timer_s, 60);
	ck_assert_uint_eq(k.cutoff_min_soc, 95);
	ck_assert_uint_eq(k.rebulk_soc, 85);
	ck_assert_uint_eq(k.rebulk_days, 14);
	ck_assert(k.float_enabled);
	ck_assert_uint_eq(k.float_step_mv, 100);
	ck_assert_uint_eq(k.float_step_interval_s, 180);
	ck_assert_uint_eq(k.ramp_ma_per_s, 5000);
	ck_assert_uint_eq(k.force_charge_start_soc, 10);
	ck_assert_uint_eq(k.force_charge_stop_soc, 30);
	ck_assert(!k.user_forbid_charge && !k.user_forbid_discharge);
}
END_TEST

START_TEST(test_state_names)
{
	ck_assert_str_eq(charge_state_name(CHARGE_WAIT), "wait");
	ck_assert_str_eq(charge_state_name(CHARGE_BULK), "bulk");
	ck_assert_str_eq(charge_state_name(CHARGE_CUTOFF), "cutoff");
	ck_assert_str_eq(charge_state_name(CHARGE_EOC), "eoc");
	ck_assert_str_eq(charge_state_name(CHARGE_FLOAT), "float");
	ck_assert_ptr_nonnull(charge_state_name((enum charge_state)42));
}
END_TEST

/* ---- the state machine ------------------------------------------------- */

START_TEST(test_full_charge_goes_bulk_cutoff_eoc_float_with_float_steps)
{
	struct charge_config k = config_lfp();
	struct sim s;
	const struct charge_output *o;
	unsigned steps, changes = 0;
	int64_t eoc_wall;

	sim_init(&s, &k);
	bat_bulk_charging(&s.bat);
	o = sim_step(&s);
	ck_assert_int_eq(o->state, CHARGE_BULK);
	ck_assert(o->changed);
	ck_assert_uint_eq(o->cvl_mv, CELLS * 3450);
	sim_steps(&s, 30);
	ck_assert_int_eq(s.out.state, CHARGE_BULK);
	ck_assert(!s.out.changed);

	/* The criterion holds from the first full step on: 10 s later, cut-off. */
	bat_full(&s.bat);
	steps = sim_until(&s, CHARGE_CUTOFF, 30);
	ck_assert_uint_eq(steps, 11);
	ck_assert(s.out.changed);
	ck_assert_uint_eq(s.out.cvl_mv, CELLS * 3450);
	ck_assert(s.out.charge_enable);
	ck_assert_uint_eq(s.out.soc_pct, 98);

	/* The cut-off timer (60 s): EOC, and straight on to float. */
	steps = sim_until(&s, CHARGE_FLOAT, 200);
	ck_assert_uint_eq(steps, 60);
	ck_assert(s.out.changed && s.out.end_of_charge);
	eoc_wall = s.wall_s;
	ck_assert_int_eq(s.c.last_eoc_wall_s, eoc_wall);
	ck_assert_uint_eq(s.out.soc_pct, 100);

	/* Float: CVL from bulk down 100 mV every 180 s, never below float. */
	for (unsigned t = 0; t <= 3600; t++) {
		uint32_t want = CELLS * 3450 - 100 * (t / 180);

		if (want < CELLS * 3350)
			want = CELLS * 3350;
		if (t > 0)
			o = sim_step(&s);
		changes += o->changed;
		ck_assert_int_eq(o->state, CHARGE_FLOAT);
		ck_assert_msg(o->cvl_mv == want, "t=%u s: CVL %u, want %u", t, o->cvl_mv, want);
		ck_assert_uint_ge(o->cvl_mv, CELLS * 3350);
		ck_assert(o->charge_enable);
		ck_assert_uint_eq(o->soc_pct, 100);
	}
	ck_assert_uint_eq(changes, 1);	/* the entry only */
}
END_TEST

struct float_case {
	uint32_t step_mv, interval_s;
	unsigned seconds_to_float;	/* until CVL first equals cells × float */
};

START_TEST(test_float_steps_never_undershoot_the_float_voltage)
{
	/* 16 × (3.45 − 3.35) = 1.6 V to go down. */
	static const struct float_case cases[] = {
		{ .step_mv = 100, .interval_s = 180, .seconds_to_float = 16 * 180 },
		{ .step_mv = 150, .interval_s = 60, .seconds_to_float = 11 * 60 },
		{ .step_mv = 1000, .interval_s = 10, .seconds_to_float = 2 * 10 },
		{ .step_mv = 5000, .interval_s = 10, .seconds_to_float = 10 },
		{ .step_mv = 0, .interval_s = 180, .seconds_to_float = 1 },
		{ .step_mv = 100, .interval_s = 0, .seconds_to_float = 1 },
	};

	for (size_t i = 0; i < NCASES(cases); i++) {
		struct charge_config k = config_lfp();
		struct sim s;
		unsigned t = 0;

		k.float_step_mv = cases[i].step_mv;
		k.float_step_interval_s = cases[i].interval_s;
		sim_init(&s, &k);
		sim_reach_float(&s);
		ck_assert_uint_eq(s.out.cvl_mv, CELLS * 3450);
		while (s.out.cvl_mv != CELLS * 3350) {
			uint32_t before = s.out.cvl_mv;

			sim_step(&s);
			t++;
			ck_assert_uint_ge(s.out.cvl_mv, CELLS * 3350);
			ck_assert_uint_le(s.out.cvl_mv, before);
			ck_assert_uint_lt(t, 5000);
		}
		ck_assert_msg(t == cases[i].seconds_to_float, "case %zu: float after %u s", i, t);
		sim_steps(&s, 600);
		ck_assert_uint_eq(s.out.cvl_mv, CELLS * 3350);
	}
}
END_TEST

START_TEST(test_cutoff_criterion_must_persist_for_the_hold_time)
{
	struct charge_config k = config_lfp();
	struct sim s;

	sim_init(&s, &k);
	bat_bulk_charging(&s.bat);
	sim_steps(&s, 5);
	for (int round = 0; round < 5; round++) {
		bat_full(&s.bat);
		sim_steps(&s, 10);	/* 9 s held: not yet */
		ck_assert_int_eq(s.out.state, CHARGE_BULK);
		bat_bulk_charging(&s.bat);
		sim_step(&s);
	}
	bat_full(&s.bat);
	ck_assert_uint_eq(sim_until(&s, CHARGE_CUTOFF, 20), 11);
}
END_TEST

START_TEST(test_cutoff_hold_counts_only_time_spent_in_bulk)
{
	struct charge_config k = config_lfp();
	struct sim s;

	/* Full all along, but charging was forbidden: the hold starts in bulk. */
	sim_init(&s, &k);
	bat_full(&s.bat);
	s.bat.charge_allowed = false;
	sim_steps(&s, 100);
	ck_assert_int_eq(s.out.state, CHARGE_WAIT);
	s.bat.charge_allowed = true;
	ck_assert_uint_eq(sim_until(&s, CHARGE_BULK, 1), 1);
	ck_assert_uint_eq(sim_until(&s, CHARGE_CUTOFF, 20), 11);
}
END_TEST

struct cutoff_case {
	uint16_t cell_max_mv;
	int32_t current_ma;
	bool cutoff;
};

/* §3.1 example, one 280 Ah pack, R = 0.02 V/A: cut-off current 1.5 A at
 * 3.40 V, 4 A at 3.45 V, 6.5 A at 3.50 V, 9 A at 3.55 V. */
START_TEST(test_cutoff_current_follows_the_compensated_equation)
{
	static const struct cutoff_case cases[] = {
		{ .cell_max_mv = 3400, .current_ma = 1500, .cutoff = true },
		{ .cell_max_mv = 3400, .current_ma = 1600, .cutoff = false },
		{ .cell_max_mv = 3450, .current_ma = 4000, .cutoff = true },
		{ .cell_max_mv = 3450, .current_ma = 4100, .cutoff = false },
		{ .cell_max_mv = 3500, .current_ma = 6500, .cutoff = true },
		{ .cell_max_mv = 3500, .current_ma = 6600, .cutoff = false },
		{ .cell_max_mv = 3550, .current_ma = 9000, .cutoff = true },
		{ .cell_max_mv = 3550, .current_ma = 9100, .cutoff = false },
		{ .cell_max_mv = 3370, .current_ma = 0, .cutoff = true },	/* full at rest */
		{ .cell_max_mv = 3360, .current_ma = 0, .cutoff = false },
		{ .cell_max_mv = 3380, .current_ma = -1000, .cutoff = true },	/* < 0.005 C: rest */
		{ .cell_max_mv = 3380, .current_ma = -2000, .cutoff = false },
	};

	for (size_t i = 0; i < NCASES(cases); i++) {
		struct charge_config k = config_lfp();
		struct sim s;

		sim_init(&s, &k);
		s.bat.packs_fresh = s.bat.packs_soc = 1;
		s.bat.capacity_mah = 280000;
		s.bat.soc_centi_pct = 9900;
		s.bat.cell_max_mv = cases[i].cell_max_mv;
		s.bat.current_ma = cases[i].current_ma;
		sim_steps(&s, 15);
		ck_assert_msg(s.out.state == (cases[i].cutoff ? CHARGE_CUTOFF : CHARGE_BULK),
			      "case %zu: %u mV %d mA -> %s", i, cases[i].cell_max_mv,
			      cases[i].current_ma, charge_state_name(s.out.state));
	}
}
END_TEST

START_TEST(test_no_cutoff_below_the_minimum_soc_unless_soc_is_unknown)
{
	struct charge_config k = config_lfp();
	struct sim s;

	sim_init(&s, &k);
	bat_full(&s.bat);
	s.bat.soc_centi_pct = 9499;
	sim_steps(&s, 100);
	ck_assert_int_eq(s.out.state, CHARGE_BULK);
	s.bat.soc_centi_pct = 9500;
	ck_assert_uint_eq(sim_until(&s, CHARGE_CUTOFF, 20), 11);

	sim_init(&s, &k);
	bat_full(&s.bat);
	s.bat.soc_centi_pct = 0;
	s.bat.packs_soc = 0;		/* JK04 units only: no SOC to gate on */
	sim_until(&s, CHARGE_CUTOFF, 20);
}
END_TEST

struct cutoff_exit_case {
	const char *what;
	uint16_t cell_max_mv;
	int32_t current_ma;
	enum charge_state after;
};

/* In cut-off, discharging: below bulk − R × 1 A (3.44 V for 560 Ah) the bulk
 * criterion holds and sends it back to bulk; above, a grey zone that lets
 * the cut-off timer run out. */
START_TEST(test_cutoff_returns_to_bulk_only_on_a_held_bulk_criterion)
{
	static const struct cutoff_exit_case cases[] = {
		{ .what = "discharging, cell high", .cell_max_mv = 3445, .current_ma = -10000,
		  .after = CHARGE_FLOAT },
		{ .what = "discharging, cell low", .cell_max_mv = 3430, .current_ma = -10000,
		  .after = CHARGE_BULK },
		{ .what = "charging hard", .cell_max_mv = 3450, .current_ma = 100000,
		  .after = CHARGE_BULK },
	};

	for (size_t i = 0; i < NCASES(cases); i++) {
		struct charge_config k = config_lfp();
		struct sim s;

		sim_init(&s, &k);
		bat_full(&s.bat);
		sim_until(&s, CHARGE_CUTOFF, 20);
		s.bat.cell_max_mv = cases[i].cell_max_mv;
		s.bat.current_ma = cases[i].current_ma;
		sim_steps(&s, 70);
		ck_assert_msg(s.out.state == cases[i].after, "%s: %s", cases[i].what,
			      charge_state_name(s.out.state));
	}
}
END_TEST

START_TEST(test_eoc_timeout_ends_cutoff_when_shorter_than_the_timer)
{
	struct charge_config k = config_lfp();
	struct sim s;

	k.cutoff_timer_s = 7200;
	sim_init(&s, &k);
	bat_full(&s.bat);
	sim_until(&s, CHARGE_CUTOFF, 20);
	ck_assert_uint_eq(sim_until(&s, CHARGE_FLOAT, 4000), 1800);
	ck_assert(s.out.end_of_charge);
}
END_TEST

START_TEST(test_without_float_eoc_holds_rebulk_voltage_and_no_charge)
{
	struct charge_config k = config_lfp();
	struct sim s;

	k.float_enabled = false;
	sim_init(&s, &k);
	bat_full(&s.bat);
	sim_until(&s, CHARGE_CUTOFF, 20);
	sim_until(&s, CHARGE_EOC, 100);
	ck_assert(s.out.end_of_charge);
	for (int i = 0; i < 600; i++) {
		const struct charge_output *o = sim_step(&s);

		ck_assert_int_eq(o->state, CHARGE_EOC);
		ck_assert_uint_eq(o->cvl_mv, CELLS * 3300);
		ck_assert_uint_eq(o->ccl_ma, 0);
		ck_assert(!o->charge_enable);
		ck_assert(o->discharge_enable);
		ck_assert_uint_eq(o->soc_pct, 100);
	}
}
END_TEST

START_TEST(test_charging_not_allowed_waits_at_rebulk_voltage)
{
	struct charge_config k = config_lfp();
	struct sim s;

	sim_init(&s, &k);
	s.bat.charge_allowed = false;
	sim_steps(&s, 5);
	ck_assert_int_eq(s.out.state, CHARGE_WAIT);
	ck_assert(s.out.transmit);
	ck_assert_uint_eq(s.out.cvl_mv, CELLS * 3300);
	ck_assert_uint_eq(s.out.ccl_ma, 0);
	s.bat.charge_allowed = true;
	ck_assert_uint_eq(sim_until(&s, CHARGE_BULK, 2), 1);
	s.bat.charge_allowed = false;
	ck_assert_uint_eq(sim_until(&s, CHARGE_WAIT, 2), 1);
}
END_TEST

struct rebulk_case {
	const char *what;
	uint16_t cell_max_mv;
	uint16_t soc_centi_pct;
	int64_t since_eoc_s;	/* wall-clock seconds since the EOC at the step */
	bool rebulk;
};

START_TEST(test_rebulk_by_cell_voltage_soc_or_days)
{
	static const struct rebulk_case cases[] = {
		{ .what = "max cell at rebulk V", .cell_max_mv = 3300, .soc_centi_pct = 9900,
		  .since_eoc_s = 60, .rebulk = true },
		{ .what = "max cell above rebulk V", .cell_max_mv = 3301, .soc_centi_pct = 9900,
		  .since_eoc_s = 60, .rebulk = false },
		{ .what = "SOC at rebulk SOC", .cell_max_mv = 3400, .soc_centi_pct = 8500,
		  .since_eoc_s = 60, .rebulk = true },
		{ .what = "SOC above rebulk SOC", .cell_max_mv = 3400, .soc_centi_pct = 8501,
		  .since_eoc_s = 60, .rebulk = false },
		{ .what = "14 days since EOC", .cell_max_mv = 3400, .soc_centi_pct = 9900,
		  .since_eoc_s = 14 * DAY_S, .rebulk = true },
		{ .what = "a second short of 14 days", .cell_max_mv = 3400, .soc_centi_pct = 9900,
		  .since_eoc_s = 14 * DAY_S - 1, .rebulk = false },
	};

	for (size_t i = 0; i < NCASES(cases); i++) {
		const struct rebulk_case *r = &cases[i];
		struct charge_config k = config_lfp();
		struct sim s;

		sim_init(&s, &k);
		sim_reach_float(&s);
		sim_steps(&s, 10);
		s.bat.cell_max_mv = r->cell_max_mv;
		s.bat.soc_centi_pct = r->soc_centi_pct;
		s.bat.current_ma = 0;
		s.wall_s = s.c.last_eoc_wall_s + r->since_eoc_s - 1;
		sim_step(&s);
		ck_assert_msg(s.out.state == (r->rebulk ? CHARGE_BULK : CHARGE_FLOAT), "%s: %s",
			      r->what, charge_state_name(s.out.state));
		ck_assert(s.out.changed == r->rebulk);
	}
}
END_TEST

START_TEST(test_rebulk_from_eoc_as_well_as_float)
{
	struct charge_config k = config_lfp();
	struct sim s;

	k.float_enabled = false;
	sim_init(&s, &k);
	bat_full(&s.bat);
	sim_until(&s, CHARGE_EOC, 100);
	s.bat.cell_max_mv = 3290;
	ck_assert_uint_eq(sim_until(&s, CHARGE_BULK, 1), 1);
	ck_assert_uint_eq(s.out.soc_pct, 98);	/* capped again until the next EOC */
}
END_TEST

START_TEST(test_force_charge_has_hysteresis_and_rebulks)
{
	struct charge_config k = config_lfp();
	struct sim s;

	k.force_charge_enabled = true;
	k.rebulk_soc = 0;
	sim_init(&s, &k);
	sim_reach_float(&s);
	ck_assert(!s.out.force_charge);

	s.bat.cell_max_mv = 3400;
	s.bat.current_ma = 0;
	s.bat.soc_centi_pct = 1000;
	ck_assert_uint_eq(sim_until(&s, CHARGE_BULK, 1), 1);
	ck_assert(s.out.force_charge && s.out.charge_enable);
	s.bat.soc_centi_pct = 2000;
	sim_step(&s);
	ck_assert(s.out.force_charge);
	s.bat.soc_centi_pct = 3000;
	sim_step(&s);
	ck_assert(!s.out.force_charge);
	s.bat.soc_centi_pct = 2000;
	sim_step(&s);
	ck_assert(!s.out.force_charge);

	k.force_charge_enabled = false;
	sim_init(&s, &k);
	s.bat.soc_centi_pct = 500;
	sim_steps(&s, 3);
	ck_assert(!s.out.force_charge);
	ck_assert(!s.out.full_charge);
}
END_TEST

struct soc_case {
	uint16_t soc_centi_pct;
	uint8_t before_eoc, after_eoc;
};

START_TEST(test_soc_shown_is_98_at_most_until_end_of_charge)
{
	static const struct soc_case cases[] = {
		{ .soc_centi_pct = 10000, .before_eoc = 98, .after_eoc = 100 },
		{ .soc_centi_pct = 9950, .before_eoc = 98, .after_eoc = 100 },
		{ .soc_centi_pct = 9849, .before_eoc = 98, .after_eoc = 98 },
		{ .soc_centi_pct = 9749, .before_eoc = 97, .after_eoc = 97 },
		{ .soc_centi_pct = 9650, .before_eoc = 97, .after_eoc = 97 },
		{ .soc_centi_pct = 12000, .before_eoc = 98, .after_eoc = 100 },
	};

	for (size_t i = 0; i < NCASES(cases); i++) {
		struct charge_config k = config_lfp();
		struct sim s;

		sim_init(&s, &k);
		bat_full(&s.bat);
		s.bat.soc_centi_pct = cases[i].soc_centi_pct;
		sim_until(&s, CHARGE_CUTOFF, 20);
		ck_assert_uint_eq(s.out.soc_pct, cases[i].before_eoc);
		sim_until(&s, CHARGE_FLOAT, 100);
		ck_assert_msg(s.out.soc_pct == cases[i].after_eoc, "case %zu: %u", i,
			      s.out.soc_pct);
	}
}
END_TEST

/* ---- limits ------------------------------------------------------------ */

/* The output after a few steps in bulk, charging hard (no cut-off), ramp off. */
static struct charge_output settle(struct charge_config k, struct battery b)
{
	struct sim s;

	k.ramp_ma_per_s = 0;
	sim_init(&s, &k);
	s.bat = b;
	sim_steps(&s, 3);
	return s.out;
}

/* 2 − 2^(r^1.8), §3.1 Auto CCL. */
static double taper(double r)
{
	if (r <= 0)
		return 1;
	if (r >= 1)
		return 0;
	return 2 - pow(2, pow(r, 1.8));
}

static uint32_t floor100(double ma)
{
	return (uint32_t)(ma / 100) * 100;
}

static void assert_near_100(uint32_t got, uint32_t want, const char *what, unsigned mv)
{
	ck_assert_msg(got + 100 >= want && got <= want + 100, "%s at %u mV: %u mA, want %u", what,
		      mv, got, want);
}

START_TEST(test_ccl_tapers_on_the_highest_cell)
{
	/* OVP 3.65, bulk 3.45 -> cell_high 3.55; float 3.35; base 200 A. */
	static const uint16_t cells_mv[] = { 3300, 3350, 3400, 3450, 3480, 3500, 3520, 3549, 3550, 3600 };

	for (size_t i = 0; i < NCASES(cells_mv); i++) {
		struct battery b = battery_16s();
		struct charge_output o;
		uint32_t want;

		bat_bulk_charging(&b);
		b.soc_centi_pct = 5000;
		b.cell_max_mv = cells_mv[i];
		o = settle(config_lfp(), b);
		ck_assert_int_eq(o.state, CHARGE_BULK);
		want = floor100(200000 * taper((cells_mv[i] - 3350) / 200.0));
		assert_near_100(o.ccl_ma, want, "CCL", cells_mv[i]);
		ck_assert(o.charge_enable == (o.ccl_ma > 0));
	}
	/* The doc's round numbers. */
	{
		struct battery b = battery_16s();

		bat_bulk_charging(&b);
		b.cell_max_mv = 3350;
		ck_assert_uint_eq(settle(config_lfp(), b).ccl_ma, 200000);
		b.cell_max_mv = 3450;
		ck_assert_uint_eq(settle(config_lfp(), b).ccl_ma / 1000, 155);	/* 78.0 % */
		b.cell_max_mv = 3550;
		ck_assert_uint_eq(settle(config_lfp(), b).ccl_ma, 0);
	}
}
END_TEST

START_TEST(test_dcl_tapers_on_the_lowest_cell)
{
	/* Knee 3.10 V down to UVP + 0.2 = 3.00 V. */
	static const uint16_t cells_mv[] = { 3300, 3100, 3080, 3050, 3020, 3001, 3000, 2900 };

	for (size_t i = 0; i < NCASES(cells_mv); i++) {
		struct battery b = battery_16s();
		struct charge_output o;
		uint32_t want;

		b.cell_min_mv = cells_mv[i];
		o = settle(config_lfp(), b);
		want = floor100(200000 * taper((3100 - cells_mv[i]) / 100.0));
		assert_near_100(o.dcl_ma, want, "DCL", cells_mv[i]);
		ck_assert(o.discharge_enable == (o.dcl_ma > 0));
	}
}
END_TEST

struct temp_case {
	const char *what;
	int16_t temp_min_dc, temp_max_dc;
	bool no_temps, no_capacity;
	uint32_t ccl_ma, dcl_ma;
};

/* 560 Ah, limits 400 A everywhere else, so the tables show: 1 C = 560 A. */
START_TEST(test_temperature_tables_derate_ccl_and_dcl)
{
	static const struct temp_case cases[] = {
		{ .what = "25 °C", .temp_min_dc = 250, .temp_max_dc = 250,
		  .ccl_ma = 280000, .dcl_ma = 280000 },
		{ .what = "0 °C", .temp_min_dc = 0, .temp_max_dc = 0,
		  .ccl_ma = 28000, .dcl_ma = 280000 },
		{ .what = "2.5 °C", .temp_min_dc = 25, .temp_max_dc = 25,
		  .ccl_ma = 47600, .dcl_ma = 280000 },
		{ .what = "5 °C", .temp_min_dc = 50, .temp_max_dc = 50,
		  .ccl_ma = 67200, .dcl_ma = 280000 },
		{ .what = "10 °C", .temp_min_dc = 100, .temp_max_dc = 100,
		  .ccl_ma = 168000, .dcl_ma = 280000 },
		{ .what = "-0.1 °C", .temp_min_dc = -1, .temp_max_dc = 100, .ccl_ma = 0,
		  .dcl_ma = 280000 },
		{ .what = "-25 °C", .temp_min_dc = -250, .temp_max_dc = -250, .ccl_ma = 0,
		  .dcl_ma = 140000 },
		{ .what = "57.5 °C", .temp_min_dc = 575, .temp_max_dc = 575, .ccl_ma = 140000,
		  .dcl_ma = 140000 },
		{ .what = "60 °C", .temp_min_dc = 600, .temp_max_dc = 600, .ccl_ma = 0,
		  .dcl_ma = 0 },
		{ .what = "cold and hot sensors", .temp_min_dc = 50, .temp_max_dc = 575,
		  .ccl_ma = 67200, .dcl_ma = 140000 },
		{ .what = "no temperatures: no derating", .temp_min_dc = -100, .temp_max_dc = 700,
		  .no_temps = true, .ccl_ma = 400000, .dcl_ma = 400000 },
		{ .what = "no capacity, 0 °C: 10 % of the limit", .temp_min_dc = 0,
		  .temp_max_dc = 0, .no_capacity = true, .ccl_ma = 40000, .dcl_ma = 400000 },
		{ .what = "no capacity, 60 °C", .temp_min_dc = 600, .temp_max_dc = 600,
		  .no_capacity = true, .ccl_ma = 0, .dcl_ma = 0 },
	};

	for (size_t i = 0; i < NCASES(cases); i++) {
		const struct temp_case *t = &cases[i];
		struct charge_config k = config_lfp();
		struct battery b = battery_16s();
		struct charge_output o;

		k.max_charge_ma = k.max_discharge_ma = 400000;
		bat_bulk_charging(&b);
		b.soc_centi_pct = 5000;
		b.cell_max_mv = 3300;
		b.temp_min_dc = t->temp_min_dc;
		b.temp_max_dc = t->temp_max_dc;
		b.have_temps = !t->no_temps;
		if (t->no_capacity)
			b.capacity_mah = 0;
		o = settle(k, b);
		ck_assert_msg(o.ccl_ma == t->ccl_ma && o.dcl_ma == t->dcl_ma,
			      "%s: CCL %u DCL %u, want %u %u", t->what, o.ccl_ma, o.dcl_ma, t->ccl_ma,
			      t->dcl_ma);
	}
}
END_TEST

START_TEST(test_limits_drop_at_once_and_rise_by_the_ramp)
{
	struct charge_config k = config_lfp();
	struct sim s;
	uint32_t prev, steps = 0;

	sim_init(&s, &k);
	bat_bulk_charging(&s.bat);
	s.bat.soc_centi_pct = 5000;
	s.bat.cell_max_mv = 3300;
	/* From start-up, CCL climbs 5 A per second to 200 A. */
	for (uint32_t n = 1; n <= 40; n++) {
		sim_step(&s);
		ck_assert_uint_eq(s.out.ccl_ma, 5000 * n);
		ck_assert_uint_eq(s.out.dcl_ma, 5000 * n);
	}
	sim_step(&s);
	ck_assert_uint_eq(s.out.ccl_ma, 200000);

	s.bat.cell_max_mv = 3450;	/* taper to 78 %: one step */
	sim_step(&s);
	ck_assert_uint_lt(s.out.ccl_ma, 160000);
	prev = s.out.ccl_ma;

	s.bat.cell_max_mv = 3300;
	while (s.out.ccl_ma < 200000) {
		sim_step(&s);
		ck_assert_uint_le(s.out.ccl_ma, prev + 5000);
		prev = s.out.ccl_ma;
		steps++;
		ck_assert_uint_lt(steps, 100);
	}
	ck_assert_uint_ge(steps, 8);

	/* A longer gap between steps allows a proportionally larger rise. */
	s.bat.charge_allowed = false;
	sim_step(&s);
	ck_assert_uint_eq(s.out.ccl_ma, 0);
	s.bat.charge_allowed = true;
	sim_step(&s);		/* back to bulk */
	s.now_ms += 2500;
	charge_step(&s.c, &s.bat, s.now_ms, s.wall_s, &s.out);
	ck_assert_uint_le(s.out.ccl_ma, 5000 + 12500);
	ck_assert_uint_ge(s.out.ccl_ma, 12500);
}
END_TEST

START_TEST(test_slow_ramp_still_makes_progress_in_whole_100_ma)
{
	struct charge_config k = config_lfp();
	struct sim s;

	k.ramp_ma_per_s = 30;	/* under the 100 mA resolution per step */
	sim_init(&s, &k);
	bat_bulk_charging(&s.bat);
	sim_steps(&s, 10);
	ck_assert_uint_eq(s.out.ccl_ma, 300);
	ck_assert_uint_eq(s.out.ccl_ma % 100, 0);
}
END_TEST

struct dvl_case {
	uint32_t bat_uvp_mv;
	uint32_t dvl_mv;
};

START_TEST(test_dvl_is_the_highest_uvp_plus_200_mv)
{
	static const struct dvl_case cases[] = {
		{ .bat_uvp_mv = 0, .dvl_mv = CELLS * 3000 },
		{ .bat_uvp_mv = 2500, .dvl_mv = CELLS * 3000 },
		{ .bat_uvp_mv = 2900, .dvl_mv = CELLS * 3100 },
	};

	for (size_t i = 0; i < NCASES(cases); i++) {
		struct battery b = battery_16s();

		b.cell_uvp_mv = cases[i].bat_uvp_mv;
		ck_assert_uint_eq(settle(config_lfp(), b).dvl_mv, cases[i].dvl_mv);
	}
}
END_TEST

/* ---- persistence ------------------------------------------------------- */

struct restore_case {
	enum charge_state saved, resumed;
};

START_TEST(test_restore_resumes_cutoff_as_bulk_and_keeps_eoc_and_float)
{
	static const struct restore_case cases[] = {
		{ .saved = CHARGE_WAIT, .resumed = CHARGE_WAIT },
		{ .saved = CHARGE_BULK, .resumed = CHARGE_BULK },
		{ .saved = CHARGE_CUTOFF, .resumed = CHARGE_BULK },
		{ .saved = CHARGE_EOC, .resumed = CHARGE_EOC },
		{ .saved = CHARGE_FLOAT, .resumed = CHARGE_FLOAT },
		{ .saved = (enum charge_state)42, .resumed = CHARGE_WAIT },
	};

	for (size_t i = 0; i < NCASES(cases); i++) {
		struct charge_config k = config_lfp();
		struct charge c;
		struct charge_persist p = { .state = cases[i].saved, .last_eoc_wall_s = 1740000000 };

		charge_init(&c, &k, 1000);
		charge_restore(&c, &p, 2000);
		ck_assert_int_eq(c.state, cases[i].resumed);
		charge_persist(&c, &p);
		ck_assert_int_eq(p.state, cases[i].resumed);
		ck_assert_int_eq(p.last_eoc_wall_s, 1740000000);
	}
}
END_TEST

START_TEST(test_restored_float_holds_float_voltage_and_counts_days_from_saved_eoc)
{
	struct charge_config k = config_lfp();
	struct sim s;
	struct charge_persist p;

	sim_init(&s, &k);
	sim_reach_float(&s);
	charge_persist(&s.c, &p);
	ck_assert_int_eq(p.state, CHARGE_FLOAT);

	charge_init(&s.c, &k, s.now_ms);
	charge_restore(&s.c, &p, s.now_ms);
	s.bat.current_ma = 0;
	sim_step(&s);
	ck_assert_int_eq(s.out.state, CHARGE_FLOAT);
	ck_assert_uint_eq(s.out.cvl_mv, CELLS * 3350);
	s.wall_s = p.last_eoc_wall_s + 14 * DAY_S - 1;
	ck_assert_uint_eq(sim_until(&s, CHARGE_BULK, 1), 1);
}
END_TEST

START_TEST(test_unknown_last_eoc_starts_the_day_count_instead_of_rebulking)
{
	struct charge_config k = config_lfp();
	struct sim s;
	struct charge_persist p = { .state = CHARGE_EOC, .last_eoc_wall_s = 0 };

	sim_init(&s, &k);
	s.bat.cell_max_mv = 3400;
	s.bat.soc_centi_pct = 9900;
	charge_restore(&s.c, &p, s.now_ms);
	sim_step(&s);
	ck_assert_int_eq(s.out.state, CHARGE_FLOAT);
	ck_assert_int_eq(s.c.last_eoc_wall_s, s.wall_s);
}
END_TEST

/* ---- safety: each rule, attacked ---------------------------------------- */

/*
 * Every invariant of charge.h, computed here from the inputs alone.
 * `prev` (may be NULL) is the previous output, `dt_ms` the time between.
 */
/* Check's ck_assert records a mark point on every pass; over the random
 * test's 180 000 steps that costs seconds, so only a failure calls Check. */
#define INVARIANT(cond, ...)                       \
	do {                                       \
		if (!(cond))                       \
			ck_abort_msg(__VA_ARGS__); \
	} while (0)

static void assert_invariants(const struct charge_config *k, const struct battery *b,
			      const struct charge_output *o, const struct charge_output *prev,
			      uint64_t dt_ms, const char *ctx)
{
	uint64_t ovp = k->cell_ovp_mv;
	bool charge_state = o->state == CHARGE_BULK || o->state == CHARGE_CUTOFF ||
			    o->state == CHARGE_FLOAT;

	INVARIANT(o->state >= CHARGE_WAIT && o->state <= CHARGE_FLOAT, "%s: state", ctx);
	if (!b->ready || b->packs_fresh == 0 || k->cells == 0) {
		INVARIANT(!o->transmit && !o->cvl_mv && !o->dvl_mv && !o->ccl_ma &&
				      !o->dcl_ma && !o->charge_enable && !o->discharge_enable &&
				      !o->force_charge && !o->full_charge && !o->soc_pct &&
				      !o->soh_pct, "%s: silent battery gets nothing", ctx);
		return;
	}
	INVARIANT(o->transmit, "%s: transmit", ctx);

	if (b->cell_ovp_mv && b->cell_ovp_mv < ovp)
		ovp = b->cell_ovp_mv;
	INVARIANT(o->cvl_mv <= (uint64_t)k->cells * k->bulk_cell_mv, "%s: CVL %u > bulk", ctx,
		      o->cvl_mv);
	if (ovp > CHARGE_OVP_MARGIN_MV)
		INVARIANT(o->cvl_mv <= (uint64_t)k->cells * (ovp - CHARGE_OVP_MARGIN_MV) &&
				      o->cvl_mv < (uint64_t)k->cells * ovp,
			      "%s: CVL %u vs OVP %u", ctx, o->cvl_mv, (unsigned)ovp);
	else
		INVARIANT(o->cvl_mv == 0, "%s: CVL with no usable OVP", ctx);

	INVARIANT(o->ccl_ma <= k->max_charge_ma && o->ccl_ma <= b->charge_limit_ma,
		      "%s: CCL %u over a limit", ctx, o->ccl_ma);
	INVARIANT(o->dcl_ma <= k->max_discharge_ma && o->dcl_ma <= b->discharge_limit_ma,
		      "%s: DCL %u over a limit", ctx, o->dcl_ma);
	INVARIANT(o->ccl_ma % 100 == 0 && o->dcl_ma % 100 == 0, "%s: 0.1 A steps", ctx);
	INVARIANT(o->charge_enable == (o->ccl_ma > 0), "%s: charge bit vs CCL", ctx);
	INVARIANT(o->discharge_enable == (o->dcl_ma > 0), "%s: discharge bit vs DCL", ctx);
	INVARIANT(!o->force_charge || o->charge_enable, "%s: force charge without CCL", ctx);
	INVARIANT(!o->full_charge || o->charge_enable, "%s: full charge without CCL", ctx);

	if (b->packs_fresh < k->min_packs)
		INVARIANT(!o->ccl_ma && !o->dcl_ma, "%s: too few packs", ctx);
	if (!b->charge_allowed || k->user_forbid_charge || !charge_state ||
	    (b->protections & (BANK_ALARM_CELL_OV | BANK_ALARM_OVER_TEMP | BANK_ALARM_UNDER_TEMP |
			       BANK_ALARM_CHARGE_OC)))
		INVARIANT(o->ccl_ma == 0, "%s: CCL %u must be 0", ctx, o->ccl_ma);
	if (!b->discharge_allowed || k->user_forbid_discharge ||
	    (b->protections & (BANK_ALARM_CELL_UV | BANK_ALARM_DISCHARGE_OC)))
		INVARIANT(o->dcl_ma == 0, "%s: DCL %u must be 0", ctx, o->dcl_ma);

	INVARIANT(o->soc_pct <= 100 && o->soh_pct <= 100, "%s: percentages", ctx);
	if (o->state != CHARGE_EOC && o->state != CHARGE_FLOAT)
		INVARIANT(o->soc_pct <= 98, "%s: SOC %u before EOC", ctx, o->soc_pct);

	if (prev && k->ramp_ma_per_s) {
		uint64_t rise = (uint64_t)k->ramp_ma_per_s * dt_ms / 1000 + 100;

		INVARIANT(o->ccl_ma <= prev->ccl_ma + rise, "%s: CCL %u rose too fast from %u",
			      ctx, o->ccl_ma, prev->ccl_ma);
		INVARIANT(o->dcl_ma <= prev->dcl_ma + rise, "%s: DCL rose too fast", ctx);
	}
}

/* Runs the full-charge scenario, asserting the invariants at every step. */
static void run_checked(const struct charge_config *k, const struct battery *b, const char *ctx)
{
	struct sim s;
	struct charge_output prev;

	sim_init(&s, k);
	s.bat = *b;
	for (int i = 0; i < 400; i++) {
		if (i == 50)
			bat_full(&s.bat);
		prev = s.out;
		sim_step(&s);
		assert_invariants(k, &s.bat, &s.out, i ? &prev : NULL, 1000, ctx);
	}
}

START_TEST(test_safety_huge_configured_max_is_capped_by_small_pack_limits)
{
	struct charge_config k = config_lfp();
	struct battery b = battery_16s();
	struct charge_output o;

	k.max_charge_ma = k.max_discharge_ma = UINT32_MAX;
	b.charge_limit_ma = 12345;
	b.discharge_limit_ma = 6789;
	bat_bulk_charging(&b);
	b.cell_max_mv = 3300;	/* below the taper */
	o = settle(k, b);
	ck_assert_uint_eq(o.ccl_ma, 12300);
	ck_assert_uint_eq(o.dcl_ma, 6700);
	run_checked(&k, &b, "huge max");

	b.charge_limit_ma = b.discharge_limit_ma = 99;	/* below the CAN resolution */
	o = settle(k, b);
	ck_assert(o.ccl_ma == 0 && !o.charge_enable && o.dcl_ma == 0 && !o.discharge_enable);
}
END_TEST

START_TEST(test_safety_bulk_at_or_above_ovp_keeps_cvl_below_ovp)
{
	static const uint32_t bulks[] = { 3600, 3601, 3650, 3700, 4000, UINT32_MAX / 16 };

	for (size_t i = 0; i < NCASES(bulks); i++) {
		struct charge_config k = config_lfp();
		struct battery b = battery_16s();
		struct charge_output o;

		k.bulk_cell_mv = bulks[i];
		bat_bulk_charging(&b);
		o = settle(k, b);
		ck_assert_uint_le(o.cvl_mv, CELLS * (3650 - CHARGE_OVP_MARGIN_MV));
		ck_assert_uint_lt(o.cvl_mv, CELLS * 3650);
		run_checked(&k, &b, "bulk at OVP");
		b.cell_max_mv = 3640;	/* nearly at OVP: no charge current at all */
		ck_assert_uint_eq(settle(k, b).ccl_ma, 0);
	}
}
END_TEST

START_TEST(test_safety_pack_ovp_below_configured_ovp_wins)
{
	static const uint32_t pack_ovps[] = { 3480, 3450, 3400, 3000, 40, 1 };

	for (size_t i = 0; i < NCASES(pack_ovps); i++) {
		struct charge_config k = config_lfp();
		struct battery b = battery_16s();
		struct charge_output o;
		uint32_t top = pack_ovps[i] > CHARGE_OVP_MARGIN_MV ?
				       pack_ovps[i] - CHARGE_OVP_MARGIN_MV : 0;

		b.cell_ovp_mv = pack_ovps[i];
		bat_bulk_charging(&b);
		o = settle(k, b);
		ck_assert_uint_eq(o.cvl_mv, CELLS * (top < 3450 ? top : 3450));
		ck_assert(o.cvl_mv == 0 || o.cvl_mv < CELLS * pack_ovps[i]);
		run_checked(&k, &b, "pack OVP");
	}
}
END_TEST

START_TEST(test_safety_not_ready_battery_gets_nothing)
{
	struct charge_config k = config_lfp();
	struct sim s;

	sim_init(&s, &k);
	sim_reach_float(&s);
	ck_assert(s.out.transmit && s.out.ccl_ma > 0);
	s.bat.ready = false;
	s.bat.cell_max_mv = 0;		/* what a not-ready aggregate may hold */
	s.bat.soc_centi_pct = 0;
	for (int i = 0; i < 30; i++) {
		sim_step(&s);
		assert_invariants(&k, &s.bat, &s.out, NULL, 0, "not ready");
		ck_assert(!s.out.transmit);
		ck_assert_int_eq(s.out.state, CHARGE_FLOAT);	/* no reading is no rebulk */
	}
}
END_TEST

START_TEST(test_safety_no_fresh_pack_stops_transmission)
{
	struct charge_config k = config_lfp();
	struct sim s;

	sim_init(&s, &k);
	bat_bulk_charging(&s.bat);
	sim_steps(&s, 60);
	s.bat.packs_fresh = 0;
	sim_step(&s);
	assert_invariants(&k, &s.bat, &s.out, NULL, 0, "no fresh pack");
	ck_assert(!s.out.transmit);
	ck_assert_uint_eq(s.out.ccl_ma, 0);
	ck_assert_uint_eq(s.out.cvl_mv, 0);
}
END_TEST

START_TEST(test_safety_too_few_fresh_packs_transmit_zero_limits)
{
	struct charge_config k = config_lfp();
	struct sim s;

	k.min_packs = 2;
	sim_init(&s, &k);
	bat_bulk_charging(&s.bat);
	sim_steps(&s, 60);
	ck_assert(s.out.ccl_ma > 0 && s.out.dcl_ma > 0);
	s.bat.packs_fresh = 1;
	for (int i = 0; i < 10; i++) {
		sim_step(&s);
		assert_invariants(&k, &s.bat, &s.out, NULL, 0, "one of two packs");
		ck_assert(s.out.transmit);
		ck_assert(!s.out.ccl_ma && !s.out.dcl_ma);
		ck_assert(!s.out.charge_enable && !s.out.discharge_enable);
	}
	/* Back to two: the limits ramp up again rather than jump. */
	s.bat.packs_fresh = 2;
	sim_steps(&s, 2);
	ck_assert_uint_le(s.out.dcl_ma, 2 * 5000);
}
END_TEST

START_TEST(test_safety_charge_not_allowed_clears_ccl_alone)
{
	struct charge_config k = config_lfp();
	struct sim s;

	sim_init(&s, &k);
	sim_reach_float(&s);	/* a charging state, everything else fine */
	s.bat.charge_allowed = false;
	sim_step(&s);
	assert_invariants(&k, &s.bat, &s.out, NULL, 0, "charge not allowed");
	ck_assert(!s.out.charge_enable && s.out.ccl_ma == 0);
	ck_assert(s.out.discharge_enable && s.out.dcl_ma > 0);

	sim_init(&s, &k);
	bat_bulk_charging(&s.bat);
	sim_steps(&s, 60);
	s.bat.discharge_allowed = false;
	sim_step(&s);
	ck_assert(!s.out.discharge_enable && s.out.dcl_ma == 0);
	ck_assert(s.out.charge_enable && s.out.ccl_ma > 0);
}
END_TEST

struct forbid_case {
	bool forbid_charge, forbid_discharge;
};

START_TEST(test_safety_user_forbid_switches_win)
{
	static const struct forbid_case cases[] = {
		{ .forbid_charge = true },
		{ .forbid_discharge = true },
		{ .forbid_charge = true, .forbid_discharge = true },
	};

	for (size_t i = 0; i < NCASES(cases); i++) {
		struct charge_config k = config_lfp();
		struct battery b = battery_16s();
		struct charge_output o;

		k.user_forbid_charge = cases[i].forbid_charge;
		k.user_forbid_discharge = cases[i].forbid_discharge;
		k.force_charge_enabled = true;
		bat_bulk_charging(&b);
		b.soc_centi_pct = 500;	/* would ask for a force charge */
		o = settle(k, b);
		ck_assert(o.charge_enable == !cases[i].forbid_charge);
		ck_assert(o.discharge_enable == !cases[i].forbid_discharge);
		ck_assert(o.force_charge == !cases[i].forbid_charge);
		run_checked(&k, &b, "user forbid");
	}
}
END_TEST

struct protection_case {
	uint32_t alarm;
	bool blocks_charge, blocks_discharge;
};

START_TEST(test_safety_protections_block_their_direction)
{
	static const struct protection_case cases[] = {
		{ .alarm = BANK_ALARM_CELL_OV, .blocks_charge = true },
		{ .alarm = BANK_ALARM_OVER_TEMP, .blocks_charge = true },
		{ .alarm = BANK_ALARM_UNDER_TEMP, .blocks_charge = true },
		{ .alarm = BANK_ALARM_CHARGE_OC, .blocks_charge = true },
		{ .alarm = BANK_ALARM_CELL_UV, .blocks_discharge = true },
		{ .alarm = BANK_ALARM_DISCHARGE_OC, .blocks_discharge = true },
		{ .alarm = BANK_ALARM_IMBALANCE },
	};

	for (size_t i = 0; i < NCASES(cases); i++) {
		struct charge_config k = config_lfp();
		struct battery b = battery_16s();
		struct charge_output o;

		bat_bulk_charging(&b);
		b.protections = cases[i].alarm;
		o = settle(k, b);
		ck_assert_msg(o.charge_enable == !cases[i].blocks_charge &&
				      o.discharge_enable == !cases[i].blocks_discharge,
			      "alarm %#x: charge %d discharge %d", cases[i].alarm, o.charge_enable,
			      o.discharge_enable);
		b.warnings = cases[i].alarm;	/* a warning blocks nothing */
		b.protections = 0;
		o = settle(k, b);
		ck_assert(o.charge_enable && o.discharge_enable);
	}
}
END_TEST

/* xorshift64, fixed seed: the same "random" cases on every run. */
static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t xorshift(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint32_t rnd(uint32_t n)
{
	return (uint32_t)(xorshift() % n);
}

static bool chance(unsigned pct)
{
	return rnd(100) < pct;
}

static uint32_t rnd_ma(void)
{
	return chance(10) ? UINT32_MAX : rnd(600001);
}

static void random_config(struct charge_config *k)
{
	charge_config_defaults(k, (enum charge_chemistry)rnd(3), chance(2) ? 0 : 1 + rnd(32));
	k->min_packs = rnd(4);
	k->bulk_cell_mv = chance(3) ? UINT32_MAX / 64 : 2000 + rnd(2500);
	k->float_cell_mv = 2000 + rnd(2500);
	k->rebulk_cell_mv = 2000 + rnd(2500);
	k->cell_ovp_mv = chance(3) ? rnd(100) : 2000 + rnd(2500);
	k->cell_uvp_mv = 1500 + rnd(2000);
	k->dcl_knee_cell_mv = 2000 + rnd(2000);
	k->end_of_charge_timeout_s = rnd(300);
	k->cutoff_hold_s = rnd(20);
	k->cutoff_timer_s = rnd(120);
	k->cutoff_min_soc = (uint8_t)rnd(101);
	k->rebulk_soc = (uint8_t)rnd(101);
	k->rebulk_days = (uint16_t)rnd(3);
	k->float_enabled = chance(70);
	k->float_step_mv = rnd(300);
	k->float_step_interval_s = rnd(30);
	k->max_charge_ma = rnd_ma();
	k->max_discharge_ma = rnd_ma();
	k->ramp_ma_per_s = chance(20) ? 0 : rnd(100000);
	k->force_charge_enabled = chance(50);
	k->force_charge_start_soc = (uint8_t)rnd(50);
	k->force_charge_stop_soc = (uint8_t)rnd(100);
	k->user_forbid_charge = chance(10);
	k->user_forbid_discharge = chance(10);
}

static void random_cells(struct battery *b)
{
	uint16_t base = (uint16_t)(2500 + rnd(1500));

	if (chance(5)) {
		b->cell_min_mv = (uint16_t)rnd(65536);
		b->cell_max_mv = (uint16_t)rnd(65536);
		return;
	}
	b->cell_max_mv = (uint16_t)(base + rnd(300));
	b->cell_min_mv = (uint16_t)(base - rnd(300));
}

static void random_battery(struct battery *b)
{
	*b = battery_16s();
	b->ready = chance(90);
	b->packs_fresh = rnd(5);
	b->packs_soc = rnd(3);
	b->capacity_mah = chance(5) ? 0 : chance(1) ? UINT64_MAX : rnd(2000000);
	b->soc_centi_pct = chance(5) ? UINT16_MAX : (uint16_t)rnd(10001);
	b->soh_pct = (uint8_t)rnd(256);
	b->current_ma = chance(2) ? INT32_MIN : (int32_t)rnd(600001) - 300000;
	random_cells(b);
	b->have_temps = chance(80);
	b->temp_min_dc = chance(2) ? INT16_MIN : (int16_t)(-400 + (int)rnd(1200));
	b->temp_max_dc = chance(2) ? INT16_MAX : (int16_t)(b->temp_min_dc / 2 + (int)rnd(600));
	b->charge_allowed = chance(85);
	b->discharge_allowed = chance(85);
	b->charge_limit_ma = rnd_ma();
	b->discharge_limit_ma = rnd_ma();
	b->cell_ovp_mv = chance(50) ? 0 : rnd(5000);
	b->cell_uvp_mv = chance(50) ? 0 : rnd(4000);
	b->protections = chance(30) ? rnd(256) : 0;
}

/* Mostly small drifts, so the state machine gets somewhere between upsets. */
static void mutate_battery(struct battery *b)
{
	switch (rnd(12)) {
	case 0: random_battery(b); break;
	case 1: random_cells(b); break;
	case 2: b->current_ma = (int32_t)rnd(20001) - 5000; break;
	case 3: b->soc_centi_pct = (uint16_t)rnd(10001); break;
	case 4: b->ready = !b->ready; break;
	case 5: b->protections = chance(50) ? 1u << rnd(8) : 0; break;
	case 6: b->charge_allowed = !b->charge_allowed; break;
	default: break;
	}
}

START_TEST(test_safety_random_batteries_and_configs_keep_every_invariant)
{
	unsigned seen[CHARGE_FLOAT + 1] = { 0 };

	for (int run = 0; run < 3000; run++) {
		struct charge_config k;
		struct charge c;
		struct battery b;
		struct charge_output o = { 0 }, prev;
		uint64_t now_ms = rnd(1000000);
		int64_t wall_s = chance(5) ? 0 : 1700000000 + (int64_t)rnd(100000000);
		char ctx[48];

		random_config(&k);
		random_battery(&b);
		charge_init(&c, &k, now_ms);
		if (chance(20)) {
			struct charge_persist p = { .state = (enum charge_state)rnd(6),
						    .last_eoc_wall_s = chance(50) ? 0 : wall_s - rnd(3 * DAY_S) };
			charge_restore(&c, &p, now_ms);
		}
		for (int step = 0; step < 60; step++) {
			uint64_t dt_ms = chance(90) ? 1000 : rnd(5000);

			if (chance(25))
				mutate_battery(&b);
			now_ms += dt_ms;
			wall_s += chance(2) ? DAY_S : 1;
			prev = o;
			charge_step(&c, &b, now_ms, wall_s, &o);
			snprintf(ctx, sizeof(ctx), "run %d step %d", run, step);
			assert_invariants(&k, &b, &o, step ? &prev : NULL, dt_ms, ctx);
			seen[o.state]++;
		}
	}
	for (int st = CHARGE_WAIT; st <= CHARGE_FLOAT; st++)
		ck_assert_msg(seen[st] > 0, "state %s never reached", charge_state_name(st));
}
END_TEST

TCase *tcase_charge(void)
{
	TCase *tc = tcase_create("charge");

	tcase_add_test(tc, test_defaults_per_chemistry_are_ordered_and_follow_the_constants);
	tcase_add_test(tc, test_defaults_carry_the_yambms_timers_and_limits);
	tcase_add_test(tc, test_state_names);

	tcase_add_test(tc, test_full_charge_goes_bulk_cutoff_eoc_float_with_float_steps);
	tcase_add_test(tc, test_float_steps_never_undershoot_the_float_voltage);
	tcase_add_test(tc, test_cutoff_criterion_must_persist_for_the_hold_time);
	tcase_add_test(tc, test_cutoff_hold_counts_only_time_spent_in_bulk);
	tcase_add_test(tc, test_cutoff_current_follows_the_compensated_equation);
	tcase_add_test(tc, test_no_cutoff_below_the_minimum_soc_unless_soc_is_unknown);
	tcase_add_test(tc, test_cutoff_returns_to_bulk_only_on_a_held_bulk_criterion);
	tcase_add_test(tc, test_eoc_timeout_ends_cutoff_when_shorter_than_the_timer);
	tcase_add_test(tc, test_without_float_eoc_holds_rebulk_voltage_and_no_charge);
	tcase_add_test(tc, test_charging_not_allowed_waits_at_rebulk_voltage);
	tcase_add_test(tc, test_rebulk_by_cell_voltage_soc_or_days);
	tcase_add_test(tc, test_rebulk_from_eoc_as_well_as_float);
	tcase_add_test(tc, test_force_charge_has_hysteresis_and_rebulks);
	tcase_add_test(tc, test_soc_shown_is_98_at_most_until_end_of_charge);

	tcase_add_test(tc, test_ccl_tapers_on_the_highest_cell);
	tcase_add_test(tc, test_dcl_tapers_on_the_lowest_cell);
	tcase_add_test(tc, test_temperature_tables_derate_ccl_and_dcl);
	tcase_add_test(tc, test_limits_drop_at_once_and_rise_by_the_ramp);
	tcase_add_test(tc, test_slow_ramp_still_makes_progress_in_whole_100_ma);
	tcase_add_test(tc, test_dvl_is_the_highest_uvp_plus_200_mv);

	tcase_add_test(tc, test_restore_resumes_cutoff_as_bulk_and_keeps_eoc_and_float);
	tcase_add_test(tc, test_restored_float_holds_float_voltage_and_counts_days_from_saved_eoc);
	tcase_add_test(tc, test_unknown_last_eoc_starts_the_day_count_instead_of_rebulking);

	tcase_add_test(tc, test_safety_huge_configured_max_is_capped_by_small_pack_limits);
	tcase_add_test(tc, test_safety_bulk_at_or_above_ovp_keeps_cvl_below_ovp);
	tcase_add_test(tc, test_safety_pack_ovp_below_configured_ovp_wins);
	tcase_add_test(tc, test_safety_not_ready_battery_gets_nothing);
	tcase_add_test(tc, test_safety_no_fresh_pack_stops_transmission);
	tcase_add_test(tc, test_safety_too_few_fresh_packs_transmit_zero_limits);
	tcase_add_test(tc, test_safety_charge_not_allowed_clears_ccl_alone);
	tcase_add_test(tc, test_safety_user_forbid_switches_win);
	tcase_add_test(tc, test_safety_protections_block_their_direction);
	tcase_add_test(tc, test_safety_random_batteries_and_configs_keep_every_invariant);
	tcase_set_timeout(tc, 60);
	return tc;
}
