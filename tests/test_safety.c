/*
 * The safety rules of design.md, checked where the inverter sees them: on
 * the CAN frames that bank -> charge -> canmsg produce.  Packs come and go
 * at random, report random cells, currents, alarms and limits, and every
 * frame set of every step is checked against what the test computes on its
 * own from the packs it made up:
 *
 *   1. nothing before every pack reported or was declared offline;
 *   2. stale packs leave the module count and the limits; fewer than
 *      min_packs fresh packs: no charge, no discharge, system alarm;
 *   3. CCL <= configured max and <= Σ limits of fresh packs that allow
 *      charging (DCL likewise); increases ramp;
 *   4. CVL <= cells x bulk and < cells x OVP;
 *   5. the 0x35C request bits agree with the limits;
 *   6. SOC is the capacity-weighted value, at most 98 % before end of charge.
 */
#include <string.h>

#include "bank.h"
#include "canmsg.h"
#include "charge.h"
#include "tests.h"

#define NPACKS_MAX 4

static uint32_t rng;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return n ? rng % n : 0;
}

struct world {
	unsigned npacks;
	struct bank_config bcfg;
	struct charge_config ccfg;
	struct bank bank;
	struct charge charge;
	uint64_t last_ms[NPACKS_MAX];	/* 0 = never reported */
	bool have_last[NPACKS_MAX];
	struct jk_sample last[NPACKS_MAX];
	struct jk_settings settings[NPACKS_MAX];
	bool have_settings[NPACKS_MAX];
	uint32_t prev_ccl_da, prev_dcl_da;
	uint64_t prev_ms;
};

static struct jk_sample random_sample(void)
{
	struct jk_sample s = {
		.protocol = JK_PROTO_JK02_32S,
		.has = JK_HAS_CURRENT | JK_HAS_SOC | JK_HAS_SOH | JK_HAS_TEMPS | JK_HAS_ERRORS | JK_HAS_MOSFETS,
		.cell_count = 16, .cell_mask = 0xFFFF, .temp_count = 2,
		.capacity_mah = 50000 + rnd(300000), .soh_pct = 100,
		.charging_enabled = rnd(6) != 0, .discharging_enabled = rnd(6) != 0,
		.errors = rnd(4) == 0 ? 1u << rnd(28) : 0,
		.current_ma = (int32_t)rnd(400000) - 200000,
	};
	uint16_t base = (uint16_t)(2700 + rnd(1000));

	for (unsigned i = 0; i < 16; i++)
		s.cells_mv[i] = (uint16_t)(base + rnd(40));
	s.voltage_mv = 16u * base;
	s.remaining_mah = rnd(s.capacity_mah + 1);
	s.soc_pct = (uint8_t)(s.remaining_mah * 100 / s.capacity_mah);
	s.temps_dc[0] = (int16_t)(rnd(900) - 200);
	s.temps_dc[1] = (int16_t)(rnd(900) - 200);
	return s;
}

static void world_init(struct world *w, uint32_t seed)
{
	memset(w, 0, sizeof(*w));
	rng = seed;
	w->npacks = 1 + rnd(NPACKS_MAX);
	w->bcfg = (struct bank_config){
		.min_packs = 1 + rnd(w->npacks), .stale_after_ms = 3000 + rnd(10) * 1000,
		.startup_timeout_ms = 5000 + rnd(20) * 1000,
		.fallback_charge_ma = 20000 + rnd(100000), .fallback_discharge_ma = 20000 + rnd(100000),
	};
	charge_config_defaults(&w->ccfg, CHARGE_LFP, 16);
	w->ccfg.min_packs = w->bcfg.min_packs;
	w->ccfg.max_charge_ma = rnd(400000);
	w->ccfg.max_discharge_ma = rnd(400000);
	w->ccfg.ramp_ma_per_s = 1000 + rnd(20000);
	w->ccfg.cutoff_timer_s = 5;
	w->ccfg.end_of_charge_timeout_s = 60;
	bank_init(&w->bank, &w->bcfg, w->npacks, 0);
	charge_init(&w->charge, &w->ccfg, 0);
}

static bool fresh(const struct world *w, unsigned i, uint64_t now)
{
	return w->have_last[i] && now - w->last_ms[i] <= w->bcfg.stale_after_ms;
}

/* Σ limits of the fresh packs that allow charging (or discharging), as
 * bank.h documents them, computed here from the packs the test made. */
static uint64_t expected_limit(const struct world *w, uint64_t now, bool charge)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < w->npacks; i++) {
		const struct jk_settings *st = w->have_settings[i] ? &w->settings[i] : NULL;
		bool allows = charge ? w->last[i].charging_enabled && (!st || st->charging_switch)
				     : w->last[i].discharging_enabled && (!st || st->discharging_switch);
		uint32_t bms = st ? (charge ? st->max_charge_current_ma : st->max_discharge_current_ma) : 0;

		if (fresh(w, i, now) && allows)
			sum += bms ? (uint64_t)bms * 90 / 100 :
				     (charge ? w->bcfg.fallback_charge_ma : w->bcfg.fallback_discharge_ma);
	}
	return sum;
}

static const struct canmsg_frame *find(const struct canmsg_frame *f, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (f[i].id == id)
			return &f[i];
	return NULL;
}

static unsigned u16(const uint8_t *p)
{
	return p[0] | p[1] << 8;
}

static void step(struct world *w, uint64_t now)
{
	struct canmsg_frame frames[CANMSG_MAX_FRAMES];
	const struct canmsg_frame *f351, *f355, *f359, *f35c;
	struct charge_output out;
	struct battery bat;
	unsigned nfresh = 0;
	uint64_t rem = 0, cap = 0;
	uint32_t ovp = w->ccfg.cell_ovp_mv;
	size_t n;

	for (unsigned i = 0; i < w->npacks; i++) {
		if (rnd(4) == 0)	/* this pack is silent this second */
			continue;
		w->last[i] = random_sample();
		w->last_ms[i] = now;
		w->have_last[i] = true;
		bank_set_sample(&w->bank, i, &w->last[i], now);
		if (rnd(10) == 0) {
			w->settings[i] = (struct jk_settings){
				.protocol = JK_PROTO_JK02_32S, .charging_switch = rnd(5) != 0,
				.discharging_switch = rnd(5) != 0, .max_charge_current_ma = rnd(300000),
				.max_discharge_current_ma = rnd(300000), .cell_ovp_mv = 3500 + rnd(300),
				.cell_uvp_mv = 2500 + rnd(300) };
			w->have_settings[i] = true;
			bank_set_settings(&w->bank, i, &w->settings[i]);
		}
	}
	bank_aggregate(&w->bank, now, &bat);
	charge_step(&w->charge, &bat, now, (int64_t)(now / 1000), &out);
	n = canmsg_build(CANMSG_PYLON, &bat, &out, NULL, frames, CANMSG_MAX_FRAMES);

	/* Rule 1 */
	if (!w->bank.started) {
		ck_assert_uint_eq(n, 0);
		return;
	}
	for (unsigned i = 0; i < w->npacks; i++) {
		nfresh += fresh(w, i, now);
		if (fresh(w, i, now)) {
			rem += w->last[i].remaining_mah;
			cap += w->last[i].capacity_mah;
		}
		if (w->have_settings[i] && w->settings[i].cell_ovp_mv < ovp)
			ovp = w->settings[i].cell_ovp_mv;
	}
	if (nfresh == 0) {	/* nothing true to say */
		ck_assert_uint_eq(n, 0);
		return;
	}
	ck_assert_uint_gt(n, 0);
	f351 = find(frames, n, 0x351);
	f355 = find(frames, n, 0x355);
	f359 = find(frames, n, 0x359);
	f35c = find(frames, n, 0x35C);
	ck_assert(f351 && f355 && f359 && f35c);

	unsigned cvl_dv = u16(f351->data), ccl_da = u16(f351->data + 2), dcl_da = u16(f351->data + 4);

	/* Rule 2 */
	ck_assert_uint_eq(f359->data[4], nfresh);
	if (nfresh < w->bcfg.min_packs) {
		ck_assert_uint_eq(ccl_da, 0);
		ck_assert_uint_eq(dcl_da, 0);
		ck_assert_uint_eq(f35c->data[0] & 0xC0, 0);
		ck_assert(f359->data[1] & 0x08);	/* system error */
	}
	/* Rule 3 */
	ck_assert_uint_le(ccl_da * 100u, w->ccfg.max_charge_ma);
	ck_assert_uint_le(dcl_da * 100u, w->ccfg.max_discharge_ma);
	ck_assert_uint_le(ccl_da * 100u, expected_limit(w, now, true));
	ck_assert_uint_le(dcl_da * 100u, expected_limit(w, now, false));
	if (w->prev_ms && ccl_da > w->prev_ccl_da)
		ck_assert_uint_le((ccl_da - w->prev_ccl_da) * 100u,
				  w->ccfg.ramp_ma_per_s * (now - w->prev_ms) / 1000 + 100);
	if (w->prev_ms && dcl_da > w->prev_dcl_da)
		ck_assert_uint_le((dcl_da - w->prev_dcl_da) * 100u,
				  w->ccfg.ramp_ma_per_s * (now - w->prev_ms) / 1000 + 100);
	w->prev_ccl_da = ccl_da;
	w->prev_dcl_da = dcl_da;
	w->prev_ms = now;
	/* Rule 4 */
	ck_assert_uint_le(cvl_dv * 100u, 16u * w->ccfg.bulk_cell_mv);
	ck_assert_uint_lt(cvl_dv * 100u, 16u * ovp);
	/* Rule 5 */
	ck_assert((f35c->data[0] & 0x80) ? ccl_da != 0 : ccl_da == 0);
	ck_assert((f35c->data[0] & 0x40) ? dcl_da != 0 : dcl_da == 0);
	/* Rule 6 */
	if (out.state != CHARGE_EOC && out.state != CHARGE_FLOAT)
		ck_assert_uint_le(u16(f355->data), 98);
	if (cap) {
		unsigned want = (unsigned)((rem * 100 + cap / 2) / cap);

		if (out.state != CHARGE_EOC && out.state != CHARGE_FLOAT && want > 98)
			want = 98;
		ck_assert_msg(u16(f355->data) + 1 >= want && u16(f355->data) <= want + 1,
			      "SOC %u, weighted %u", u16(f355->data), want);
	}
}

START_TEST(test_random_packs_never_break_a_safety_rule)
{
	static struct world w;

	for (uint32_t seed = 1; seed <= 40; seed++) {
		world_init(&w, seed * 2654435761u);
		for (uint64_t t = 1000; t <= 600000; t += 1000)
			step(&w, t);
	}
}
END_TEST

START_TEST(test_full_cells_never_get_charge_voltage_at_ovp)
{
	static struct world w;

	for (uint32_t seed = 1; seed <= 20; seed++) {
		world_init(&w, seed * 40503u + 7);
		w.ccfg.bulk_cell_mv = w.ccfg.cell_ovp_mv + rnd(200);	/* a config cfg.c would refuse */
		charge_init(&w.charge, &w.ccfg, 0);
		for (uint64_t t = 1000; t <= 120000; t += 1000)
			step(&w, t);
	}
}
END_TEST

/* A 15-cell pack behind a 16-cell configuration: CVL follows the pack. */
START_TEST(test_fewer_cells_than_configured_bound_cvl)
{
	struct bank_config bc = { .min_packs = 1, .stale_after_ms = 30000, .startup_timeout_ms = 1000,
				  .fallback_charge_ma = 50000, .fallback_discharge_ma = 50000 };
	struct jk_sample s = { .protocol = JK_PROTO_JK02_32S, .has = JK_HAS_CURRENT | JK_HAS_SOC |
			       JK_HAS_MOSFETS, .cell_count = 15, .cell_mask = 0x7FFF, .voltage_mv = 49500,
			       .soc_pct = 50, .remaining_mah = 50000, .capacity_mah = 100000,
			       .charging_enabled = true, .discharging_enabled = true };
	struct charge_config cc;
	struct charge_output out;
	struct battery bat;
	struct bank b;
	struct charge c;

	for (unsigned i = 0; i < 15; i++)
		s.cells_mv[i] = 3300;
	charge_config_defaults(&cc, CHARGE_LFP, 16);
	cc.max_charge_ma = cc.max_discharge_ma = 100000;
	bank_init(&b, &bc, 1, 0);
	charge_init(&c, &cc, 0);
	for (uint64_t t = 1000; t <= 5000; t += 1000) {
		bank_set_sample(&b, 0, &s, t);
		bank_aggregate(&b, t, &bat);
		charge_step(&c, &bat, t, 0, &out);
		ck_assert(out.transmit);
		ck_assert_uint_le(out.cvl_mv, 15u * cc.bulk_cell_mv);
		ck_assert_uint_lt(out.cvl_mv, 15u * cc.cell_ovp_mv);
	}
}
END_TEST

/* SMA and Victron read the 0.01 % SOC: it obeys the 98 % cap too. */
START_TEST(test_hires_soc_never_exceeds_98_before_end_of_charge)
{
	struct battery bat = { .ready = true, .packs_fresh = 1, .packs_configured = 1,
			       .soc_centi_pct = 9870, .capacity_mah = 100000, .remaining_mah = 98700 };
	struct charge_output out = { .transmit = true, .state = CHARGE_BULK, .soc_pct = 98, .soh_pct = 100,
				     .cvl_mv = 55200 };
	static const enum canmsg_profile profiles[] = { CANMSG_SMA, CANMSG_VICTRON };
	struct canmsg_frame frames[CANMSG_MAX_FRAMES];

	for (unsigned i = 0; i < 2; i++) {
		size_t n = canmsg_build(profiles[i], &bat, &out, NULL, frames, CANMSG_MAX_FRAMES);
		const struct canmsg_frame *f = find(frames, n, 0x355);

		ck_assert_ptr_nonnull(f);
		ck_assert_uint_le(u16(f->data + 4), 9800);
	}
	out.state = CHARGE_FLOAT;
	out.soc_pct = 99;
	bat.soc_centi_pct = 9930;
	{
		size_t n = canmsg_build(CANMSG_SMA, &bat, &out, NULL, frames, CANMSG_MAX_FRAMES);

		ck_assert_uint_eq(u16(find(frames, n, 0x355)->data + 4), 9930);
	}
}
END_TEST

TCase *tcase_safety(void)
{
	TCase *tc = tcase_create("safety");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_random_packs_never_break_a_safety_rule);
	tcase_add_test(tc, test_full_cells_never_get_charge_voltage_at_ovp);
	tcase_add_test(tc, test_fewer_cells_than_configured_bound_cvl);
	tcase_add_test(tc, test_hires_soc_never_exceeds_98_before_end_of_charge);
	return tc;
}
