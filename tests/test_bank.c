/*
 * bank: freshness, start-up, and the merge into one virtual battery.
 * Each safety rule of design.md that lives here has a test that tries to
 * break it (rule 1: partial aggregates; rule 2: stale packs, min_packs).
 */
#include "bank.h"
#include "tests.h"

static const struct bank_config cfg2 = {
	.min_packs = 1,
	.stale_after_ms = 30000,
	.startup_timeout_ms = 60000,
	.fallback_charge_ma = 50000,
	.fallback_discharge_ma = 60000,
};

struct pack_spec {
	uint8_t soc_pct;
	uint32_t capacity_ah;
	int32_t current_ma;
	uint16_t cell_mv;	/* every cell */
	int16_t temp_dc;
	uint32_t errors;
	bool chg_off;
};

/* A 16S JK02_32S sample from a compact spec. */
static struct jk_sample sample_of(const struct pack_spec *p)
{
	struct jk_sample s = {
		.protocol = JK_PROTO_JK02_32S,
		.has = JK_HAS_CURRENT | JK_HAS_SOC | JK_HAS_CYCLES | JK_HAS_SOH | JK_HAS_TEMPS |
		       JK_HAS_MOS_TEMP | JK_HAS_ERRORS | JK_HAS_MOSFETS,
		.cell_count = 16,
		.cell_mask = 0xFFFF,
		.voltage_mv = 16u * p->cell_mv,
		.current_ma = p->current_ma,
		.temp_count = 5,
		.temps_dc = { p->temp_dc, p->temp_dc, p->temp_dc, 0, JK_TEMP_ABSENT_DC },
		.mos_temp_dc = 450,
		.errors = p->errors,
		.soc_pct = p->soc_pct,
		.soh_pct = 100,
		.capacity_mah = p->capacity_ah * 1000,
		.remaining_mah = p->capacity_ah * 10 * p->soc_pct,
		.cycles = 10,
		.charging_enabled = !p->chg_off,
		.discharging_enabled = true,
	};

	for (unsigned i = 0; i < 16; i++)
		s.cells_mv[i] = p->cell_mv;
	return s;
}

static void feed(struct bank *b, const struct pack_spec *specs, unsigned n, uint64_t now_ms)
{
	for (unsigned i = 0; i < n; i++) {
		struct jk_sample s = sample_of(&specs[i]);

		bank_set_sample(b, i, &s, now_ms);
	}
}

START_TEST(test_soc_is_weighted_by_capacity_not_averaged)
{
	/* YamBMS issue #39: the plain mean is 59 %, the right answer 55 %. */
	static const struct pack_spec packs[] = {
		{ .soc_pct = 73, .capacity_ah = 136, .cell_mv = 3300, .temp_dc = 250 },
		{ .soc_pct = 72, .capacity_ah = 136, .cell_mv = 3300, .temp_dc = 250 },
		{ .soc_pct = 50, .capacity_ah = 304, .cell_mv = 3300, .temp_dc = 250 },
		{ .soc_pct = 43, .capacity_ah = 304, .cell_mv = 3300, .temp_dc = 250 },
	};
	struct bank b;
	struct battery bat;

	bank_init(&b, &cfg2, 4, 0);
	feed(&b, packs, 4, 1000);
	bank_aggregate(&b, 1000, &bat);
	ck_assert(bat.ready);
	ck_assert_uint_eq(bat.capacity_mah, 880000);
	ck_assert_uint_eq(bat.remaining_mah, 479920);	/* 479.9 Ah */
	ck_assert_uint_eq(bat.soc_centi_pct, 5454);
	ck_assert_uint_eq(bat.packs_fresh, 4);
}
END_TEST

START_TEST(test_voltage_is_mean_current_is_sum)
{
	static const struct pack_spec packs[] = {
		{ .soc_pct = 50, .capacity_ah = 280, .current_ma = -10000, .cell_mv = 3300, .temp_dc = 250 },
		{ .soc_pct = 50, .capacity_ah = 280, .current_ma = 2500, .cell_mv = 3310, .temp_dc = 260 },
	};
	struct bank b;
	struct battery bat;

	bank_init(&b, &cfg2, 2, 0);
	feed(&b, packs, 2, 0);
	bank_aggregate(&b, 0, &bat);
	ck_assert_uint_eq(bat.voltage_mv, (16 * 3300 + 16 * 3310) / 2);
	ck_assert_int_eq(bat.current_ma, -7500);
	ck_assert_uint_eq(bat.cell_min_mv, 3300);
	ck_assert_uint_eq(bat.cell_max_mv, 3310);
	ck_assert_uint_eq(bat.cell_max_at.pack, 1);
}
END_TEST

START_TEST(test_nothing_is_ready_before_every_pack_reported)
{
	static const struct pack_spec one = { .soc_pct = 90, .capacity_ah = 280, .cell_mv = 3300, .temp_dc = 250 };
	struct bank b;
	struct battery bat;

	bank_init(&b, &cfg2, 2, 0);
	feed(&b, &one, 1, 100);
	bank_aggregate(&b, 100, &bat);
	ck_assert(!bat.ready);		/* pack 2 silent: a partial aggregate is never sent */
	bank_aggregate(&b, 59999, &bat);
	ck_assert(!bat.ready);
	feed(&b, &one, 1, 59999);
	bank_aggregate(&b, 60000, &bat);	/* start-up timeout: pack 2 declared offline */
	ck_assert(bat.ready);
	ck_assert(b.packs[1].offline);
	ck_assert_uint_eq(bat.packs_fresh, 1);
	ck_assert_uint_eq(bat.capacity_mah, 280000);
}
END_TEST

START_TEST(test_a_clock_before_the_start_never_ends_the_startup_wait)
{
	static const struct pack_spec one = { .soc_pct = 90, .capacity_ah = 280, .cell_mv = 3300, .temp_dc = 250 };
	struct bank b;
	struct battery bat;

	bank_init(&b, &cfg2, 2, 100000);
	feed(&b, &one, 1, 100000);
	bank_aggregate(&b, 50000, &bat);	/* an earlier time must not look like a timeout */
	ck_assert(!bat.ready);
	ck_assert(!b.packs[1].offline);
}
END_TEST

START_TEST(test_ready_as_soon_as_all_packs_reported)
{
	static const struct pack_spec packs[] = {
		{ .soc_pct = 90, .capacity_ah = 280, .cell_mv = 3300, .temp_dc = 250 },
		{ .soc_pct = 80, .capacity_ah = 280, .cell_mv = 3300, .temp_dc = 250 },
	};
	struct bank b;
	struct battery bat;

	bank_init(&b, &cfg2, 2, 0);
	feed(&b, packs, 2, 500);
	bank_aggregate(&b, 600, &bat);
	ck_assert(bat.ready);
	ck_assert(!b.packs[1].offline);
}
END_TEST

START_TEST(test_stale_pack_leaves_capacity_sum_and_limits)
{
	static const struct pack_spec packs[] = {
		{ .soc_pct = 90, .capacity_ah = 280, .cell_mv = 3300, .temp_dc = 250 },
		{ .soc_pct = 10, .capacity_ah = 100, .cell_mv = 3300, .temp_dc = 250 },
	};
	struct bank b;
	struct battery bat;

	bank_init(&b, &cfg2, 2, 0);
	feed(&b, packs, 2, 0);
	feed(&b, packs, 1, 20000);	/* only pack 1 keeps talking */
	bank_aggregate(&b, 30000, &bat);
	ck_assert_uint_eq(bat.packs_fresh, 2);	/* exactly stale_after: still fresh */
	bank_aggregate(&b, 30001, &bat);
	ck_assert_uint_eq(bat.packs_fresh, 1);
	ck_assert_uint_eq(bat.capacity_mah, 280000);
	ck_assert_uint_eq(bat.soc_centi_pct, 9000);
	ck_assert_uint_eq(bat.charge_limit_ma, 50000);
	ck_assert(bat.charge_allowed);
}
END_TEST

START_TEST(test_all_packs_stale_leaves_nothing_allowed)
{
	static const struct pack_spec one = { .soc_pct = 90, .capacity_ah = 280, .cell_mv = 3300, .temp_dc = 250 };
	struct bank b;
	struct battery bat;

	bank_init(&b, &cfg2, 1, 0);
	feed(&b, &one, 1, 0);
	bank_aggregate(&b, 40000, &bat);
	ck_assert(bat.ready);
	ck_assert_uint_eq(bat.packs_fresh, 0);
	ck_assert(!bat.charge_allowed);
	ck_assert(!bat.discharge_allowed);
	ck_assert_uint_eq(bat.charge_limit_ma, 0);
	ck_assert_uint_eq(bat.capacity_mah, 0);
	ck_assert(bat.protections & BANK_ALARM_SYSTEM);
}
END_TEST

START_TEST(test_fewer_than_min_packs_forbids_charge_and_discharge)
{
	static const struct pack_spec packs[] = {
		{ .soc_pct = 50, .capacity_ah = 280, .cell_mv = 3300, .temp_dc = 250 },
		{ .soc_pct = 50, .capacity_ah = 280, .cell_mv = 3300, .temp_dc = 250 },
	};
	struct bank_config cfg = cfg2;
	struct bank b;
	struct battery bat;

	cfg.min_packs = 2;
	bank_init(&b, &cfg, 2, 0);
	feed(&b, packs, 2, 0);
	bank_aggregate(&b, 1000, &bat);
	ck_assert(bat.charge_allowed && bat.discharge_allowed);
	ck_assert_uint_eq(bat.protections, 0);
	feed(&b, packs, 1, 31000);
	bank_aggregate(&b, 31000, &bat);
	ck_assert_uint_eq(bat.packs_fresh, 1);
	ck_assert(!bat.charge_allowed && !bat.discharge_allowed);
	ck_assert_uint_eq(bat.charge_limit_ma + bat.discharge_limit_ma, 0);
	ck_assert(bat.protections & BANK_ALARM_SYSTEM);
}
END_TEST

START_TEST(test_pack_limits_are_90_percent_of_bms_ocp_and_only_if_allowed)
{
	static const struct pack_spec packs[] = {
		{ .soc_pct = 50, .capacity_ah = 280, .cell_mv = 3300, .temp_dc = 250 },
		{ .soc_pct = 50, .capacity_ah = 280, .cell_mv = 3300, .temp_dc = 250, .chg_off = true },
	};
	struct jk_settings st = { .protocol = JK_PROTO_JK02_32S, .max_charge_current_ma = 100000,
				  .max_discharge_current_ma = 150000, .charging_switch = true,
				  .discharging_switch = true, .cell_ovp_mv = 3650, .cell_uvp_mv = 2600 };
	struct bank b;
	struct battery bat;

	bank_init(&b, &cfg2, 2, 0);
	feed(&b, packs, 2, 0);
	bank_set_settings(&b, 0, &st);
	st.cell_ovp_mv = 3600;
	st.cell_uvp_mv = 2800;
	bank_set_settings(&b, 1, &st);
	bank_aggregate(&b, 0, &bat);
	ck_assert_uint_eq(bat.charge_limit_ma, 90000);	/* pack 2's charge MOSFET is off */
	ck_assert_uint_eq(bat.discharge_limit_ma, 2 * 135000);
	ck_assert_uint_eq(bat.cell_ovp_mv, 3600);	/* the most conservative of the packs */
	ck_assert_uint_eq(bat.cell_uvp_mv, 2800);
}
END_TEST

START_TEST(test_configured_pack_cap_bounds_the_bms_limit)
{
	static const struct pack_spec packs[] = {
		{ .soc_pct = 50, .capacity_ah = 280, .cell_mv = 3300, .temp_dc = 250 },
		{ .soc_pct = 50, .capacity_ah = 280, .cell_mv = 3300, .temp_dc = 250 },
	};
	struct jk_settings st = { .protocol = JK_PROTO_JK02_32S, .max_charge_current_ma = 200000,
				  .max_discharge_current_ma = 200000, .charging_switch = true,
				  .discharging_switch = true };
	struct bank_config cfg = cfg2;
	struct bank b;
	struct battery bat;

	cfg.cap_charge_ma[0] = 40000;	/* pack 1 capped, BMS known */
	cfg.cap_discharge_ma[1] = 30000;	/* pack 2 capped, no settings */
	bank_init(&b, &cfg, 2, 0);
	feed(&b, packs, 2, 0);
	bank_set_settings(&b, 0, &st);
	bank_aggregate(&b, 0, &bat);
	ck_assert_uint_eq(bat.charge_limit_ma, 40000 + 50000);
	ck_assert_uint_eq(bat.discharge_limit_ma, 180000 + 30000);
}
END_TEST

START_TEST(test_charging_switch_off_in_settings_leaves_charge_sum)
{
	static const struct pack_spec one = { .soc_pct = 50, .capacity_ah = 280, .cell_mv = 3300, .temp_dc = 250 };
	struct jk_settings st = { .protocol = JK_PROTO_JK02_24S, .charging_switch = false,
				  .discharging_switch = true };
	struct bank b;
	struct battery bat;

	bank_init(&b, &cfg2, 1, 0);
	feed(&b, &one, 1, 0);
	bank_set_settings(&b, 0, &st);
	bank_aggregate(&b, 0, &bat);
	ck_assert(!bat.charge_allowed);
	ck_assert_uint_eq(bat.charge_limit_ma, 0);
	ck_assert(bat.discharge_allowed);
	ck_assert_uint_eq(bat.discharge_limit_ma, 60000);
}
END_TEST

START_TEST(test_jk04_adds_cells_but_never_soc_or_capacity)
{
	static const struct pack_spec one = { .soc_pct = 50, .capacity_ah = 280, .cell_mv = 3300, .temp_dc = 250 };
	struct jk_sample jk04 = { .protocol = JK_PROTO_JK04, .has = JK_HAS_CELL_RES,
				  .cell_count = 2, .cell_mask = 0x3, .cells_mv = { 3200, 3550 },
				  .voltage_mv = 6750 };
	struct bank b;
	struct battery bat;

	bank_init(&b, &cfg2, 2, 0);
	feed(&b, &one, 1, 0);
	bank_set_sample(&b, 1, &jk04, 0);
	bank_aggregate(&b, 0, &bat);
	ck_assert_uint_eq(bat.packs_fresh, 2);
	ck_assert_uint_eq(bat.packs_soc, 1);
	ck_assert_uint_eq(bat.capacity_mah, 280000);
	ck_assert_uint_eq(bat.soc_centi_pct, 5000);
	ck_assert_uint_eq(bat.cell_max_mv, 3550);
	ck_assert_uint_eq(bat.cell_min_mv, 3200);
	ck_assert_uint_eq(bat.cell_max_at.pack, 1);
	ck_assert_uint_eq(bat.cell_max_at.index, 1);
}
END_TEST

struct alarm_case {
	uint32_t errors[2];
	uint32_t protections, warnings;
};

START_TEST(test_alarm_in_every_pack_is_protection_in_some_a_warning)
{
	static const struct alarm_case cases[] = {
		{ .errors = { 0, 0 } },
		{ .errors = { 1u << 4, 1u << 4 }, .protections = BANK_ALARM_CELL_OV },
		{ .errors = { 1u << 4, 0 }, .warnings = BANK_ALARM_CELL_OV },
		{ .errors = { 1u << 11 | 1u << 9, 1u << 12 }, .protections = BANK_ALARM_CELL_UV,
		  .warnings = BANK_ALARM_UNDER_TEMP },
		{ .errors = { 1u << 19, 1u << 19 } },	/* "modify password" is no alarm */
		{ .errors = { 1u << 25, 1u << 14 }, .protections = BANK_ALARM_DISCHARGE_OC },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pack_spec packs[2] = {
			{ .soc_pct = 50, .capacity_ah = 280, .cell_mv = 3300, .temp_dc = 250, .errors = cases[i].errors[0] },
			{ .soc_pct = 50, .capacity_ah = 280, .cell_mv = 3300, .temp_dc = 250, .errors = cases[i].errors[1] },
		};
		struct bank b;
		struct battery bat;

		bank_init(&b, &cfg2, 2, 0);
		feed(&b, packs, 2, 0);
		bank_aggregate(&b, 0, &bat);
		ck_assert_msg(bat.protections == cases[i].protections && bat.warnings == cases[i].warnings,
			      "case %zu: protections %#x warnings %#x", i, bat.protections, bat.warnings);
	}
}
END_TEST

START_TEST(test_temperatures_skip_absent_unused_and_mosfet_slots)
{
	static const struct pack_spec one = { .soc_pct = 50, .capacity_ah = 280, .cell_mv = 3300, .temp_dc = 250 };
	struct jk_sample s = sample_of(&one);
	struct bank b;
	struct battery bat;

	s.temps_dc[0] = 180;
	s.temps_dc[1] = JK_TEMP_ABSENT_DC;
	s.temps_dc[2] = 700;	/* slot 254: the MOSFET on most units */
	s.temps_dc[3] = 0;	/* unused on non-PB units */
	s.temps_dc[4] = 205;
	bank_init(&b, &cfg2, 1, 0);
	bank_set_sample(&b, 0, &s, 0);
	bank_aggregate(&b, 0, &bat);
	ck_assert(bat.have_temps);
	ck_assert_int_eq(bat.temp_min_dc, 180);
	ck_assert_int_eq(bat.temp_max_dc, 205);
	ck_assert_uint_eq(bat.temp_max_at.index, 4);
	ck_assert_int_eq(bat.mos_temp_max_dc, 450);
}
END_TEST

START_TEST(test_jk_error_classes)
{
	ck_assert_uint_eq(bank_alarms_from_jk(0), 0);
	ck_assert_uint_eq(bank_alarms_from_jk(1u << 5), BANK_ALARM_CELL_OV);
	ck_assert_uint_eq(bank_alarms_from_jk(1u << 6 | 1u << 7), BANK_ALARM_CHARGE_OC);
	ck_assert_uint_eq(bank_alarms_from_jk(1u << 8 | 1u << 27),
			  BANK_ALARM_OVER_TEMP | BANK_ALARM_UNDER_TEMP);
	ck_assert_uint_eq(bank_alarms_from_jk(1u << 3 | 1u << 18 | 1u << 19 | 1u << 28 | 0xE0000000u), 0);
}
END_TEST

TCase *tcase_bank(void)
{
	TCase *tc = tcase_create("bank");

	tcase_add_test(tc, test_soc_is_weighted_by_capacity_not_averaged);
	tcase_add_test(tc, test_voltage_is_mean_current_is_sum);
	tcase_add_test(tc, test_nothing_is_ready_before_every_pack_reported);
	tcase_add_test(tc, test_ready_as_soon_as_all_packs_reported);
	tcase_add_test(tc, test_a_clock_before_the_start_never_ends_the_startup_wait);
	tcase_add_test(tc, test_stale_pack_leaves_capacity_sum_and_limits);
	tcase_add_test(tc, test_all_packs_stale_leaves_nothing_allowed);
	tcase_add_test(tc, test_fewer_than_min_packs_forbids_charge_and_discharge);
	tcase_add_test(tc, test_pack_limits_are_90_percent_of_bms_ocp_and_only_if_allowed);
	tcase_add_test(tc, test_configured_pack_cap_bounds_the_bms_limit);
	tcase_add_test(tc, test_charging_switch_off_in_settings_leaves_charge_sum);
	tcase_add_test(tc, test_jk04_adds_cells_but_never_soc_or_capacity);
	tcase_add_test(tc, test_alarm_in_every_pack_is_protection_in_some_a_warning);
	tcase_add_test(tc, test_temperatures_skip_absent_unused_and_mosfet_slots);
	tcase_add_test(tc, test_jk_error_classes);
	return tc;
}
