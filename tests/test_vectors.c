/*
 * test_vectors — jk_stream, jk_decode and jk_cmd against every real capture
 * in ../shared/vectors (read at run time, see vectors.h).
 *
 * The expected values below are the ones the files' `expect:` lines give,
 * converted to this project's units (mV, mA, mAh, 0.1 °C, s; current
 * positive while charging).  A few files have no source assertion at all;
 * for those the "decoded by this research" comments of the file are used
 * and the entry says so.  Derived values of the sources (power = V x I,
 * means, min/max computed from the cell list, time-to-empty estimates) are
 * not fields of ours and are left out, each with a note where it matters.
 *
 * Table-driven: one entry per file, designated initializers, and only the
 * fields that are set are checked.  A test collects every mismatch of its
 * table before failing, so one run shows all disagreements at once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jk_cmd.h"
#include "jk_decode.h"
#include "jk_stream.h"
#include "tests.h"
#include "vectors.h"

/* ------------------------------------------------------ expected values */

/* One expected value; unset = not checked.  act must lie within v +- tol,
 * or, with div, act / div must equal v (a source that printed whole Ah). */
struct ev {
	bool set;
	int64_t v;
	int64_t tol;
	int64_t div;
};

#define V(x) { .set = true, .v = (x) }
#define VT(x, t) { .set = true, .v = (x), .tol = (t) }
#define VDIV(x, d) { .set = true, .v = (x), .div = (d) }
#define ON V(1)
#define OFF V(0)

struct cell_at {
	uint8_t cell;		/* 1-based cell number; 0 ends the list */
	uint16_t mv;
	uint8_t tol;
};

struct exp_cell {
	struct ev counter;
	struct ev cell_count;
	uint8_t n_cells;			/* cells_mv[0 .. n_cells-1] are listed */
	uint16_t cells_mv[JK_MAX_CELLS];
	struct cell_at cell_at[5];		/* single cells the source names */
	uint8_t n_res;				/* cell_res_mohm[0 .. n_res-1] */
	uint16_t res_mohm[JK_MAX_CELLS];
	struct ev cell_avg_mv, cell_delta_mv, cell_max_index, cell_min_index;
	struct ev voltage_mv, current_ma, power_mw;
	struct ev temps_dc[JK_MAX_TEMPS];	/* T1, T2, 32S bytes 254 / 256 / 258 */
	struct ev mos_temp_dc, temp_presence;
	struct ev errors;
	uint32_t errors_mask;			/* bits the source looked at; 0 = all */
	struct ev balance_current_ma, balancing;
	struct ev soc_pct, soh_pct, remaining_mah, capacity_mah;
	struct ev cycles, cycle_capacity_mah, uptime_s;
	struct ev charging_enabled, discharging_enabled, heating;
	struct ev battery_type, charge_status, charge_status_time_s;
};

struct exp_settings {
	struct ev cell_count, balancer_switch, charging_switch, discharging_switch;
	struct ev cell_uvp_mv, cell_uvpr_mv, cell_ovp_mv, cell_ovpr_mv;
	struct ev soc100_mv, soc0_mv, rcv_mv, rfv_mv, power_off_mv;
	struct ev max_charge_current_ma, max_discharge_current_ma, max_balance_current_ma;
	struct ev charge_otp_dc, charge_utp_dc, mos_otp_dc;
	struct ev capacity_mah, scp_delay_us, balance_start_mv;
	struct ev device_address, controls, heating_start_c, heating_stop_c, smart_sleep_h;
	struct ev jk04_vref_mv, jk04_balance_trigger_mv, jk04_max_balance_current_ma;
	struct ev jk04_power_off_mv, jk04_balance_start_mv;
};

struct exp_info {
	const char *model, *hw_version, *sw_version, *name;
	const char *serial;		/* the whole field 86..101 */
	const char *serial_prefix;	/* what a source that reads 8 characters saw */
	const char *manufacturing_date, *user_data;
	struct ev uptime_s, power_on_count;
};

/* ------------------------------------------------------------ checking */

static void expect_ev(struct vector_report *r, const char *what, const char *field,
		      const struct ev *e, int64_t act, uint32_t has, uint32_t bit)
{
	bool ok;

	if (!e->set)
		return;
	if (bit && !(has & bit)) {
		vector_report_add(r, "%s: %s: expected %lld, but the field is not present (has 0x%x)",
				  what, field, (long long)e->v, has);
		return;
	}
	if (e->div)
		ok = act / e->div == e->v;
	else
		ok = act >= e->v - e->tol && act <= e->v + e->tol;
	if (ok)
		return;
	if (e->div)
		vector_report_add(r, "%s: %s: expected %lld (x%lld), got %lld", what, field,
				  (long long)e->v, (long long)e->div, (long long)act);
	else if (e->tol)
		vector_report_add(r, "%s: %s: expected %lld +- %lld, got %lld", what, field,
				  (long long)e->v, (long long)e->tol, (long long)act);
	else
		vector_report_add(r, "%s: %s: expected %lld, got %lld", what, field,
				  (long long)e->v, (long long)act);
}

static void expect_str(struct vector_report *r, const char *what, const char *field,
		       const char *exp, const char *act, bool prefix)
{
	if (!exp)
		return;
	if (prefix ? strncmp(act, exp, strlen(exp)) == 0 : strcmp(act, exp) == 0)
		return;
	vector_report_add(r, "%s: %s: expected %s\"%s\", got \"%s\"", what, field,
			  prefix ? "a value starting with " : "", exp, act);
}

static void check_sample(struct vector_report *r, const char *what, const struct exp_cell *e,
			 const struct jk_sample *s)
{
	char name[48];

#define EXPECT(field, bit) expect_ev(r, what, #field, &e->field, (int64_t)s->field, s->has, bit)
	EXPECT(counter, 0);
	EXPECT(cell_count, 0);
	EXPECT(cell_avg_mv, 0);
	EXPECT(cell_delta_mv, 0);
	EXPECT(cell_max_index, 0);
	EXPECT(cell_min_index, 0);
	EXPECT(voltage_mv, 0);
	EXPECT(current_ma, JK_HAS_CURRENT);
	EXPECT(power_mw, JK_HAS_CURRENT);
	EXPECT(mos_temp_dc, JK_HAS_MOS_TEMP);
	EXPECT(temp_presence, JK_HAS_TEMPS);
	EXPECT(balance_current_ma, 0);
	EXPECT(balancing, 0);
	EXPECT(soc_pct, JK_HAS_SOC);
	EXPECT(remaining_mah, JK_HAS_SOC);
	EXPECT(capacity_mah, JK_HAS_SOC);
	EXPECT(soh_pct, JK_HAS_SOH);
	EXPECT(cycles, JK_HAS_CYCLES);
	EXPECT(cycle_capacity_mah, JK_HAS_CYCLES);
	EXPECT(uptime_s, 0);
	EXPECT(charging_enabled, JK_HAS_MOSFETS);
	EXPECT(discharging_enabled, JK_HAS_MOSFETS);
	EXPECT(heating, JK_HAS_HEATING);
	EXPECT(battery_type, JK_HAS_CHARGE_STATUS);
	EXPECT(charge_status, JK_HAS_CHARGE_STATUS);
	EXPECT(charge_status_time_s, JK_HAS_CHARGE_STATUS);
#undef EXPECT
	expect_ev(r, what, "errors", &e->errors,
		  (int64_t)(s->errors & (e->errors_mask ? e->errors_mask : UINT32_MAX)),
		  s->has, JK_HAS_ERRORS);

	for (unsigned i = 0; i < JK_MAX_TEMPS; i++) {
		if (!e->temps_dc[i].set)
			continue;
		snprintf(name, sizeof(name), "temps_dc[%u]", i);
		if (i >= s->temp_count)
			vector_report_add(r, "%s: %s: expected %lld, but temp_count is %u", what,
					  name, (long long)e->temps_dc[i].v, s->temp_count);
		else
			expect_ev(r, what, name, &e->temps_dc[i], s->temps_dc[i], s->has,
				  JK_HAS_TEMPS);
	}
	for (unsigned i = 0; i < e->n_cells; i++) {
		const struct ev cell = V(e->cells_mv[i]);

		snprintf(name, sizeof(name), "cells_mv[%u]", i);
		expect_ev(r, what, name, &cell, s->cells_mv[i], s->has, 0);
	}
	for (unsigned i = 0; i < sizeof(e->cell_at) / sizeof(e->cell_at[0]) && e->cell_at[i].cell; i++) {
		const struct ev cell = VT(e->cell_at[i].mv, e->cell_at[i].tol);

		snprintf(name, sizeof(name), "cells_mv[%u] (cell %u)", e->cell_at[i].cell - 1u,
			 e->cell_at[i].cell);
		expect_ev(r, what, name, &cell, s->cells_mv[e->cell_at[i].cell - 1], s->has, 0);
	}
	for (unsigned i = 0; i < e->n_res; i++) {
		const struct ev res = V(e->res_mohm[i]);

		snprintf(name, sizeof(name), "cell_res_mohm[%u]", i);
		expect_ev(r, what, name, &res, s->cell_res_mohm[i], s->has, JK_HAS_CELL_RES);
	}
}

static void check_settings(struct vector_report *r, const char *what,
			   const struct exp_settings *e, const struct jk_settings *s)
{
#define EXPECT(field) expect_ev(r, what, #field, &e->field, (int64_t)s->field, 0, 0)
	EXPECT(cell_count);
	EXPECT(balancer_switch);
	EXPECT(charging_switch);
	EXPECT(discharging_switch);
	EXPECT(cell_uvp_mv);
	EXPECT(cell_uvpr_mv);
	EXPECT(cell_ovp_mv);
	EXPECT(cell_ovpr_mv);
	EXPECT(soc100_mv);
	EXPECT(soc0_mv);
	EXPECT(rcv_mv);
	EXPECT(rfv_mv);
	EXPECT(power_off_mv);
	EXPECT(max_charge_current_ma);
	EXPECT(max_discharge_current_ma);
	EXPECT(max_balance_current_ma);
	EXPECT(charge_otp_dc);
	EXPECT(charge_utp_dc);
	EXPECT(mos_otp_dc);
	EXPECT(capacity_mah);
	EXPECT(scp_delay_us);
	EXPECT(balance_start_mv);
	EXPECT(device_address);
	EXPECT(controls);
	EXPECT(heating_start_c);
	EXPECT(heating_stop_c);
	EXPECT(smart_sleep_h);
	EXPECT(jk04_vref_mv);
	EXPECT(jk04_balance_trigger_mv);
	EXPECT(jk04_max_balance_current_ma);
	EXPECT(jk04_power_off_mv);
	EXPECT(jk04_balance_start_mv);
#undef EXPECT
}

static void check_info(struct vector_report *r, const char *what, const struct exp_info *e,
		       const struct jk_device_info *d)
{
	expect_str(r, what, "model", e->model, d->model, false);
	expect_str(r, what, "hw_version", e->hw_version, d->hw_version, false);
	expect_str(r, what, "sw_version", e->sw_version, d->sw_version, false);
	expect_str(r, what, "name", e->name, d->name, false);
	expect_str(r, what, "serial", e->serial, d->serial, false);
	expect_str(r, what, "serial", e->serial_prefix, d->serial, true);
	expect_str(r, what, "manufacturing_date", e->manufacturing_date, d->manufacturing_date,
		   false);
	expect_str(r, what, "user_data", e->user_data, d->user_data, false);
	expect_ev(r, what, "uptime_s", &e->uptime_s, d->uptime_s, 0, 0);
	expect_ev(r, what, "power_on_count", &e->power_on_count, d->power_on_count, 0, 0);
}

/* ------------------------------------------------------------- helpers */

static enum jk_protocol file_protocol(const char *file)
{
	char word[32];
	enum jk_protocol p;

	ck_assert_msg(vector_meta_word(file, "protocol", word, sizeof(word)),
		      "%s: no '# protocol:' line", file);
	ck_assert_msg(jk_protocol_parse(word, &p) == 0 && p != JK_PROTO_UNKNOWN,
		      "%s: protocol '%s' not understood by jk_protocol_parse", file, word);
	return p;
}

/* The file's table entry must name the protocol the file itself states. */
static void check_table_protocol(struct vector_report *r, const char *file, enum jk_protocol p)
{
	enum jk_protocol meta = file_protocol(file);

	if (meta != p)
		vector_report_add(r, "%s: test table says %s, file says %s", file,
				  jk_protocol_name(p), jk_protocol_name(meta));
}

/* Run the file's "hex:" line through a fresh jk_stream: exactly one frame
 * must come out, equal to the first 300 bytes.  Returns the frame type. */
static uint8_t frame_via_stream(const char *file, uint8_t frame[JK_FRAME_LEN])
{
	uint8_t raw[CAPTURE_MAX_BYTES];
	size_t n = vector_hex(file, raw, sizeof(raw));
	struct jk_stream s;
	static struct vector_tokens tokens;
	struct vector_tokens *t = &tokens;

	ck_assert_msg(n >= JK_FRAME_LEN, "%s: %zu bytes, shorter than a frame", file, n);
	jk_stream_init(&s);
	vector_tokens_init(t);
	vector_feed(&s, raw, n, t);
	vector_flush(&s, t);
	ck_assert_msg(t->n_frames == 1, "%s: %zu frames out of jk_stream, want 1", file,
		      t->n_frames);
	ck_assert_msg(memcmp(t->frames[0], raw, JK_FRAME_LEN) == 0,
		      "%s: jk_stream frame differs from the file's first 300 bytes", file);
	memcpy(frame, t->frames[0], JK_FRAME_LEN);
	return frame[4];
}

/* --------------------------------------------------- cell-info vectors */

struct cell_vector {
	const char *file;
	enum jk_protocol proto;
	struct exp_cell e;
};

static const struct cell_vector cell_vectors[] = {
	{
		.file = "jk02_24s_cellinfo_aiobmsble_1.txt",
		.proto = JK_PROTO_JK02_24S,
		.e = {
			.cell_count = V(16),
			.n_cells = 16,
			.cells_mv = { 3310, 3314, 3313, 3312, 3312, 3308, 3312, 3309,
				      3309, 3309, 3309, 3312, 3313, 3309, 3310, 3309 },
			.cell_delta_mv = V(5),		/* raw u16 at byte 60 */
			.voltage_mv = V(52971),
			.current_ma = V(2329),
			.balance_current_ma = V(2),
			.soc_pct = V(56),
			.soh_pct = V(100),
			.remaining_mah = V(113245),
			.capacity_mah = VDIV(202, 1000),	/* source: integer Ah */
			.cycles = V(60),
			.temps_dc = { V(181), V(186) },
			.mos_temp_dc = V(228),
			.temp_presence = V(7),
			.errors = V(0),			/* problem_code */
			.balancing = V(JK_BALANCE_OFF),	/* balancer = False */
			.charging_enabled = ON,
			.discharging_enabled = ON,
			/* power_W, cycle_capacity_Wh, temperature_C: derived */
		},
	},
	{
		/* batmon's current is negative while charging: raw +12219 mA */
		.file = "jk02_24s_cellinfo_batmon_1.txt",
		.proto = JK_PROTO_JK02_24S,
		.e = {
			.cell_count = V(8),		/* voltages_mV lists 8 cells */
			.n_cells = 8,
			.cells_mv = { 3362, 3364, 3365, 3370, 3364, 3362, 3365, 3362 },
			.voltage_mv = V(26911),
			.current_ma = V(12219),
			.soc_pct = V(65),		/* raw byte 141; 65.83 is derived */
			.remaining_mah = V(181036),
			.cycle_capacity_mah = V(22173),
			.cycles = V(0),
			.temps_dc = { V(268), V(248) },
			.mos_temp_dc = V(283),
			.balance_current_ma = V(0),
			.uptime_s = V(3144960),
			/* capacity_Ah and switches come from the settings frame */
		},
	},
	{
		.file = "jk02_24s_cellinfo_esphome_1.txt",
		.proto = JK_PROTO_JK02_24S,
		.e = {
			.cell_count = V(24),		/* cell_voltage_V[1..24] all set */
			.n_cells = 24,
			.cells_mv = { 3284, 3280, 3279, 3280, 3280, 3279, 3279, 3281,
				      3280, 3279, 3280, 3279, 3282, 3284, 3279, 3279,
				      3280, 3279, 3281, 3282, 3282, 3282, 3285, 3281 },
			/* min/max cell and delta: esphome derives them from the list */
			.voltage_mv = V(78735),
			.current_ma = V(0),
			.temps_dc = { V(207), V(207) },
			.mos_temp_dc = V(234),
			.errors = V(0),
			.balancing = V(JK_BALANCE_OFF),
			.soc_pct = V(85),
			.soh_pct = V(100),
			.remaining_mah = V(42804),
			.capacity_mah = V(50000),
			.cycles = V(0),
			.uptime_s = V(269340),
			.charging_enabled = ON,
			.discharging_enabled = OFF,
			/* heating = False: jk_decode claims no heating flag on 24S
			 * (jkbms-ble.md §4.2: byte 183 reads 1 in M's 24S frame, so
			 * its meaning there is uncertain); not checked */
			.n_res = 2,
			.res_mohm = { 100, 108 },
		},
	},
	{
		/* values after T1/T2/SOC are esphome's header comment */
		.file = "jk02_24s_cellinfo_esphome_2.txt",
		.proto = JK_PROTO_JK02_24S,
		.e = {
			.temps_dc = { V(-31), V(-29) },
			.soc_pct = V(47),
			.cell_count = V(13),
			.voltage_mv = V(42786),
			.current_ma = V(0),
			.cell_at = { { .cell = 5, .mv = 3288 }, { .cell = 1, .mv = 3292 } },
			.mos_temp_dc = V(5),
			.soh_pct = V(100),
			.cycles = V(56),
			.charging_enabled = OFF,
			.discharging_enabled = OFF,
			/* heating off: not claimed on 24S, see above */
		},
	},
	{
		.file = "jk02_24s_cellinfo_mppsolar_1.txt",
		.proto = JK_PROTO_JK02_24S,
		.e = {
			.counter = V(181),		/* Record_Counter */
			.n_cells = 24,			/* cells 17..24 = 0.0 */
			.cells_mv = { 3374, 3368, 3322, 3374, 3375, 3362, 3362, 3347,
				      3353, 3357, 3357, 3351, 3359, 3350, 3323, 3359 },
			.cell_avg_mv = V(3356),
			.cell_delta_mv = V(53),
			.cell_max_index = V(4),		/* "Current_Balancer" bytes 62/63 */
			.cell_min_index = V(2),
			.n_res = 16,
			.res_mohm = { 155, 198, 160, 179, 188, 204, 190, 177,
				      180, 301, 317, 176, 161, 171, 178, 173 },
			.voltage_mv = V(53692),
			.power_mw = V(0),
			.current_ma = V(0),		/* "Balance_Current_A": byte 126 */
			.temps_dc = { V(286), V(278) },
			.mos_temp_dc = V(316),
			.soc_pct = V(99),
			.remaining_mah = V(199787),
			.capacity_mah = V(200000),
			.cycles = V(0),
			.cycle_capacity_mah = V(85468),
			.uptime_s = V(1449592),
		},
	},
	{
		.file = "jk02_32s_cellinfo_aiobmsble_1.txt",
		.proto = JK_PROTO_JK02_32S,
		.e = {
			.cell_count = V(8),
			.n_cells = 8,
			.cells_mv = { 3315, 3315, 3315, 3312, 3313, 3312, 3313, 3313 },
			.cell_delta_mv = V(3),
			.voltage_mv = V(26509),
			.current_ma = V(-7063),
			.soc_pct = V(68),
			.soh_pct = V(100),
			.remaining_mah = V(142464),
			.capacity_mah = VDIV(210, 1000),
			.cycles = V(21),
			.balance_current_ma = V(0),
			.temp_presence = V(255),
			.errors = V(0),
			.errors_mask = 0xFFFF,		/* aiobmsble keeps the low 16 bits */
			.mos_temp_dc = V(310),
			.temps_dc = { V(284), V(292), V(310) },
			.balancing = V(JK_BALANCE_OFF),
			.charging_enabled = ON,
			.discharging_enabled = ON,
			/* runtime_s = 72613 is an estimate, not the uptime field */
		},
	},
	{
		.file = "jk02_32s_cellinfo_aiobmsble_2.txt",
		.proto = JK_PROTO_JK02_32S,
		.e = {
			.cell_count = V(16),
			.n_cells = 16,
			.cells_mv = { 3333, 3326, 3326, 3329, 3329, 3325, 3323, 3329,
				      3324, 3323, 3326, 3323, 3320, 3323, 3323, 3337 },
			.cell_delta_mv = V(16),		/* raw byte 76 */
			.charge_status = V(2),		/* FLOAT */
			.charge_status_time_s = V(677),	/* "timer: 677s" */
			.voltage_mv = V(53224),
			.current_ma = V(31881),
			.soc_pct = V(25),
			.soh_pct = V(100),
			.remaining_mah = V(49286),
			.capacity_mah = VDIV(200, 1000),
			.cycles = V(9),
			.balance_current_ma = V(0),
			.temp_presence = V(255),
			.errors = V(0),
			.errors_mask = 0xFFFF,
			.mos_temp_dc = V(129),
			.temps_dc = { V(134), V(128), V(205), V(195), V(191) },
			.balancing = V(JK_BALANCE_OFF),
			.charging_enabled = ON,
			.discharging_enabled = ON,
			/* the note: esphome asserts runtime 24530060 s on the same bytes 0..253 */
			.uptime_s = V(24530060),
		},
	},
	{
		.file = "jk02_32s_cellinfo_aiobmsble_3.txt",
		.proto = JK_PROTO_JK02_32S,
		.e = {
			.voltage_mv = V(26481),
			.current_ma = V(-12684),
			.errors = V(0),
			.errors_mask = 0xFFFF,
			.balance_current_ma = V(1990),
			.balancing = V(JK_BALANCE_CHARGE),
			.soc_pct = V(78),
			.remaining_mah = V(244296),
			.capacity_mah = VDIV(314, 1000),
			.cycles = V(15),
			.soh_pct = V(100),
			.charging_enabled = ON,
			.discharging_enabled = ON,
			.temp_presence = V(255),
			.cell_count = V(8),
			.cell_delta_mv = V(5),
			.charge_status = V(0),		/* BULK */
			.mos_temp_dc = V(262),
			.temps_dc = { V(233), V(236), V(262), V(245), V(240) },
			.n_cells = 8,
			.cells_mv = { 3308, 3312, 3312, 3307, 3311, 3311, 3312, 3309 },
		},
	},
	{
		/* batmon's current is negative while charging: raw +33292 mA */
		.file = "jk02_32s_cellinfo_batmon_1.txt",
		.proto = JK_PROTO_JK02_32S,
		.e = {
			.voltage_mv = V(13405),
			.current_ma = V(33292),
			.soc_pct = V(66),		/* raw byte 173; 65.87 is derived */
			.remaining_mah = V(165500),
			.cycle_capacity_mah = V(107478918),
			.cycles = V(427),
			.soh_pct = V(79),
			.capacity_mah = V(251235),	/* byte 178, SOH-aged on 11.x */
			/* the file's notes (no source asserts these): */
			.errors = V(0x00080000),	/* bit 19 */
			.balance_current_ma = V(1990),
			.balancing = V(JK_BALANCE_CHARGE),
		},
	},
	{
		/* no source assertion: "decoded by this research" values */
		.file = "jk02_32s_cellinfo_batmon_2.txt",
		.proto = JK_PROTO_JK02_32S,
		.e = {
			.cell_count = V(8),
			.voltage_mv = V(26943),
			.current_ma = V(445),
			.soc_pct = V(99),
			.remaining_mah = V(273753),
			.capacity_mah = V(276519),
			.cycles = V(11),
			.soh_pct = V(99),
			.mos_temp_dc = V(296),
			.temps_dc = { V(277), V(275), {0}, V(JK_TEMP_ABSENT_DC),
				      V(JK_TEMP_ABSENT_DC) },
		},
	},
	{
		/* min/max cell and delta: esphome derives them from the list */
		.file = "jk02_32s_cellinfo_esphome_1.txt",
		.proto = JK_PROTO_JK02_32S,
		.e = {
			.cell_at = { { .cell = 1, .mv = 3381 }, { .cell = 16, .mv = 3377 },
				     { .cell = 10, .mv = 3374 } },
			.voltage_mv = V(54028),
			.current_ma = V(-727),
			.temps_dc = { V(119), V(127) },
			.mos_temp_dc = V(128),
			.soc_pct = V(100),
			.remaining_mah = V(312898),
			.capacity_mah = V(314000),
			.cycles = V(5),
			.uptime_s = V(3609276),
			.charging_enabled = ON,
			.discharging_enabled = ON,
			.battery_type = V(0),		/* LFP */
			.cell_count = V(16),		/* header comment */
			.soh_pct = V(100),
			.heating = OFF,
		},
	},
	{
		.file = "jk02_32s_cellinfo_esphome_2.txt",
		.proto = JK_PROTO_JK02_32S,
		.e = {
			.cell_at = { { .cell = 1, .mv = 3175 }, { .cell = 11, .mv = 2851 },
				     { .cell = 16, .mv = 3174 } },
			.voltage_mv = V(49526),
			.temps_dc = { V(168), V(170) },
			.mos_temp_dc = V(182),
			.soc_pct = V(50),
			.uptime_s = V(124641),
			.charging_enabled = ON,
			.discharging_enabled = ON,
			/* header comment */
			.current_ma = V(0),
			.soh_pct = V(100),
			.remaining_mah = V(1007),
			.capacity_mah = V(2000),
			.cycles = V(0),
			.heating = OFF,
		},
	},
	{
		.file = "jk02_32s_cellinfo_esphome_3.txt",
		.proto = JK_PROTO_JK02_32S,
		.e = {
			.cell_at = { { .cell = 1, .mv = 3246 }, { .cell = 2, .mv = 3230 },
				     { .cell = 11, .mv = 3216 }, { .cell = 16, .mv = 3242 } },
			.voltage_mv = V(51689),
			.current_ma = V(0),
			.temps_dc = { V(177), V(177) },
			.mos_temp_dc = V(173),
			.soc_pct = V(52),
			.uptime_s = V(107416),
			.charging_enabled = ON,
			.discharging_enabled = ON,
			.heating = OFF,
			/* header comment */
			.soh_pct = V(100),
			.remaining_mah = V(1043),
			.capacity_mah = V(2000),
			.cycles = V(0),
		},
	},
	{
		.file = "jk04_cellinfo_esphome_1.txt",
		.proto = JK_PROTO_JK04,
		.e = {
			/* float volts rounded to the nearest mV */
			.cell_at = { { .cell = 1, .mv = 3353 }, { .cell = 2, .mv = 3359 } },
			.voltage_mv = V(53691),		/* sum of the 16 float cells */
			.uptime_s = V(1873811),
			.balancing = V(JK_BALANCE_CHARGE),	/* byte 220 = 0x01 */
		},
	},
	{
		.file = "jk04_cellinfo_esphome_2.txt",
		.proto = JK_PROTO_JK04,
		.e = {
			.uptime_s = V(591338),
			.balance_current_ma = VT(-2600, 50),	/* -2.6 A +- 0.05 */
			.balancing = V(JK_BALANCE_DISCHARGE),	/* byte 220 = 0x02 */
			.cell_count = V(16),			/* header: 16S */
		},
	},
};

#define N_CELL_VECTORS (sizeof(cell_vectors) / sizeof(cell_vectors[0]))

/* Decode every cell-info vector of protocol `proto` (UNKNOWN: all of them)
 * with the file's protocol and again with the detected one. */
static void run_cell_vectors(enum jk_protocol proto)
{
	static struct vector_report r;
	unsigned done = 0;

	vector_report_init(&r);
	for (size_t i = 0; i < N_CELL_VECTORS; i++) {
		const struct cell_vector *v = &cell_vectors[i];
		uint8_t frame[JK_FRAME_LEN];
		struct jk_sample s;
		enum jk_protocol detected;
		char what[128];
		int rc;

		if (proto != JK_PROTO_UNKNOWN && v->proto != proto)
			continue;
		done++;
		check_table_protocol(&r, v->file, v->proto);
		ck_assert_msg(frame_via_stream(v->file, frame) == JK_FRAME_CELL_INFO,
			      "%s: not a cell-info frame", v->file);

		rc = jk_decode_cell_info(frame, v->proto, &s);
		ck_assert_msg(rc == 0, "%s: jk_decode_cell_info: %d", v->file, rc);
		ck_assert_msg(s.protocol == v->proto, "%s: sample protocol %s", v->file,
			      jk_protocol_name(s.protocol));
		snprintf(what, sizeof(what), "%s (%s)", v->file, jk_protocol_name(v->proto));
		check_sample(&r, what, &v->e, &s);

		detected = jk_detect_from_frame(frame);
		if (detected != v->proto) {
			vector_report_add(&r, "%s: jk_detect_from_frame: expected %s, got %s",
					  v->file, jk_protocol_name(v->proto),
					  jk_protocol_name(detected));
			continue;
		}
		rc = jk_decode_cell_info(frame, detected, &s);
		ck_assert_msg(rc == 0, "%s: jk_decode_cell_info (detected): %d", v->file, rc);
		snprintf(what, sizeof(what), "%s (auto)", v->file);
		check_sample(&r, what, &v->e, &s);
	}
	ck_assert_msg(done > 0, "no cell-info vectors of protocol %s", jk_protocol_name(proto));
	vector_report_assert(&r);
}

START_TEST(test_cellinfo_24s_vectors_decode_to_source_values)
{
	run_cell_vectors(JK_PROTO_JK02_24S);
}
END_TEST

START_TEST(test_cellinfo_32s_vectors_decode_to_source_values)
{
	run_cell_vectors(JK_PROTO_JK02_32S);
}
END_TEST

START_TEST(test_cellinfo_jk04_vectors_decode_to_source_values)
{
	run_cell_vectors(JK_PROTO_JK04);
}
END_TEST

/* JK04 has no pack current, SOC, cycles or MOSFET flags (jkbms-ble.md §4.6);
 * JK02 frames have them all. */
START_TEST(test_cellinfo_vectors_mark_present_fields_per_layout)
{
	const uint32_t jk02_has = JK_HAS_CURRENT | JK_HAS_SOC | JK_HAS_CYCLES | JK_HAS_TEMPS |
				  JK_HAS_MOS_TEMP | JK_HAS_ERRORS | JK_HAS_MOSFETS;
	const uint32_t jk04_lacks = JK_HAS_CURRENT | JK_HAS_SOC | JK_HAS_CYCLES | JK_HAS_MOSFETS;

	for (size_t i = 0; i < N_CELL_VECTORS; i++) {
		const struct cell_vector *v = &cell_vectors[i];
		uint8_t frame[JK_FRAME_LEN];
		struct jk_sample s;

		frame_via_stream(v->file, frame);
		ck_assert_int_eq(jk_decode_cell_info(frame, v->proto, &s), 0);
		if (v->proto == JK_PROTO_JK04)
			ck_assert_msg((s.has & jk04_lacks) == 0, "%s: has 0x%x claims JK02-only fields",
				      v->file, s.has);
		else
			ck_assert_msg((s.has & jk02_has) == jk02_has, "%s: has 0x%x lacks 0x%x",
				      v->file, s.has, jk02_has & ~s.has);
		if (v->proto == JK_PROTO_JK02_32S)
			ck_assert_msg(s.temp_count == 5, "%s: temp_count %u", v->file, s.temp_count);
		else if (v->proto == JK_PROTO_JK02_24S)
			ck_assert_msg(s.temp_count == 2, "%s: temp_count %u", v->file, s.temp_count);
	}
}
END_TEST

/* ---------------------------------------------------- settings vectors */

struct settings_vector {
	const char *file;
	enum jk_protocol proto;
	struct exp_settings e;
};

static const struct settings_vector settings_vectors[] = {
	{
		.file = "jk02_24s_settings_batmon_1.txt",
		.proto = JK_PROTO_JK02_24S,
		.e = {
			.capacity_mah = V(275000),
			.charging_switch = ON,
			.discharging_switch = ON,
			.balancer_switch = ON,
			/* "decoded by this research" (not asserted by batmon): */
			.cell_count = V(8),
			.cell_uvp_mv = V(2600),
			.cell_uvpr_mv = V(2650),
			.cell_ovp_mv = V(3500),
			.cell_ovpr_mv = V(3350),
			.power_off_mv = V(2500),
			.max_charge_current_ma = V(100000),
			.max_discharge_current_ma = V(120000),
			.max_balance_current_ma = V(2000),
			.balance_start_mv = V(3000),
			.scp_delay_us = V(1500),
		},
	},
	{
		.file = "jk02_32s_settings_batmon_1.txt",
		.proto = JK_PROTO_JK02_32S,
		.e = {
			.capacity_mah = V(320000),	/* "User-set 320 Ah" */
			/* "decoded by this research" (not asserted by batmon): */
			.cell_count = V(4),
			.cell_uvp_mv = V(2950),
			.cell_uvpr_mv = V(3100),
			.cell_ovp_mv = V(3450),
			.cell_ovpr_mv = V(3400),
			.soc100_mv = V(3440),
			.soc0_mv = V(3000),
			.power_off_mv = V(2500),
			.max_charge_current_ma = V(150000),
			.max_discharge_current_ma = V(150000),
			.max_balance_current_ma = V(2000),
			.charge_otp_dc = V(700),
			.charge_utp_dc = V(-200),
			.mos_otp_dc = V(1000),
			.balance_start_mv = V(3350),
			.device_address = V(1),
			.heating_start_c = V(60),
			.heating_stop_c = V(50),
			.smart_sleep_h = V(24),
		},
	},
	{
		/* no source assertion: "decoded by this research" values */
		.file = "jk02_32s_settings_batmon_2.txt",
		.proto = JK_PROTO_JK02_32S,
		.e = {
			.cell_count = V(8),
			.cell_uvp_mv = V(2500),
			.cell_uvpr_mv = V(2900),
			.cell_ovp_mv = V(3650),
			.cell_ovpr_mv = V(3400),
			.soc100_mv = V(3445),
			.soc0_mv = V(2700),
			.rcv_mv = V(3450),
			.rfv_mv = V(3350),
			.power_off_mv = V(2490),
			.max_charge_current_ma = V(160000),
			.max_discharge_current_ma = V(300000),
			.max_balance_current_ma = V(2000),
			.capacity_mah = V(280000),
			.balance_start_mv = V(3000),
			.controls = V(0x0080),		/* bit 7: disable PCL */
		},
	},
	{
		.file = "jk04_settings_esphome_1.txt",
		.proto = JK_PROTO_JK04,
		.e = {
			.cell_count = V(16),
			.jk04_power_off_mv = V(3200),
			.jk04_balance_trigger_mv = V(8),
			.jk04_max_balance_current_ma = V(4500),
			.jk04_vref_mv = V(3033),		/* raw 3.033129 V */
			.jk04_balance_start_mv = V(4250),
			.balancer_switch = ON,
		},
	},
};

/* Detection from a settings frame only promises JK04 versus JK02 reliably
 * (jk_decode.h); the decode then uses what it found. */
static bool same_family(enum jk_protocol a, enum jk_protocol b)
{
	return (a == JK_PROTO_JK04) == (b == JK_PROTO_JK04) && a != JK_PROTO_UNKNOWN &&
	       b != JK_PROTO_UNKNOWN;
}

START_TEST(test_settings_vectors_decode_to_source_values)
{
	static struct vector_report r;

	vector_report_init(&r);
	for (size_t i = 0; i < sizeof(settings_vectors) / sizeof(settings_vectors[0]); i++) {
		const struct settings_vector *v = &settings_vectors[i];
		uint8_t frame[JK_FRAME_LEN];
		struct jk_settings s;
		enum jk_protocol detected;
		char what[128];
		int rc;

		check_table_protocol(&r, v->file, v->proto);
		ck_assert_msg(frame_via_stream(v->file, frame) == JK_FRAME_SETTINGS,
			      "%s: not a settings frame", v->file);
		rc = jk_decode_settings(frame, v->proto, &s);
		ck_assert_msg(rc == 0, "%s: jk_decode_settings: %d", v->file, rc);
		ck_assert_msg(s.protocol == v->proto, "%s: settings protocol %s", v->file,
			      jk_protocol_name(s.protocol));
		snprintf(what, sizeof(what), "%s (%s)", v->file, jk_protocol_name(v->proto));
		check_settings(&r, what, &v->e, &s);

		detected = jk_detect_from_frame(frame);
		if (!same_family(detected, v->proto)) {
			vector_report_add(&r, "%s: jk_detect_from_frame: expected %s, got %s",
					  v->file, jk_protocol_name(v->proto),
					  jk_protocol_name(detected));
			continue;
		}
		ck_assert_int_eq(jk_decode_settings(frame, detected, &s), 0);
		snprintf(what, sizeof(what), "%s (auto: %s)", v->file, jk_protocol_name(detected));
		check_settings(&r, what, &v->e, &s);
	}
	vector_report_assert(&r);
}
END_TEST

/* ------------------------------------------------- device-info vectors */

/*
 * aiobmsble reads only 8 characters of the serial (bytes 86..93); our
 * decoder reads the whole NUL-terminated field 86..101, so the source's
 * value must be a prefix of ours.  Where the file also states the full
 * field, it is checked whole.
 *
 * Detection: every file here must be detected as its own protocol from the
 * device info.  The one known exception, the JK-B5A24S (hw 8.X, speaks
 * JK04 but looks like JK02_24S by its versions; jkbms-ble.md §4.1), has no
 * device-info vector; its cell-info and settings frames are detected by
 * content above.
 */
struct info_vector {
	const char *file;
	enum jk_protocol proto;
	struct exp_info e;
};

static const struct info_vector info_vectors[] = {
	{
		.file = "jk02_24s_devinfo_aiobmsble_1.txt",
		.proto = JK_PROTO_JK02_24S,
		.e = {
			.model = "JK-B2A20S20P",
			.hw_version = "10.XG",
			.sw_version = "10.08",
			.name = "JK-BMS-A",
			.serial_prefix = "20328160",
			.serial = "2032816012",	/* "full field reads 2032816012" */
		},
	},
	{
		/* 320 bytes (frame + ack); "decoded by this research" values */
		.file = "jk02_24s_devinfo_batmon_1.txt",
		.proto = JK_PROTO_JK02_24S,
		.e = {
			.model = "JK-B2A24S20P",
			.hw_version = "10.X-W",
			.sw_version = "10.02",
			.uptime_s = V(3131100),
			.power_on_count = V(6),
			.name = "JK pw123456",
			.manufacturing_date = "220606",
			.serial = "1120303218",
			.user_data = "Input Userdata",
		},
	},
	{
		.file = "jk02_24s_devinfo_esphome_1.txt",
		.proto = JK_PROTO_JK02_24S,
		.e = {
			.hw_version = "10.XG",
			.sw_version = "10.07",
		},
	},
	{
		.file = "jk02_32s_devinfo_aiobmsble_1.txt",
		.proto = JK_PROTO_JK02_32S,
		.e = {
			.model = "JK_B2A8S20P",
			.hw_version = "11.XA",
			.sw_version = "11.48",
			.name = "12v420a",
			.serial_prefix = "404092C2",
			.serial = "404092C2262",	/* source comment "SN: 404092C2262" */
			.power_on_count = V(7),		/* source comment "power-on: 7" */
		},
	},
	{
		.file = "jk02_32s_devinfo_aiobmsble_2.txt",
		.proto = JK_PROTO_JK02_32S,
		.e = {
			.model = "JK_PB2A16S20P",
			.hw_version = "15A",
			.sw_version = "15.38",
			.name = "41018492555",
			.serial_prefix = "41018492",
		},
	},
	{
		/* 324 bytes (frame + ack + "AT\r\n").  The source comment's
		 * "SN: 50321489000643" does not match the frame's bytes in any
		 * reading (14 characters, a digit dropped); only the asserted
		 * 8-character prefix is checked. */
		.file = "jk02_32s_devinfo_aiobmsble_3.txt",
		.proto = JK_PROTO_JK02_32S,
		.e = {
			.model = "JK_PB2A16S20P",
			.hw_version = "19A",
			.sw_version = "19.05",
			.name = "Baterie 1",
			.serial_prefix = "50321484",
			.power_on_count = V(11),	/* source comment "power-on: 11" */
		},
	},
	{
		/* byte 21 is 0x10: the model ends at the first NUL */
		.file = "jk02_32s_devinfo_aiobmsble_4.txt",
		.proto = JK_PROTO_JK02_32S,
		.e = {
			.model = "JK-PB2A16S20P",
			.hw_version = "19A",
			.sw_version = "19.27",
			.name = "DG Smart BMS",
			.serial_prefix = "51020BO4",
		},
	},
	{
		/* no source assertion: "decoded by this research" values */
		.file = "jk02_32s_devinfo_batmon_1.txt",
		.proto = JK_PROTO_JK02_32S,
		.e = {
			.model = "JK_B2A8S30P",
			.hw_version = "19H",
			.sw_version = "19.04",
			.power_on_count = V(6),
			.name = "50418574A202534",
			.serial = "50418574A202534",	/* 16-byte field, spills over 97..101 */
			.manufacturing_date = "250629",
		},
	},
	{
		.file = "jk04_devinfo_esphome_1.txt",
		.proto = JK_PROTO_JK04,
		.e = {
			.hw_version = "3.0",
			.sw_version = "3.3.0",
			/* source code comment */
			.model = "JK-B2A16S",
			.uptime_s = V(36867600),
			.power_on_count = V(19),
			.name = "BMS",
		},
	},
	{
		.file = "jk04_devinfo_mppsolar_1.txt",
		.proto = JK_PROTO_JK04,
		.e = {
			.model = "JK-B2A24S",
			.hw_version = "3.0",
			.sw_version = "3.2.3",
			.uptime_s = V(4552200),
			.power_on_count = V(4),
			.name = "Power Wall 1",
			.manufacturing_date = "",
			.serial = "",
			.user_data = "",
		},
	},
};

START_TEST(test_devinfo_vectors_decode_to_source_values)
{
	static struct vector_report r;

	vector_report_init(&r);
	for (size_t i = 0; i < sizeof(info_vectors) / sizeof(info_vectors[0]); i++) {
		const struct info_vector *v = &info_vectors[i];
		uint8_t frame[JK_FRAME_LEN];
		struct jk_device_info d;
		int rc;

		check_table_protocol(&r, v->file, v->proto);
		ck_assert_msg(frame_via_stream(v->file, frame) == JK_FRAME_DEVICE_INFO,
			      "%s: not a device-info frame", v->file);
		rc = jk_decode_device_info(frame, &d);
		ck_assert_msg(rc == 0, "%s: jk_decode_device_info: %d", v->file, rc);
		check_info(&r, v->file, &v->e, &d);
		ck_assert_msg(strlen(d.serial) < JK_STR_MAX && strlen(d.model) < JK_STR_MAX,
			      "%s: strings not terminated", v->file);
	}
	vector_report_assert(&r);
}
END_TEST

START_TEST(test_devinfo_vectors_detect_their_protocol)
{
	static struct vector_report r;

	vector_report_init(&r);
	for (size_t i = 0; i < sizeof(info_vectors) / sizeof(info_vectors[0]); i++) {
		const struct info_vector *v = &info_vectors[i];
		uint8_t frame[JK_FRAME_LEN];
		struct jk_device_info d;
		enum jk_protocol p;

		frame_via_stream(v->file, frame);
		ck_assert_int_eq(jk_decode_device_info(frame, &d), 0);
		p = jk_detect_from_device_info(&d);
		if (p != v->proto)
			vector_report_add(&r, "%s: jk_detect_from_device_info (hw %s, sw %s): "
					  "expected %s, got %s", v->file, d.hw_version,
					  d.sw_version, jk_protocol_name(v->proto),
					  jk_protocol_name(p));
	}
	vector_report_assert(&r);
}
END_TEST

/* ------------------------------------------------------ logbook vector */

START_TEST(test_logbook_vector_decodes_four_entries)
{
	static const struct {
		uint32_t time_s;
		uint8_t code;
	} want[] = {
		{ 0, 0x01 },		/* Boot */
		{ 238, 0x44 },		/* Factory setting LFP */
		{ 2514095, 0x1B },	/* Charge low temperature protection */
		{ 2514136, 0x1C },	/* ... released */
	};
	const char *file = "jk02_32s_logbook_esphome_1.txt";
	uint8_t frame[JK_FRAME_LEN];
	struct jk_logbook lb;

	ck_assert_int_eq(file_protocol(file), JK_PROTO_JK02_32S);
	ck_assert_int_eq(frame_via_stream(file, frame), JK_FRAME_LOGBOOK);
	ck_assert_int_eq(jk_decode_logbook(frame, &lb), 0);
	ck_assert_uint_eq(lb.entry_count, 4);
	ck_assert_uint_eq(lb.n, 4);
	for (unsigned i = 0; i < 4; i++) {
		ck_assert_msg(lb.entries[i].time_s == want[i].time_s,
			      "entry %u: time %u, want %u", i, lb.entries[i].time_s, want[i].time_s);
		ck_assert_msg(lb.entries[i].code == want[i].code,
			      "entry %u: code 0x%02x, want 0x%02x", i, lb.entries[i].code,
			      want[i].code);
	}
	/* a logbook frame is no cell-info or settings frame */
	ck_assert_int_eq(jk_decode_cell_info(frame, JK_PROTO_JK02_32S, &(struct jk_sample){ 0 }),
			 -EINVAL);
}
END_TEST

/* ------------------------------------ single frames through jk_stream */

/* Feed the file's "hex:" bytes in chunks of `chunk` (0 = all at once). */
static void stream_single(const char *file, size_t chunk)
{
	uint8_t raw[CAPTURE_MAX_BYTES];
	size_t n = vector_hex(file, raw, sizeof(raw));
	size_t trailing = n - JK_FRAME_LEN;
	struct jk_stream s;
	static struct vector_tokens t;

	ck_assert_msg(n == 300 || n == 320 || n == 324, "%s: %zu bytes", file, n);
	jk_stream_init(&s);
	vector_tokens_init(&t);
	for (size_t off = 0; off < n; off += chunk ? chunk : n) {
		size_t k = chunk && n - off > chunk ? chunk : n - off;

		vector_feed(&s, raw + off, k, &t);
	}
	vector_flush(&s, &t);

	ck_assert_msg(t.n_frames == 1 && s.stats.frames == 1, "%s/%zu: %zu frames", file, chunk,
		      t.n_frames);
	ck_assert_msg(memcmp(t.frames[0], raw, JK_FRAME_LEN) == 0, "%s/%zu: frame bytes differ",
		      file, chunk);
	ck_assert_msg(s.stats.bad_checksums == 0, "%s/%zu: bad checksums %u", file, chunk,
		      s.stats.bad_checksums);
	/* 320 = frame + ack, 324 = frame + ack + "AT\r\n" (the files' notes) */
	ck_assert_msg(strcmp(t.order, trailing ? "FA" : "F") == 0, "%s/%zu: tokens \"%s\"", file,
		      chunk, t.order);
	ck_assert_msg(s.stats.acks == (trailing ? 1u : 0u), "%s/%zu: acks %u", file, chunk,
		      s.stats.acks);
	ck_assert_msg(s.stats.at_tokens == (trailing == 24 ? 1u : 0u), "%s/%zu: AT tokens %u",
		      file, chunk, s.stats.at_tokens);
	ck_assert_msg(s.stats.skipped_bytes == trailing, "%s/%zu: skipped %u, want %zu", file,
		      chunk, s.stats.skipped_bytes, trailing);
	ck_assert_msg(s.len == 0, "%s/%zu: %zu bytes left in the buffer", file, chunk, s.len);
}

START_TEST(test_single_frame_vectors_pass_jk_stream_in_any_chunking)
{
	static const size_t chunks[] = { 0, 1, 20, 128, 299 };
	unsigned files = 0;

	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		for (size_t i = 0; i < N_CELL_VECTORS; i++)
			stream_single(cell_vectors[i].file, chunks[c]);
		for (size_t i = 0; i < sizeof(settings_vectors) / sizeof(settings_vectors[0]); i++)
			stream_single(settings_vectors[i].file, chunks[c]);
		for (size_t i = 0; i < sizeof(info_vectors) / sizeof(info_vectors[0]); i++)
			stream_single(info_vectors[i].file, chunks[c]);
		stream_single("jk02_32s_logbook_esphome_1.txt", chunks[c]);
	}
	files = N_CELL_VECTORS + sizeof(settings_vectors) / sizeof(settings_vectors[0]) +
		sizeof(info_vectors) / sizeof(info_vectors[0]) + 1;
	ck_assert_uint_eq(files, 30);
}
END_TEST

START_TEST(test_corrupt_frame_is_rejected_then_stream_resyncs)
{
	const char *bad = "jk02_32s_cellinfo_batmon_corrupt_1.txt";
	const char *good = "jk02_32s_cellinfo_batmon_2.txt";	/* same unit, issue #377 */
	uint8_t raw[CAPTURE_MAX_BYTES], next[CAPTURE_MAX_BYTES];
	size_t n = vector_hex(bad, raw, sizeof(raw));
	size_t m = vector_hex(good, next, sizeof(next));
	struct jk_stream s;
	static struct vector_tokens t;

	ck_assert_uint_eq(n, JK_FRAME_LEN);
	ck_assert_msg(jk_sum8(raw, JK_FRAME_LEN - 1) != raw[JK_FRAME_LEN - 1],
		      "%s: checksum unexpectedly valid", bad);

	jk_stream_init(&s);
	vector_tokens_init(&t);
	vector_feed(&s, raw, n, &t);
	vector_flush(&s, &t);
	ck_assert_msg(t.n_frames == 0, "corrupt frame handed out");
	ck_assert_uint_eq(s.stats.frames, 0);
	ck_assert_uint_eq(s.stats.bad_checksums, 1);
	ck_assert_msg(s.stats.skipped_bytes + s.len == n, "skipped %u + buffered %zu != %zu",
		      s.stats.skipped_bytes, s.len, n);

	/* the next real frame behind it still comes out */
	vector_feed(&s, next, m, &t);
	vector_flush(&s, &t);
	ck_assert_msg(t.n_frames == 1, "%zu frames after the corrupt one", t.n_frames);
	ck_assert_msg(memcmp(t.frames[0], next, JK_FRAME_LEN) == 0, "wrong frame after resync");
	ck_assert_uint_eq(s.stats.bad_checksums, 1);
	ck_assert_uint_eq(s.stats.skipped_bytes, n);
	ck_assert_uint_eq(s.len, 0);
}
END_TEST

START_TEST(test_ack_vectors_yield_ack_tokens_not_frames)
{
	const char *file = "jk02_ack_aiobmsble_1.txt";
	static struct vector_line l[4];
	int n;

	n = vector_lines_ex(file, "ack", l, 4);
	ck_assert_int_eq(n, 2);
	for (int i = 0; i < n; i++) {
		struct jk_stream s;
		static struct vector_tokens t;
		bool with_at = strcmp(l[i].cap.label, "ack_with_at_hex") == 0;

		ck_assert_msg(l[i].kind == CAPTURE_NOTIFY, "%s:%u: '%s' is not a notification",
			      file, l[i].lineno, l[i].cap.label);
		ck_assert_uint_eq(l[i].cap.len, with_at ? 24 : 20);
		jk_stream_init(&s);
		vector_tokens_init(&t);
		vector_feed(&s, l[i].cap.data, l[i].cap.len, &t);
		vector_flush(&s, &t);
		ck_assert_msg(strcmp(t.order, "A") == 0, "%s: tokens \"%s\"", l[i].cap.label,
			      t.order);
		ck_assert_uint_eq(s.stats.acks, 1);
		ck_assert_uint_eq(s.stats.at_tokens, with_at ? 1 : 0);
		ck_assert_uint_eq(s.stats.skipped_bytes, l[i].cap.len);
		ck_assert_uint_eq(s.stats.frames, 0);
		ck_assert_uint_eq(s.len, 0);
	}
}
END_TEST

/* ------------------------------------------------ fragmented sessions */

/* Research values for the frames of the btsnoop sessions: no source asserts
 * anything about them, so these are the files' "decoded by this research"
 * lines.  JK04 volts are printed to 0.1 mV and sums to 1 mV: small
 * tolerances. */
struct session_frame {
	const char *file;
	unsigned frame;			/* NN of frame.NN */
	struct exp_cell cell;
	struct exp_settings set;
	struct exp_info info;
};

#define CELL_RESEARCH(n, c1, v, i, soc, rem, cyc, up) { \
	.cell_count = V(n), .cell_at = { { .cell = 1, .mv = (c1) } }, .voltage_mv = V(v), \
	.current_ma = V(i), .soc_pct = V(soc), .remaining_mah = V(rem), .cycles = V(cyc), \
	.uptime_s = V(up), .charging_enabled = ON, .discharging_enabled = ON }
#define SET_RESEARCH(n, uvp, ovp, chg, dsg, cap) { \
	.cell_count = V(n), .cell_uvp_mv = V(uvp), .cell_ovp_mv = V(ovp), \
	.max_charge_current_ma = V(chg), .max_discharge_current_ma = V(dsg), \
	.capacity_mah = V(cap), .charging_switch = ON, .discharging_switch = ON, \
	.balancer_switch = ON }
#define INFO_RESEARCH(m, hw, sw, nm, pwr, up) { \
	.model = (m), .hw_version = (hw), .sw_version = (sw), .name = (nm), \
	.power_on_count = V(pwr), .uptime_s = V(up) }

static const struct session_frame session_frames[] = {
	{ "jk02_24s_session_frag_esphome_1.txt", 1,
	  .info = INFO_RESEARCH("JK-BD6A17S6P", "7.X", "7.1.0H", "JK-BD6A17S6P", 6, 672600) },
	{ "jk02_24s_session_frag_esphome_1.txt", 2,
	  .set = SET_RESEARCH(16, 2600, 3600, 25000, 60000, 81000) },
	{ "jk02_24s_session_frag_esphome_1.txt", 3,
	  .cell = CELL_RESEARCH(16, 3353, 53682, 0, 85, 69279, 0, 672691) },
	{ "jk02_24s_session_frag_esphome_1.txt", 4,
	  .cell = CELL_RESEARCH(16, 3353, 53681, 0, 85, 69279, 0, 672691) },

	{ "jk02_24s_session_frag_esphome_2.txt", 1,
	  .info = INFO_RESEARCH("JK-B1A20S15P", "10.XW", "10.07", "JK-B1A20S15P", 15, 15320700) },
	{ "jk02_24s_session_frag_esphome_2.txt", 2,
	  .set = SET_RESEARCH(16, 2600, 3550, 100000, 100000, 100000) },
	{ "jk02_24s_session_frag_esphome_2.txt", 3,
	  .cell = CELL_RESEARCH(16, 3294, 52676, -2400, 97, 97048, 54, 15320827) },
	{ "jk02_24s_session_frag_esphome_2.txt", 4,
	  .cell = CELL_RESEARCH(16, 3293, 52687, -2400, 97, 97048, 54, 15320828) },

	{ "jk02_32s_session_frag_esphome_1.txt", 1,
	  .info = INFO_RESEARCH("JK_PB2A16S20P", "15A", "15.41", "JK BMS v1", 27, 15722700) },
	{ "jk02_32s_session_frag_esphome_1.txt", 2,
	  .set = SET_RESEARCH(16, 2600, 3650, 80000, 100000, 310000) },
	{ "jk02_32s_session_frag_esphome_1.txt", 3,
	  .info = INFO_RESEARCH("JK_PB2A16S20P", "15A", "15.41", "JK BMS v1", 27, 15722700) },
	{ "jk02_32s_session_frag_esphome_1.txt", 4,
	  .cell = CELL_RESEARCH(16, 3349, 53562, 729, 99, 306901, 17, 15722764) },
	{ "jk02_32s_session_frag_esphome_1.txt", 5,
	  .cell = CELL_RESEARCH(16, 3351, 53567, 729, 99, 306901, 17, 15722765) },

	{ "jk02_32s_session_frag_esphome_2.txt", 1,
	  .info = INFO_RESEARCH("JK_PB2A16S15P", "14.XA", "14.20", "JK_PB2A16S15P", 160, 139201) },
	{ "jk02_32s_session_frag_esphome_2.txt", 2,
	  .set = SET_RESEARCH(16, 2800, 3649, 52000, 52000, 2000) },
	{ "jk02_32s_session_frag_esphome_2.txt", 3,
	  .info = INFO_RESEARCH("JK_PB2A16S15P", "14.XA", "14.20", "JK_PB2A16S15P", 160, 139201) },
	{ "jk02_32s_session_frag_esphome_2.txt", 4,
	  .cell = CELL_RESEARCH(16, 3378, 53501, 0, 100, 1999, 0, 139411) },
	{ "jk02_32s_session_frag_esphome_2.txt", 5,
	  .cell = CELL_RESEARCH(16, 3381, 53505, 0, 100, 1999, 0, 139411) },

	{ "jk04_session_frag_esphome_1.txt", 1,
	  .info = INFO_RESEARCH("JK-B2A16S", "3.0", "3.3.0", "BMS", 19, 37005000) },
	{ "jk04_session_frag_esphome_1.txt", 2,
	  .set = { .cell_count = V(16), .jk04_power_off_mv = V(3000),
		   .jk04_balance_start_mv = V(4250), .jk04_balance_trigger_mv = V(5),
		   .jk04_max_balance_current_ma = V(2000), .balancer_switch = ON } },
	{ "jk04_session_frag_esphome_1.txt", 3,
	  .cell = { .cell_count = V(16), .cell_at = { { .cell = 1, .mv = 3462, .tol = 1 } },
		    .voltage_mv = VT(54324, 2), .balancing = V(JK_BALANCE_DISCHARGE),
		    .balance_current_ma = VT(-2051, 1), .uptime_s = V(522904) } },
	{ "jk04_session_frag_esphome_1.txt", 4,
	  .cell = { .cell_count = V(16), .cell_at = { { .cell = 1, .mv = 3465, .tol = 1 } },
		    .voltage_mv = VT(54329, 2), .balancing = V(JK_BALANCE_DISCHARGE),
		    .balance_current_ma = VT(-2018, 1), .uptime_s = V(522904) } },
};

struct session_vector {
	const char *file;
	const char *chunks;		/* label of the notification lines fed */
	const char *types;		/* frame types out, in order */
	struct ev skipped_bytes, leftover, acks, at_tokens;
	const char *same_as[4];		/* single-frame files holding the frames out */
};

static const struct session_vector session_vectors[] = {
	{
		.file = "jk02_24s_session_frag_esphome_1.txt",
		.chunks = "rx", .types = "\x03\x01\x02\x02",
	},
	{
		.file = "jk02_24s_session_frag_esphome_2.txt",
		.chunks = "rx", .types = "\x03\x01\x02\x02",
	},
	{
		.file = "jk02_32s_session_frag_esphome_1.txt",
		.chunks = "rx", .types = "\x03\x01\x03\x02\x02",
	},
	{
		.file = "jk02_32s_session_frag_esphome_2.txt",
		.chunks = "rx", .types = "\x03\x01\x03\x02\x02",
	},
	{
		.file = "jk04_session_frag_esphome_1.txt",
		.chunks = "rx", .types = "\x03\x01\x02\x02",
	},
	{
		/* "2 complete frames, 0 junk fragments, 0 leftover bytes" */
		.file = "jk04_stream_frag_esphome_2.txt",
		.chunks = "rx", .types = "\x02\x02",
		.skipped_bytes = V(0), .leftover = V(0),
	},
	{
		/* "2 complete frames; leftover 0 bytes" */
		.file = "jk04_stream_frag_esphome_3.txt",
		.chunks = "rx", .types = "\x02\x02",
		.leftover = V(0),
	},
	{
		/* frames_out = [0x02, 0x03, 0x01], corrupt none, dropped_junk_bytes
		 * = 28 ("AT\r\n" + ack + "AT\r\n"), buffer empty at end; the frames
		 * are issue #377's, also kept as single-frame files */
		.file = "jk02_32s_stream_batmon_1.txt",
		.chunks = "packet.", .types = "\x02\x03\x01",
		.skipped_bytes = V(28), .leftover = V(0), .acks = V(1), .at_tokens = V(2),
		.same_as = { "jk02_32s_cellinfo_batmon_2.txt", "jk02_32s_devinfo_batmon_1.txt",
			     "jk02_32s_settings_batmon_2.txt" },
	},
};

#define N_SESSIONS (sizeof(session_vectors) / sizeof(session_vectors[0]))

#define SESSION_MAX_LINES 128

/* Decode one frame out of a session with the file's protocol, check the
 * detection and the research values of that frame. */
static void check_session_frame(struct vector_report *r, const char *file, unsigned nn,
				enum jk_protocol proto, const uint8_t *frame)
{
	const struct session_frame *e = NULL;
	char what[128];

	for (size_t i = 0; i < sizeof(session_frames) / sizeof(session_frames[0]); i++)
		if (strcmp(session_frames[i].file, file) == 0 && session_frames[i].frame == nn)
			e = &session_frames[i];
	snprintf(what, sizeof(what), "%s frame.%02u", file, nn);

	switch (jk_frame_type(frame)) {
	case JK_FRAME_CELL_INFO: {
		struct jk_sample s;
		enum jk_protocol p = jk_detect_from_frame(frame);

		if (p != proto)
			vector_report_add(r, "%s: jk_detect_from_frame: expected %s, got %s", what,
					  jk_protocol_name(proto), jk_protocol_name(p));
		ck_assert_int_eq(jk_decode_cell_info(frame, proto, &s), 0);
		ck_assert_uint_eq(s.counter, frame[5]);
		if (e)
			check_sample(r, what, &e->cell, &s);
		break;
	}
	case JK_FRAME_SETTINGS: {
		struct jk_settings s;
		enum jk_protocol p = jk_detect_from_frame(frame);

		if (!same_family(p, proto))
			vector_report_add(r, "%s: jk_detect_from_frame: expected %s, got %s", what,
					  jk_protocol_name(proto), jk_protocol_name(p));
		ck_assert_int_eq(jk_decode_settings(frame, proto, &s), 0);
		if (e)
			check_settings(r, what, &e->set, &s);
		break;
	}
	case JK_FRAME_DEVICE_INFO: {
		struct jk_device_info d;
		enum jk_protocol p;

		ck_assert_int_eq(jk_decode_device_info(frame, &d), 0);
		p = jk_detect_from_device_info(&d);
		if (p != proto)
			vector_report_add(r, "%s: jk_detect_from_device_info (hw %s, sw %s): "
					  "expected %s, got %s", what, d.hw_version, d.sw_version,
					  jk_protocol_name(proto), jk_protocol_name(p));
		if (e)
			check_info(r, what, &e->info, &d);
		break;
	}
	default:
		vector_report_add(r, "%s: unexpected frame type 0x%02x", what, frame[4]);
	}
}

static void run_session(const char *file)
{
	static struct vector_report r;
	static struct vector_tokens t;
	const struct session_vector *v = NULL;
	static struct vector_line chunks[SESSION_MAX_LINES];
	static struct vector_line frames[VECTOR_MAX_FRAMES];
	static struct vector_line tx[SESSION_MAX_LINES];
	enum jk_protocol proto = file_protocol(file);
	struct jk_stream s;
	size_t n_types;
	long nonframe;
	int n, n_frames;

	for (size_t i = 0; i < N_SESSIONS; i++)
		if (strcmp(session_vectors[i].file, file) == 0)
			v = &session_vectors[i];
	ck_assert_msg(v != NULL, "%s: not in session_vectors", file);
	n_types = strlen(v->types);
	vector_report_init(&r);

	/* host writes are another kind of line and are never fed */
	n = vector_lines_ex(file, "tx", tx, SESSION_MAX_LINES);
	for (int i = 0; i < n; i++)
		ck_assert_msg(tx[i].kind == CAPTURE_OTHER, "%s:%u: tx line taken as a notification",
			      file, tx[i].lineno);

	n = vector_lines_ex(file, v->chunks, chunks, SESSION_MAX_LINES);
	ck_assert_msg(n > 0, "%s: no '%s' lines", file, v->chunks);
	jk_stream_init(&s);
	vector_tokens_init(&t);
	for (int i = 0; i < n; i++) {
		ck_assert_msg(chunks[i].kind == CAPTURE_NOTIFY, "%s:%u: not a notification", file,
			      chunks[i].lineno);
		vector_feed(&s, chunks[i].cap.data, chunks[i].cap.len, &t);
	}
	vector_flush(&s, &t);

	/* the frames out are the file's frame.NN lines, byte for byte, in order */
	n_frames = vector_lines_ex(file, "frame.", frames, VECTOR_MAX_FRAMES);
	if (n_frames > 0) {
		ck_assert_msg(t.n_frames == (size_t)n_frames, "%s: %zu frames out, file lists %d",
			      file, t.n_frames, n_frames);
		for (int i = 0; i < n_frames; i++) {
			ck_assert_msg(frames[i].cap.len == JK_FRAME_LEN, "%s: %s is %zu bytes", file,
				      frames[i].cap.label, frames[i].cap.len);
			ck_assert_msg(memcmp(t.frames[i], frames[i].cap.data, JK_FRAME_LEN) == 0,
				      "%s: frame %d out differs from %s", file, i + 1,
				      frames[i].cap.label);
		}
	}
	ck_assert_msg(t.n_frames == n_types, "%s: %zu frames out, want %zu", file, t.n_frames,
		      n_types);
	for (size_t i = 0; i < n_types; i++)
		ck_assert_msg(t.frames[i][4] == (uint8_t)v->types[i],
			      "%s: frame %zu is type 0x%02x, want 0x%02x", file, i + 1,
			      t.frames[i][4], (uint8_t)v->types[i]);
	for (size_t i = 0; i < 4 && v->same_as[i]; i++) {
		uint8_t want[CAPTURE_MAX_BYTES];

		vector_hex(v->same_as[i], want, sizeof(want));
		ck_assert_msg(memcmp(t.frames[i], want, JK_FRAME_LEN) == 0,
			      "%s: frame %zu differs from %s", file, i + 1, v->same_as[i]);
	}

	/* nothing lost: every byte is in a frame, counted as skipped, or waiting */
	ck_assert_uint_eq(s.stats.frames, t.n_frames);
	ck_assert_uint_eq(s.stats.acks, t.n_acks);
	ck_assert_uint_eq(s.stats.bad_checksums, 0);
	ck_assert_msg(t.fed == t.n_frames * JK_FRAME_LEN + s.stats.skipped_bytes + s.len,
		      "%s: fed %zu != %zu frames x 300 + skipped %u + buffered %zu", file, t.fed,
		      t.n_frames, s.stats.skipped_bytes, s.len);
	nonframe = vector_nonframe_bytes(file);
	if (nonframe >= 0)
		ck_assert_msg(s.stats.skipped_bytes == (uint32_t)nonframe,
			      "%s: skipped %u bytes, the file counts %ld non-frame bytes", file,
			      s.stats.skipped_bytes, nonframe);
	expect_ev(&r, file, "stats.skipped_bytes", &v->skipped_bytes, s.stats.skipped_bytes, 0, 0);
	expect_ev(&r, file, "leftover (s.len)", &v->leftover, (int64_t)s.len, 0, 0);
	expect_ev(&r, file, "stats.acks", &v->acks, s.stats.acks, 0, 0);
	expect_ev(&r, file, "stats.at_tokens", &v->at_tokens, s.stats.at_tokens, 0, 0);

	for (size_t i = 0; i < t.n_frames; i++)
		check_session_frame(&r, file, (unsigned)i + 1, proto, t.frames[i]);
	vector_report_assert(&r);
}

START_TEST(test_session_frag_24s_1_reassembles_listed_frames)
{
	run_session("jk02_24s_session_frag_esphome_1.txt");
}
END_TEST

START_TEST(test_session_frag_24s_2_reassembles_listed_frames)
{
	run_session("jk02_24s_session_frag_esphome_2.txt");
}
END_TEST

START_TEST(test_session_frag_32s_1_reassembles_listed_frames_through_at_junk)
{
	run_session("jk02_32s_session_frag_esphome_1.txt");
}
END_TEST

START_TEST(test_session_frag_32s_2_reassembles_listed_frames_through_at_junk)
{
	run_session("jk02_32s_session_frag_esphome_2.txt");
}
END_TEST

START_TEST(test_session_frag_jk04_reassembles_listed_frames_from_20_byte_chunks)
{
	run_session("jk04_session_frag_esphome_1.txt");
}
END_TEST

START_TEST(test_stream_frag_jk04_finds_header_inside_a_notification)
{
	run_session("jk04_stream_frag_esphome_2.txt");
}
END_TEST

START_TEST(test_stream_frag_jk04_reassembles_irregular_chunks)
{
	run_session("jk04_stream_frag_esphome_3.txt");
}
END_TEST

START_TEST(test_stream_batmon_drops_28_junk_bytes_between_three_frames)
{
	run_session("jk02_32s_stream_batmon_1.txt");
}
END_TEST

/* The session files' research values refer to frames that exist. */
START_TEST(test_session_research_table_names_existing_frames)
{
	for (size_t i = 0; i < sizeof(session_frames) / sizeof(session_frames[0]); i++) {
		static struct capture_line l[VECTOR_MAX_FRAMES];
		char label[16];
		int n;
		bool found = false;

		n = vector_lines(session_frames[i].file, "frame.", l, VECTOR_MAX_FRAMES);
		snprintf(label, sizeof(label), "frame.%02u", session_frames[i].frame);
		for (int k = 0; k < n; k++)
			found |= strcmp(l[k].label, label) == 0;
		ck_assert_msg(found, "%s has no %s", session_frames[i].file, label);
	}
}
END_TEST

/* ------------------------------------------ host -> BMS command frames */

enum build {
	BUILD_REQUEST,		/* jk_cmd_request(req) */
	BUILD_SWITCH,		/* jk_cmd_switch(proto, sw, on) */
	BUILD_U32,		/* jk_cmd_write_u32(reg, u32) */
	BUILD_F32,		/* jk_cmd_write_f32(reg, f32) */
	BUILD_BYTES,		/* jk_cmd_write(reg, bytes, len) */
};

/* Section A of jk_requests_and_writes_1.txt, in file order: the call that
 * must build each line byte for byte.  `meaning` must occur in the line's
 * comment, so that the table and the file cannot drift apart unnoticed. */
struct cmd_vector {
	const char *meaning;
	enum build build;
	enum jk_request req;
	enum jk_protocol proto;
	enum jk_switch sw;
	bool on;
	uint8_t reg;
	uint32_t u32;
	float f32;
	uint8_t bytes[4];
	size_t len;
	bool app_filler;	/* carries app filler: only bytes 0..5+len compare */
};

static const struct cmd_vector cmd_vectors[] = {
	{ .meaning = "0x97 device info request", .build = BUILD_REQUEST,
	  .req = JK_REQ_DEVICE_INFO },
	{ .meaning = "0x96 cell-info/settings request", .build = BUILD_REQUEST,
	  .req = JK_REQ_CELL_INFO },
	{ .meaning = "JK02 charging switch ON", .build = BUILD_SWITCH,
	  .proto = JK_PROTO_JK02_24S, .sw = JK_SWITCH_CHARGING, .on = true },
	{ .meaning = "JK02 charging switch OFF", .build = BUILD_SWITCH,
	  .proto = JK_PROTO_JK02_24S, .sw = JK_SWITCH_CHARGING, .on = false },
	{ .meaning = "JK02 discharging switch ON", .build = BUILD_SWITCH,
	  .proto = JK_PROTO_JK02_32S, .sw = JK_SWITCH_DISCHARGING, .on = true },
	{ .meaning = "JK02 discharging switch OFF", .build = BUILD_SWITCH,
	  .proto = JK_PROTO_JK02_32S, .sw = JK_SWITCH_DISCHARGING, .on = false },
	{ .meaning = "JK02 cell OVP = 3.650 V", .build = BUILD_U32, .reg = 0x04, .u32 = 3650 },
	{ .meaning = "JK02_24S start-balance voltage 2.500 V", .build = BUILD_U32, .reg = 0x26,
	  .u32 = 2500, .app_filler = true },
	{ .meaning = "JK02_32S emergency-button-trigger switch ON", .build = BUILD_U32,
	  .reg = 0x31, .u32 = 1 },
	{ .meaning = "JK02_32S GPS-locked charging ON", .build = BUILD_U32, .reg = 0x35, .u32 = 1 },
	{ .meaning = "JK02_32S UART1 protocol index 1", .build = BUILD_BYTES, .reg = 0xA5,
	  .bytes = { 0x01, 0x00 }, .len = 2 },
	{ .meaning = "JK04 power-off voltage 3.100 V", .build = BUILD_F32, .reg = 0x20,
	  .f32 = 3.1f },
	{ .meaning = "JK04 balance trigger 0.008 V", .build = BUILD_F32, .reg = 0x64,
	  .f32 = 0.008f },
	{ .meaning = "JK04 balancer ON", .build = BUILD_SWITCH, .proto = JK_PROTO_JK04,
	  .sw = JK_SWITCH_BALANCER, .on = true },
	{ .meaning = "JK04 balancer OFF", .build = BUILD_SWITCH, .proto = JK_PROTO_JK04,
	  .sw = JK_SWITCH_BALANCER, .on = false },
};

#define CMD_FILE "jk_requests_and_writes_1.txt"
#define CMD_MAX_LINES 96

static void build_cmd(const struct cmd_vector *c, uint8_t out[JK_CMD_LEN])
{
	memset(out, 0xEE, JK_CMD_LEN);	/* the builder must write every byte */
	switch (c->build) {
	case BUILD_REQUEST:
		jk_cmd_request(out, c->req);
		break;
	case BUILD_SWITCH:
		ck_assert_int_eq(jk_cmd_switch(out, c->proto, c->sw, c->on), 0);
		break;
	case BUILD_U32:
		jk_cmd_write_u32(out, c->reg, c->u32);
		break;
	case BUILD_F32:
		jk_cmd_write_f32(out, c->reg, c->f32);
		break;
	case BUILD_BYTES:
		ck_assert_int_eq(jk_cmd_write(out, c->reg, c->bytes, c->len), 0);
		break;
	}
}

static char *hex_of(const uint8_t *p, size_t n, char *buf)
{
	for (size_t i = 0; i < n; i++)
		sprintf(buf + 2 * i, "%02X", p[i]);
	buf[2 * n] = '\0';
	return buf;
}

START_TEST(test_cmd_section_a_frames_built_byte_for_byte)
{
	static struct vector_line l[CMD_MAX_LINES];
	size_t n_a = 0;
	int n;

	n = vector_lines_ex(CMD_FILE, "cmd", l, CMD_MAX_LINES);
	for (int i = 0; i < n; i++) {
		const struct cmd_vector *c;
		uint8_t ours[JK_CMD_LEN];
		char a[2 * JK_CMD_LEN + 1], b[2 * JK_CMD_LEN + 1];
		size_t cmp;

		if (l[i].section != 'A')
			continue;
		ck_assert_msg(n_a < sizeof(cmd_vectors) / sizeof(cmd_vectors[0]),
			      "%s:%u: more section A lines than the table has", CMD_FILE,
			      l[i].lineno);
		c = &cmd_vectors[n_a++];
		ck_assert_msg(strstr(l[i].note, c->meaning) != NULL,
			      "%s:%u: table entry \"%s\" does not match \"%s\"", CMD_FILE,
			      l[i].lineno, c->meaning, l[i].note);
		ck_assert_uint_eq(l[i].cap.len, JK_CMD_LEN);
		ck_assert_msg(jk_cmd_valid(l[i].cap.data), "%s:%u: jk_cmd_valid rejects it",
			      CMD_FILE, l[i].lineno);

		build_cmd(c, ours);
		ck_assert_msg(jk_cmd_valid(ours), "%s: our frame %s is not valid", c->meaning,
			      hex_of(ours, JK_CMD_LEN, a));
		cmp = c->app_filler ? 6u + l[i].cap.data[5] : JK_CMD_LEN;
		ck_assert_msg(memcmp(ours, l[i].cap.data, cmp) == 0,
			      "%s:%u %s: built %s, file %s (first %zu bytes compared)", CMD_FILE,
			      l[i].lineno, c->meaning, hex_of(ours, JK_CMD_LEN, a),
			      hex_of(l[i].cap.data, JK_CMD_LEN, b), cmp);
	}
	ck_assert_msg(n_a == sizeof(cmd_vectors) / sizeof(cmd_vectors[0]),
		      "%zu section A lines, the table has %zu", n_a,
		      sizeof(cmd_vectors) / sizeof(cmd_vectors[0]));
}
END_TEST

/* App frames carry random filler after the value: they must still be valid
 * commands, and their header, register, length and value must be what our
 * builder makes for the same register and value. */
START_TEST(test_cmd_section_b_app_frames_valid_and_match_our_prefix)
{
	static struct vector_line l[CMD_MAX_LINES];
	unsigned n_b = 0;
	int n;

	n = vector_lines_ex(CMD_FILE, "cmd", l, CMD_MAX_LINES);
	for (int i = 0; i < n; i++) {
		const uint8_t *f = l[i].cap.data;
		uint8_t reg = f[4], len = f[5];
		uint8_t ours[JK_CMD_LEN];
		char a[2 * JK_CMD_LEN + 1], b[2 * JK_CMD_LEN + 1];

		if (l[i].section != 'B')
			continue;
		n_b++;
		ck_assert_uint_eq(l[i].cap.len, JK_CMD_LEN);
		ck_assert_msg(jk_cmd_valid(f), "%s:%u: jk_cmd_valid rejects an app frame", CMD_FILE,
			      l[i].lineno);
		ck_assert_msg(len <= 13, "%s:%u: len %u", CMD_FILE, l[i].lineno, len);
		memset(ours, 0xEE, sizeof(ours));
		if (len == 0) {
			jk_cmd_request(ours, (enum jk_request)reg);
		} else if (strstr(l[i].note, "float32") && len == 4) {
			float v;

			memcpy(&v, f + 6, sizeof(v));	/* LE on every target we build for */
			jk_cmd_write_f32(ours, reg, v);
		} else if (len == 4) {
			jk_cmd_write_u32(ours, reg, (uint32_t)f[6] | (uint32_t)f[7] << 8 |
						    (uint32_t)f[8] << 16 | (uint32_t)f[9] << 24);
		} else {
			ck_assert_int_eq(jk_cmd_write(ours, reg, f + 6, len), 0);
		}
		ck_assert_msg(memcmp(ours, f, 6u + len) == 0,
			      "%s:%u: built %s, app wrote %s (first %u bytes compared)", CMD_FILE,
			      l[i].lineno, hex_of(ours, JK_CMD_LEN, a), hex_of(f, JK_CMD_LEN, b),
			      6u + len);
		for (size_t k = 6u + len; k < JK_CMD_LEN - 1; k++)
			ck_assert_msg(ours[k] == 0, "%s:%u: our filler byte %zu is 0x%02x", CMD_FILE,
				      l[i].lineno, k, ours[k]);
		ck_assert(jk_cmd_valid(ours));
	}
	ck_assert_uint_eq(n_b, 45);
}
END_TEST

START_TEST(test_cmd_section_c_ack_and_at_junk_through_jk_stream)
{
	static struct vector_line l[4];
	struct jk_stream s;
	static struct vector_tokens t;
	int n;

	n = vector_lines_ex(CMD_FILE, "ack", l, 4);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(l[0].kind, CAPTURE_NOTIFY);
	ck_assert_msg(jk_cmd_valid(l[0].cap.data), "the ack has a command header and sum8");
	jk_stream_init(&s);
	vector_tokens_init(&t);
	vector_feed(&s, l[0].cap.data, l[0].cap.len, &t);
	vector_flush(&s, &t);
	ck_assert_str_eq(t.order, "A");
	ck_assert_uint_eq(s.stats.acks, 1);
	ck_assert_uint_eq(s.stats.skipped_bytes, JK_CMD_LEN);

	n = vector_lines_ex(CMD_FILE, "junk", l, 4);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(l[0].kind, CAPTURE_NOTIFY);
	jk_stream_init(&s);
	vector_tokens_init(&t);
	vector_feed(&s, l[0].cap.data, l[0].cap.len, &t);
	vector_flush(&s, &t);
	ck_assert_uint_eq(t.n_tokens, 0);
	ck_assert_uint_eq(s.stats.at_tokens, 1);
	ck_assert_uint_eq(s.stats.skipped_bytes, 4);
	ck_assert_uint_eq(s.len, 0);
}
END_TEST

/* A host write must never come out of jk_stream as anything: the command
 * lines of every section, fed as if the BMS had echoed them, yield no
 * token and are counted as skipped. */
START_TEST(test_cmd_lines_fed_to_jk_stream_yield_no_tokens)
{
	static struct vector_line l[CMD_MAX_LINES];
	struct jk_stream s;
	static struct vector_tokens t;
	int n;

	n = vector_lines_ex(CMD_FILE, "cmd", l, CMD_MAX_LINES);
	ck_assert_int_eq(n, 15 + 45);
	jk_stream_init(&s);
	vector_tokens_init(&t);
	for (int i = 0; i < n; i++) {
		ck_assert_msg(l[i].kind == CAPTURE_OTHER, "%s:%u: cmd line taken as notification",
			      CMD_FILE, l[i].lineno);
		vector_feed(&s, l[i].cap.data, l[i].cap.len, &t);
	}
	vector_flush(&s, &t);
	ck_assert_msg(t.n_tokens == 0, "tokens \"%s\" out of host writes", t.order);
	ck_assert_uint_eq(s.stats.skipped_bytes + s.len, (uint32_t)n * JK_CMD_LEN);
}
END_TEST

/* ---------------------------------------------------------- coverage */

static bool in_tables(const char *name)
{
	static const char *const others[] = {
		"jk02_32s_cellinfo_batmon_corrupt_1.txt",
		"jk02_ack_aiobmsble_1.txt",
		"jk02_32s_logbook_esphome_1.txt",
		CMD_FILE,
	};

	for (size_t i = 0; i < N_CELL_VECTORS; i++)
		if (strcmp(cell_vectors[i].file, name) == 0)
			return true;
	for (size_t i = 0; i < sizeof(settings_vectors) / sizeof(settings_vectors[0]); i++)
		if (strcmp(settings_vectors[i].file, name) == 0)
			return true;
	for (size_t i = 0; i < sizeof(info_vectors) / sizeof(info_vectors[0]); i++)
		if (strcmp(info_vectors[i].file, name) == 0)
			return true;
	for (size_t i = 0; i < N_SESSIONS; i++)
		if (strcmp(session_vectors[i].file, name) == 0)
			return true;
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		if (strcmp(others[i], name) == 0)
			return true;
	return false;
}

START_TEST(test_every_vector_file_is_covered_by_a_table)
{
	static char names[128][VECTOR_NAME_MAX];
	size_t n = vector_list(names, 128);

	ck_assert_msg(n >= 41, "only %zu vector files", n);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(in_tables(names[i]), "%s is not covered by test_vectors.c", names[i]);
}
END_TEST

TCase *tcase_vectors(void)
{
	TCase *tc = tcase_create("vectors");

	tcase_set_timeout(tc, 60);
	tests_add_vector_test(tc, test_cellinfo_24s_vectors_decode_to_source_values);
	tests_add_vector_test(tc, test_cellinfo_32s_vectors_decode_to_source_values);
	tests_add_vector_test(tc, test_cellinfo_jk04_vectors_decode_to_source_values);
	tests_add_vector_test(tc, test_cellinfo_vectors_mark_present_fields_per_layout);
	tests_add_vector_test(tc, test_settings_vectors_decode_to_source_values);
	tests_add_vector_test(tc, test_devinfo_vectors_decode_to_source_values);
	tests_add_vector_test(tc, test_devinfo_vectors_detect_their_protocol);
	tests_add_vector_test(tc, test_logbook_vector_decodes_four_entries);
	tests_add_vector_test(tc, test_single_frame_vectors_pass_jk_stream_in_any_chunking);
	tests_add_vector_test(tc, test_corrupt_frame_is_rejected_then_stream_resyncs);
	tests_add_vector_test(tc, test_ack_vectors_yield_ack_tokens_not_frames);
	tests_add_vector_test(tc, test_session_frag_24s_1_reassembles_listed_frames);
	tests_add_vector_test(tc, test_session_frag_24s_2_reassembles_listed_frames);
	tests_add_vector_test(tc, test_session_frag_32s_1_reassembles_listed_frames_through_at_junk);
	tests_add_vector_test(tc, test_session_frag_32s_2_reassembles_listed_frames_through_at_junk);
	tests_add_vector_test(tc, test_session_frag_jk04_reassembles_listed_frames_from_20_byte_chunks);
	tests_add_vector_test(tc, test_stream_frag_jk04_finds_header_inside_a_notification);
	tests_add_vector_test(tc, test_stream_frag_jk04_reassembles_irregular_chunks);
	tests_add_vector_test(tc, test_stream_batmon_drops_28_junk_bytes_between_three_frames);
	tests_add_vector_test(tc, test_session_research_table_names_existing_frames);
	tests_add_vector_test(tc, test_cmd_section_a_frames_built_byte_for_byte);
	tests_add_vector_test(tc, test_cmd_section_b_app_frames_valid_and_match_our_prefix);
	tests_add_vector_test(tc, test_cmd_section_c_ack_and_at_junk_through_jk_stream);
	tests_add_vector_test(tc, test_cmd_lines_fed_to_jk_stream_yield_no_tokens);
	tests_add_vector_test(tc, test_every_vector_file_is_covered_by_a_table);
	return tc;
}
