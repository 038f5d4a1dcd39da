/*
 * canmsg: the worked example of inverter-can.md §1.5 byte for byte in every
 * profile that carries each frame, the frame set of each profile, where
 * every alarm class lands (and where the copies the document warns about
 * put it instead), saturation, the request-bit/limit agreement over random
 * outputs, and the inverter frames parsed.
 */
#include <errno.h>
#include <string.h>

#include "canmsg.h"
#include "tests.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const enum canmsg_profile all_profiles[] = {
	CANMSG_PYLON, CANMSG_PYLON_V2, CANMSG_VICTRON, CANMSG_SMA, CANMSG_LUXPOWER,
};

/*
 * §1.5: 53.2 V, −10.5 A, 25.0 °C, SOC 67 %, SOH 99 %, CVL 55.2 V, CCL 100 A,
 * DCL 150 A, DVL 48.0 V, one module, no alarms, both directions allowed;
 * with the Victron extras' assumptions: cells 3.301/3.342 V, 24/26 °C
 * (mean 25.0 °C), 280 Ah installed.
 */
static struct battery example_battery(void)
{
	return (struct battery){
		.ready = true,
		.packs_configured = 1,
		.packs_fresh = 1,
		.packs_soc = 1,
		.voltage_mv = 53200,
		.current_ma = -10500,
		.remaining_mah = 187600,
		.capacity_mah = 280000,
		.soc_centi_pct = 6700,
		.soh_pct = 99,
		.cycles = 12,
		.cell_min_mv = 3301,
		.cell_max_mv = 3342,
		.cell_min_at = { .pack = 0, .index = 4 },
		.cell_max_at = { .pack = 0, .index = 11 },
		.cells_per_pack_max = 16,
		.have_temps = true,
		.temp_min_dc = 240,
		.temp_max_dc = 260,
		.temp_min_at = { .pack = 0, .index = 0 },
		.temp_max_at = { .pack = 0, .index = 1 },
		.have_mos_temp = true,
		.mos_temp_max_dc = 310,
		.charge_allowed = true,
		.discharge_allowed = true,
		.charge_limit_ma = 200000,
		.discharge_limit_ma = 200000,
	};
}

static struct charge_output example_output(void)
{
	return (struct charge_output){
		.transmit = true,
		.state = CHARGE_BULK,
		.cvl_mv = 55200,
		.dvl_mv = 48000,
		.ccl_ma = 100000,
		.dcl_ma = 150000,
		.charge_enable = true,
		.discharge_enable = true,
		.soc_pct = 67,
		.soh_pct = 99,
	};
}

struct built {
	size_t n;
	struct canmsg_frame f[CANMSG_MAX_FRAMES];
};

static struct built build(enum canmsg_profile p, const struct battery *bat,
			  const struct charge_output *out, const struct canmsg_identity *id)
{
	struct built b;

	memset(&b, 0xA5, sizeof(b));	/* builders must write every byte */
	b.n = canmsg_build(p, bat, out, id, b.f, NELEM(b.f));
	return b;
}

static const struct canmsg_frame *find(const struct built *b, uint32_t id)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->f[i].id == id)
			return &b->f[i];
	return NULL;
}

static const uint8_t *frame_data(const struct built *b, uint32_t id)
{
	const struct canmsg_frame *f = find(b, id);

	ck_assert_msg(f, "frame 0x%03X missing", (unsigned)id);
	ck_assert_uint_eq(f->len, 8);
	return f->data;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

#define P(x) (1u << (x))
#define PYLON_FAMILY (P(CANMSG_PYLON) | P(CANMSG_PYLON_V2) | P(CANMSG_LUXPOWER))
#define PAIRS_FAMILY (P(CANMSG_PYLON_V2) | P(CANMSG_VICTRON) | P(CANMSG_SMA))
#define EVERY_PROFILE (PYLON_FAMILY | P(CANMSG_VICTRON) | P(CANMSG_SMA))

struct golden {
	unsigned profiles;	/* P(profile) bits */
	uint32_t id;
	uint8_t data[8];
};

/* §1.5 table and Victron extras; the LuxPower rows are its §2.4 byte uses. */
static const struct golden example_frames[] = {
	{ .profiles = EVERY_PROFILE, .id = 0x351,
	  .data = { 0x28, 0x02, 0xE8, 0x03, 0xDC, 0x05, 0xE0, 0x01 } },
	{ .profiles = P(CANMSG_PYLON) | P(CANMSG_PYLON_V2), .id = 0x355,
	  .data = { 0x43, 0x00, 0x63, 0x00, 0x00, 0x00, 0x00, 0x00 } },
	{ .profiles = P(CANMSG_SMA) | P(CANMSG_VICTRON), .id = 0x355,
	  .data = { 0x43, 0x00, 0x63, 0x00, 0x2C, 0x1A, 0x00, 0x00 } },
	{ .profiles = P(CANMSG_LUXPOWER), .id = 0x355,	/* max, min cell mV */
	  .data = { 0x43, 0x00, 0x63, 0x00, 0x0E, 0x0D, 0xE5, 0x0C } },
	{ .profiles = EVERY_PROFILE & ~P(CANMSG_LUXPOWER), .id = 0x356,
	  .data = { 0xC8, 0x14, 0x97, 0xFF, 0xFA, 0x00, 0x00, 0x00 } },
	{ .profiles = P(CANMSG_LUXPOWER), .id = 0x356,	/* max, min T: 26.0, 24.0 °C */
	  .data = { 0xC8, 0x14, 0x97, 0xFF, 0x04, 0x01, 0xF0, 0x00 } },
	{ .profiles = P(CANMSG_PYLON) | P(CANMSG_PYLON_V2), .id = 0x359,
	  .data = { 0x00, 0x00, 0x00, 0x00, 0x01, 0x50, 0x4E, 0x00 } },
	{ .profiles = P(CANMSG_LUXPOWER), .id = 0x359,	/* 280 Ah instead of "PN" */
	  .data = { 0x00, 0x00, 0x00, 0x00, 0x01, 0x18, 0x01, 0x00 } },
	{ .profiles = P(CANMSG_PYLON) | P(CANMSG_PYLON_V2), .id = 0x35C,
	  .data = { 0xC0, 0x00 } },
	{ .profiles = P(CANMSG_LUXPOWER), .id = 0x35C,	/* 12 cycles */
	  .data = { 0xC0, 0x00, 0x0C, 0x00 } },
	{ .profiles = P(CANMSG_PYLON) | P(CANMSG_LUXPOWER), .id = 0x35E,
	  .data = { 'P', 'Y', 'L', 'O', 'N', ' ', ' ', ' ' } },
	{ .profiles = P(CANMSG_PYLON_V2), .id = 0x35E,
	  .data = { 'G', 'O', 'O', 'D', 'W', 'E', ' ', ' ' } },
	{ .profiles = P(CANMSG_SMA), .id = 0x35E,
	  .data = { 'S', 'M', 'A', ' ', ' ', ' ', ' ', ' ' } },
	{ .profiles = P(CANMSG_VICTRON), .id = 0x35E,
	  .data = { 'J', 'K', 'B', 'R', 'I', 'D', 'G', 'E' } },
	{ .profiles = PAIRS_FAMILY, .id = 0x35A,
	  .data = { 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA } },
	{ .profiles = P(CANMSG_VICTRON) | P(CANMSG_PYLON_V2), .id = 0x379,
	  .data = { 0x18, 0x01 } },
	{ .profiles = P(CANMSG_VICTRON) | P(CANMSG_PYLON_V2), .id = 0x373,
	  .data = { 0xE5, 0x0C, 0x0E, 0x0D, 0x29, 0x01, 0x2B, 0x01 } },
	{ .profiles = P(CANMSG_VICTRON) | P(CANMSG_PYLON_V2), .id = 0x372,
	  .data = { 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 } },
	{ .profiles = P(CANMSG_VICTRON) | P(CANMSG_PYLON_V2), .id = 0x374,
	  .data = { 'P', '1', 'C', '0', '5' } },
	{ .profiles = P(CANMSG_VICTRON) | P(CANMSG_PYLON_V2), .id = 0x375,
	  .data = { 'P', '1', 'C', '1', '2' } },
	{ .profiles = P(CANMSG_VICTRON) | P(CANMSG_PYLON_V2), .id = 0x376,
	  .data = { 'P', '1', 'T', '1' } },
	{ .profiles = P(CANMSG_VICTRON) | P(CANMSG_PYLON_V2), .id = 0x377,
	  .data = { 'P', '1', 'T', '2' } },
	{ .profiles = P(CANMSG_VICTRON), .id = 0x35F,	/* version 0.0, 280 Ah */
	  .data = { 0x00, 0x00, 0x00, 0x00, 0x18, 0x01, 0x00, 0x00 } },
	{ .profiles = P(CANMSG_SMA), .id = 0x35F,	/* type, maker ID invalid */
	  .data = { 0xFF, 0xFF, 0x00, 0x00, 0x18, 0x01, 0xFF, 0xFF } },
	{ .profiles = P(CANMSG_VICTRON), .id = 0x382,
	  .data = { 'J', 'K', '-', 'B', 'M', 'S' } },
};

START_TEST(test_worked_example_byte_for_byte_in_every_profile)
{
	const struct battery bat = example_battery();
	const struct charge_output out = example_output();
	unsigned checked = 0;

	for (size_t pi = 0; pi < NELEM(all_profiles); pi++) {
		enum canmsg_profile p = all_profiles[pi];
		const struct built b = build(p, &bat, &out, NULL);

		for (size_t i = 0; i < NELEM(example_frames); i++) {
			const struct golden *g = &example_frames[i];

			if (!(g->profiles & P(p)))
				continue;
			ck_assert_msg(memcmp(frame_data(&b, g->id), g->data, 8) == 0,
				      "%s 0x%03X differs from the worked example",
				      canmsg_profile_name(p), (unsigned)g->id);
			checked++;
		}
	}
	ck_assert_uint_eq(checked, 46);
}
END_TEST

struct frame_set {
	enum canmsg_profile profile;
	size_t n;
	uint32_t ids[CANMSG_MAX_FRAMES];
};

START_TEST(test_each_profile_sends_its_frame_set)
{
	static const struct frame_set sets[] = {
		{ .profile = CANMSG_PYLON, .n = 6,
		  .ids = { 0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E } },
		{ .profile = CANMSG_LUXPOWER, .n = 6,
		  .ids = { 0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E } },
		{ .profile = CANMSG_PYLON_V2, .n = 14,
		  .ids = { 0x351, 0x355, 0x356, 0x359, 0x35A, 0x35C, 0x35E,
			   0x372, 0x373, 0x374, 0x375, 0x376, 0x377, 0x379 } },
		{ .profile = CANMSG_VICTRON, .n = 14,
		  .ids = { 0x351, 0x355, 0x356, 0x35A, 0x35E, 0x35F,
			   0x372, 0x373, 0x374, 0x375, 0x376, 0x377, 0x379, 0x382 } },
		{ .profile = CANMSG_SMA, .n = 6,
		  .ids = { 0x351, 0x355, 0x356, 0x35A, 0x35E, 0x35F } },
	};
	const struct battery bat = example_battery();
	const struct charge_output out = example_output();

	for (size_t i = 0; i < NELEM(sets); i++) {
		const struct built b = build(sets[i].profile, &bat, &out, NULL);

		ck_assert_msg(b.n == sets[i].n, "%s: %zu frames",
			      canmsg_profile_name(sets[i].profile), b.n);
		for (size_t k = 0; k < b.n; k++) {
			ck_assert_uint_eq(b.f[k].id, sets[i].ids[k]);
			ck_assert_uint_eq(b.f[k].len, 8);
		}
	}
}
END_TEST

START_TEST(test_nothing_is_sent_without_transmit_or_room_for_the_whole_set)
{
	const struct battery bat = example_battery();
	struct charge_output out = example_output();
	struct canmsg_frame f[CANMSG_MAX_FRAMES];

	for (size_t pi = 0; pi < NELEM(all_profiles); pi++) {
		out.transmit = false;
		ck_assert_uint_eq(canmsg_build(all_profiles[pi], &bat, &out, NULL, f, NELEM(f)), 0);
		out.transmit = true;
		ck_assert_uint_eq(canmsg_build(all_profiles[pi], &bat, &out, NULL, f, 5), 0);
	}
	ck_assert_uint_eq(canmsg_build((enum canmsg_profile)99, &bat, &out, NULL, f, NELEM(f)), 0);
}
END_TEST

START_TEST(test_three_packs_count_in_0x359_byte_4)
{
	struct battery bat = example_battery();
	const struct charge_output out = example_output();

	bat.packs_configured = bat.packs_fresh = 3;
	for (size_t pi = 0; pi < NELEM(all_profiles); pi++) {
		const struct built b = build(all_profiles[pi], &bat, &out, NULL);

		if (find(&b, 0x359))
			ck_assert_uint_eq(frame_data(&b, 0x359)[4], 0x03);
	}
}
END_TEST

START_TEST(test_cell_ov_with_charging_blocked_clears_bit_7_and_ccl)
{
	struct battery bat = example_battery();
	struct charge_output out = example_output();

	bat.protections = BANK_ALARM_CELL_OV;
	out.charge_enable = false;
	out.ccl_ma = 100000;	/* disagrees: the permission wins */
	for (size_t pi = 0; pi < NELEM(all_profiles); pi++) {
		const struct built b = build(all_profiles[pi], &bat, &out, NULL);
		const uint8_t *d351 = frame_data(&b, 0x351);

		ck_assert_uint_eq(d351[2], 0x00);
		ck_assert_uint_eq(d351[3], 0x00);
		if (find(&b, 0x359))
			ck_assert_uint_eq(frame_data(&b, 0x359)[0], 0x02);
		if (find(&b, 0x35C)) {
			ck_assert_uint_eq(frame_data(&b, 0x35C)[0], 0x40);
			ck_assert_uint_eq(frame_data(&b, 0x35C)[1], 0x00);
		}
	}
}
END_TEST

struct alarm_case {
	uint32_t alarm;
	uint8_t pylon[2];	/* 0x359 bytes 0–1 (protections) = bytes 2–3 (warnings) */
	int sma_item;		/* 0x35A item, −1 = none */
};

/* Pylon V1.2 [S10] and SMA §2.2 positions. */
static const struct alarm_case alarm_cases[] = {
	{ .alarm = BANK_ALARM_CELL_OV, .pylon = { 0x02, 0x00 }, .sma_item = 1 },
	{ .alarm = BANK_ALARM_CELL_UV, .pylon = { 0x04, 0x00 }, .sma_item = 2 },
	{ .alarm = BANK_ALARM_OVER_TEMP, .pylon = { 0x08, 0x00 }, .sma_item = 3 },
	{ .alarm = BANK_ALARM_UNDER_TEMP, .pylon = { 0x10, 0x00 }, .sma_item = 4 },
	{ .alarm = BANK_ALARM_DISCHARGE_OC, .pylon = { 0x80, 0x00 }, .sma_item = 7 },
	{ .alarm = BANK_ALARM_CHARGE_OC, .pylon = { 0x00, 0x01 }, .sma_item = 8 },
	{ .alarm = BANK_ALARM_SYSTEM, .pylon = { 0x00, 0x08 }, .sma_item = 11 },
	{ .alarm = BANK_ALARM_IMBALANCE, .pylon = { 0x00, 0x00 }, .sma_item = 12 },
};

static void expect_pairs(const uint8_t d[4], int item)
{
	for (int k = 0; k < 16; k++) {
		unsigned pair = d[k / 4] >> (2 * (k % 4)) & 3;
		bool raised = k == item || (k == 0 && item >= 0);

		ck_assert_msg(pair == (raised ? 1u : 2u), "item %d: pair %u", k, pair);
	}
}

START_TEST(test_every_alarm_class_lands_on_its_specified_bit)
{
	for (size_t i = 0; i < NELEM(alarm_cases); i++) {
		const struct alarm_case *k = &alarm_cases[i];
		const struct charge_output out = example_output();
		struct battery prot = example_battery(), warn = example_battery();
		struct built b;
		const uint8_t *d;

		prot.protections = k->alarm;
		warn.warnings = k->alarm;

		b = build(CANMSG_PYLON, &prot, &out, NULL);
		d = frame_data(&b, 0x359);
		ck_assert_msg(d[0] == k->pylon[0] && d[1] == k->pylon[1] && d[2] == 0 && d[3] == 0,
			      "protection %#x: %02x %02x %02x %02x", k->alarm, d[0], d[1], d[2], d[3]);
		b = build(CANMSG_PYLON, &warn, &out, NULL);
		d = frame_data(&b, 0x359);
		ck_assert_msg(d[0] == 0 && d[1] == 0 && d[2] == k->pylon[0] && d[3] == k->pylon[1],
			      "warning %#x: %02x %02x %02x %02x", k->alarm, d[0], d[1], d[2], d[3]);

		b = build(CANMSG_VICTRON, &prot, &out, NULL);
		d = frame_data(&b, 0x35A);
		expect_pairs(d, k->sma_item);
		expect_pairs(d + 4, -1);
		b = build(CANMSG_SMA, &warn, &out, NULL);
		d = frame_data(&b, 0x35A);
		expect_pairs(d, -1);
		expect_pairs(d + 4, k->sma_item);
	}
}
END_TEST

/* The copies inverter-can.md warns about: YamBMS's byte 1 bit 7 for charge
 * over-current, Battery-Emulator's byte 1 bit 7 for a system fault and
 * 0x0C (bits 2+3) for over-temperature. */
START_TEST(test_alarms_avoid_the_bits_the_copies_use)
{
	struct battery bat = example_battery();
	const struct charge_output out = example_output();
	struct built b;

	bat.protections = BANK_ALARM_CHARGE_OC;
	bat.warnings = BANK_ALARM_CHARGE_OC;
	b = build(CANMSG_PYLON, &bat, &out, NULL);
	ck_assert_uint_eq(frame_data(&b, 0x359)[1] & 0x80, 0);
	ck_assert_uint_eq(frame_data(&b, 0x359)[1] & 0x01, 0x01);
	ck_assert_uint_eq(frame_data(&b, 0x359)[3] & 0x80, 0);
	ck_assert_uint_eq(frame_data(&b, 0x359)[3] & 0x01, 0x01);

	bat.protections = bat.warnings = BANK_ALARM_SYSTEM;
	b = build(CANMSG_PYLON, &bat, &out, NULL);
	ck_assert_uint_eq(frame_data(&b, 0x359)[1], 0x08);

	bat.protections = bat.warnings = BANK_ALARM_OVER_TEMP;
	b = build(CANMSG_PYLON, &bat, &out, NULL);
	ck_assert_uint_eq(frame_data(&b, 0x359)[0] & 0x04, 0);
	ck_assert_uint_eq(frame_data(&b, 0x359)[0], 0x08);
}
END_TEST

enum knob {
	KNOB_CVL, KNOB_CCL, KNOB_DCL, KNOB_DVL, KNOB_VOLTAGE, KNOB_CURRENT,
	KNOB_TEMPS, KNOB_SOC, KNOB_SOH, KNOB_PACKS, KNOB_CAPACITY, KNOB_CYCLES, KNOB_CELLS,
};

struct sat_case {
	const char *what;
	enum canmsg_profile profile;
	enum knob knob;
	int64_t value;
	uint32_t id;
	unsigned offset;
	unsigned width;		/* 1 or 2 bytes */
	uint16_t want;
};

static void turn(struct battery *b, struct charge_output *o, enum knob k, int64_t v)
{
	switch (k) {
	case KNOB_CVL: o->cvl_mv = (uint32_t)v; break;
	case KNOB_CCL: o->ccl_ma = (uint32_t)v; break;
	case KNOB_DCL: o->dcl_ma = (uint32_t)v; break;
	case KNOB_DVL: o->dvl_mv = (uint32_t)v; break;
	case KNOB_VOLTAGE: b->voltage_mv = (uint32_t)v; break;
	case KNOB_CURRENT: b->current_ma = (int32_t)v; break;
	case KNOB_TEMPS: b->temp_min_dc = b->temp_max_dc = (int16_t)v; break;
	case KNOB_SOC: o->soc_pct = (uint8_t)v; b->soc_centi_pct = (uint16_t)(v * 100); break;
	case KNOB_SOH: o->soh_pct = (uint8_t)v; break;
	case KNOB_PACKS: b->packs_fresh = b->packs_configured = (unsigned)v; break;
	case KNOB_CAPACITY: b->capacity_mah = (uint64_t)v; break;
	case KNOB_CYCLES: b->cycles = (uint32_t)v; break;
	case KNOB_CELLS: b->cell_min_mv = b->cell_max_mv = (uint16_t)v; break;
	}
}

START_TEST(test_out_of_range_values_saturate_instead_of_wrapping)
{
	static const struct sat_case cases[] = {
		{ "CVL", CANMSG_PYLON, KNOB_CVL, UINT32_MAX, 0x351, 0, 2, 0xFFFE },
		{ "CCL", CANMSG_PYLON, KNOB_CCL, UINT32_MAX, 0x351, 2, 2, 0x7FFF },
		{ "DCL", CANMSG_SMA, KNOB_DCL, UINT32_MAX, 0x351, 4, 2, 0x7FFF },
		{ "DVL", CANMSG_VICTRON, KNOB_DVL, UINT32_MAX, 0x351, 6, 2, 0xFFFE },
		{ "voltage", CANMSG_PYLON, KNOB_VOLTAGE, UINT32_MAX, 0x356, 0, 2, 0x7FFF },
		{ "charge current", CANMSG_PYLON, KNOB_CURRENT, INT32_MAX, 0x356, 2, 2, 0x7FFF },
		{ "discharge current", CANMSG_SMA, KNOB_CURRENT, INT32_MIN, 0x356, 2, 2, 0x8001 },
		{ "hot", CANMSG_PYLON, KNOB_TEMPS, INT16_MAX, 0x356, 4, 2, 0x7FFF },
		{ "cold", CANMSG_SMA, KNOB_TEMPS, INT16_MIN, 0x356, 4, 2, 0x8001 },
		{ "cold in K", CANMSG_VICTRON, KNOB_TEMPS, INT16_MIN, 0x373, 4, 2, 0 },
		{ "cold max for lux", CANMSG_LUXPOWER, KNOB_TEMPS, INT16_MIN, 0x356, 4, 2, 0x8001 },
		{ "cell mV", CANMSG_VICTRON, KNOB_CELLS, UINT16_MAX, 0x373, 2, 2, 0xFFFE },
		{ "SOC", CANMSG_PYLON, KNOB_SOC, 255, 0x355, 0, 2, 100 },
		{ "HiRes SOC", CANMSG_VICTRON, KNOB_SOC, 255, 0x355, 4, 2, 10000 },
		{ "SOH", CANMSG_SMA, KNOB_SOH, 200, 0x355, 2, 2, 100 },
		{ "modules", CANMSG_PYLON, KNOB_PACKS, 1000, 0x359, 4, 1, 255 },
		{ "modules online", CANMSG_PYLON_V2, KNOB_PACKS, 100000, 0x372, 0, 2, 0xFFFE },
		{ "capacity", CANMSG_VICTRON, KNOB_CAPACITY, INT64_MAX, 0x379, 0, 2, 0xFFFE },
		{ "lux capacity", CANMSG_LUXPOWER, KNOB_CAPACITY, INT64_MAX, 0x359, 5, 2, 0xFFFE },
		{ "lux cycles", CANMSG_LUXPOWER, KNOB_CYCLES, UINT32_MAX, 0x35C, 2, 2, 0xFFFE },
	};

	for (size_t i = 0; i < NELEM(cases); i++) {
		const struct sat_case *k = &cases[i];
		struct battery bat = example_battery();
		struct charge_output out = example_output();
		struct built b;
		const uint8_t *d;
		unsigned got;

		turn(&bat, &out, k->knob, k->value);
		b = build(k->profile, &bat, &out, NULL);
		d = frame_data(&b, k->id) + k->offset;
		got = k->width == 2 ? le16(d) : d[0];
		ck_assert_msg(got == k->want, "%s: got %#x, want %#x", k->what, got, k->want);
	}
}
END_TEST

START_TEST(test_limits_round_to_the_safe_side)
{
	const struct battery bat = example_battery();
	struct charge_output out = example_output();
	struct built b;
	const uint8_t *d;

	out.cvl_mv = 55299;	/* down: 55.2 V */
	out.ccl_ma = 100099;	/* down: 100.0 A */
	out.dcl_ma = 150099;
	out.dvl_mv = 48001;	/* up: 48.1 V */
	b = build(CANMSG_PYLON, &bat, &out, NULL);
	d = frame_data(&b, 0x351);
	ck_assert_uint_eq(le16(d), 552);
	ck_assert_uint_eq(le16(d + 2), 1000);
	ck_assert_uint_eq(le16(d + 4), 1500);
	ck_assert_uint_eq(le16(d + 6), 481);
}
END_TEST

START_TEST(test_a_limit_below_a_tenth_of_an_amp_is_no_permission)
{
	const struct battery bat = example_battery();
	struct charge_output out = example_output();
	struct built b;

	out.ccl_ma = 99;
	out.dcl_ma = 50;
	b = build(CANMSG_PYLON, &bat, &out, NULL);
	ck_assert_uint_eq(le16(frame_data(&b, 0x351) + 2), 0);
	ck_assert_uint_eq(le16(frame_data(&b, 0x351) + 4), 0);
	ck_assert_uint_eq(frame_data(&b, 0x35C)[0], 0x00);
}
END_TEST

START_TEST(test_charge_bit_follows_the_charge_output_not_the_bank)
{
	struct battery bat = example_battery();
	struct charge_output out = example_output();
	struct built b;

	bat.charge_allowed = bat.discharge_allowed = false;
	b = build(CANMSG_PYLON, &bat, &out, NULL);
	ck_assert_uint_eq(frame_data(&b, 0x35C)[0], 0xC0);

	bat = example_battery();
	out.discharge_enable = false;
	b = build(CANMSG_PYLON_V2, &bat, &out, NULL);
	ck_assert_uint_eq(frame_data(&b, 0x35C)[0], 0x80);
	ck_assert_uint_eq(le16(frame_data(&b, 0x351) + 4), 0);
}
END_TEST

START_TEST(test_force_and_full_charge_requests_only_with_charge_allowed)
{
	const struct battery bat = example_battery();
	struct charge_output out = example_output();
	struct built b;

	out.force_charge = out.full_charge = true;
	b = build(CANMSG_PYLON, &bat, &out, NULL);
	ck_assert_uint_eq(frame_data(&b, 0x35C)[0], 0xC0 | 0x10 | 0x08);

	out.charge_enable = false;
	b = build(CANMSG_PYLON, &bat, &out, NULL);
	ck_assert_uint_eq(frame_data(&b, 0x35C)[0], 0x40);
}
END_TEST

/* xorshift64: deterministic, so a failure replays. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A limit anywhere: often 0, often under 0.1 A, sometimes beyond s16. */
static uint32_t random_limit(uint64_t *s)
{
	switch (rnd(s) % 4) {
	case 0: return 0;
	case 1: return (uint32_t)(rnd(s) % 200);
	case 2: return (uint32_t)(rnd(s) % 400000);
	default: return (uint32_t)rnd(s);
	}
}

START_TEST(test_request_bits_agree_with_limits_for_any_output)
{
	uint64_t seed = 0x9E3779B97F4A7C15u;

	for (unsigned iter = 0; iter < 20000; iter++) {
		const struct battery bat = example_battery();
		struct charge_output out = example_output();

		out.ccl_ma = random_limit(&seed);
		out.dcl_ma = random_limit(&seed);
		out.charge_enable = rnd(&seed) & 1;
		out.discharge_enable = rnd(&seed) & 1;
		out.force_charge = rnd(&seed) & 1;
		out.full_charge = rnd(&seed) & 1;
		for (size_t pi = 0; pi < NELEM(all_profiles); pi++) {
			const struct built b = build(all_profiles[pi], &bat, &out, NULL);
			const uint8_t *d351 = frame_data(&b, 0x351);
			bool ccl = le16(d351 + 2) != 0, dcl = le16(d351 + 4) != 0;

			if (!out.charge_enable)
				ck_assert(!ccl);
			if (!out.discharge_enable)
				ck_assert(!dcl);
			ck_assert(le16(d351 + 2) <= 0x7FFF && le16(d351 + 4) <= 0x7FFF);
			if (!find(&b, 0x35C))
				continue;
			const uint8_t flags = frame_data(&b, 0x35C)[0];

			ck_assert_msg(!!(flags & 0x80) == ccl, "%s: bit 7 %d, CCL %u",
				      canmsg_profile_name(all_profiles[pi]), !!(flags & 0x80),
				      le16(d351 + 2));
			ck_assert(!!(flags & 0x40) == dcl);
			if (!(flags & 0x80))
				ck_assert_uint_eq(flags & 0x18, 0);
		}
	}
}
END_TEST

START_TEST(test_hires_soc_never_says_more_than_the_soc_shown)
{
	struct battery bat = example_battery();
	struct charge_output out = example_output();
	struct built b;

	bat.soc_centi_pct = 6743;
	b = build(CANMSG_SMA, &bat, &out, NULL);
	ck_assert_uint_eq(le16(frame_data(&b, 0x355) + 4), 6743);

	bat.soc_centi_pct = 9950;	/* charge caps the shown SOC at 98 % */
	out.soc_pct = 98;
	b = build(CANMSG_VICTRON, &bat, &out, NULL);
	ck_assert_uint_eq(le16(frame_data(&b, 0x355)), 98);
	ck_assert_uint_eq(le16(frame_data(&b, 0x355) + 4), 9800);
}
END_TEST

START_TEST(test_temperature_falls_back_to_mos_then_to_nothing)
{
	struct battery bat = example_battery();
	const struct charge_output out = example_output();
	struct built b;

	bat.have_temps = false;
	b = build(CANMSG_PYLON, &bat, &out, NULL);
	ck_assert_uint_eq(le16(frame_data(&b, 0x356) + 4), 310);
	b = build(CANMSG_VICTRON, &bat, &out, NULL);
	ck_assert_uint_eq(frame_data(&b, 0x376)[0], 0);	/* no sensor to name */
	ck_assert_uint_eq(frame_data(&b, 0x377)[0], 0);
	ck_assert_uint_eq(le16(frame_data(&b, 0x373) + 4), 304);	/* 31.0 °C */

	bat.have_mos_temp = false;
	b = build(CANMSG_PYLON, &bat, &out, NULL);
	ck_assert_uint_eq(le16(frame_data(&b, 0x356) + 4), 0);
	b = build(CANMSG_SMA, &bat, &out, NULL);
	ck_assert_uint_eq(le16(frame_data(&b, 0x356) + 4), 0x8000);	/* SMA "invalid" */
}
END_TEST

START_TEST(test_kelvin_rounds_to_nearest)
{
	static const struct { int16_t dc; uint16_t k; } cases[] = {
		{ 240, 297 }, { 243, 297 }, { 244, 298 }, { 0, 273 }, { -400, 233 }, { -2732, 0 },
	};

	for (size_t i = 0; i < NELEM(cases); i++) {
		struct battery bat = example_battery();
		const struct charge_output out = example_output();
		struct built b;

		bat.temp_min_dc = bat.temp_max_dc = cases[i].dc;
		b = build(CANMSG_VICTRON, &bat, &out, NULL);
		ck_assert_msg(le16(frame_data(&b, 0x373) + 4) == cases[i].k, "%d dC", cases[i].dc);
	}
}
END_TEST

START_TEST(test_modules_and_extreme_ids_name_packs_from_one)
{
	struct battery bat = example_battery();
	struct charge_output out = example_output();
	static const uint8_t modules[8] = { 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00 };
	struct built b;

	bat.packs_configured = 3;
	bat.packs_fresh = 2;
	bat.cell_min_at = (struct bank_where){ .pack = 1, .index = 0 };
	bat.cell_max_at = (struct bank_where){ .pack = 15, .index = 31 };
	bat.temp_max_at = (struct bank_where){ .pack = 2, .index = 3 };
	out.charge_enable = false;
	b = build(CANMSG_VICTRON, &bat, &out, NULL);
	ck_assert(memcmp(frame_data(&b, 0x372), modules, 8) == 0);
	ck_assert(memcmp(frame_data(&b, 0x374), "P2C01\0\0\0", 8) == 0);
	ck_assert(memcmp(frame_data(&b, 0x375), "P16C32\0\0", 8) == 0);
	ck_assert(memcmp(frame_data(&b, 0x377), "P3T4\0\0\0\0", 8) == 0);
}
END_TEST

START_TEST(test_identity_overrides_the_defaults)
{
	const struct battery bat = example_battery();
	const struct charge_output out = example_output();
	const struct canmsg_identity id = {
		.manufacturer = "BYD",
		.installed_capacity_mah = 105000,
		.product = "PREMIUM",
		.version_major = 1,
		.version_minor = 24,
	};
	static const uint8_t info[8] = { 0x00, 0x00, 0x01, 0x18, 0x69, 0x00, 0x00, 0x00 };
	const struct built b = build(CANMSG_VICTRON, &bat, &out, &id);

	ck_assert(memcmp(frame_data(&b, 0x35E), "BYD     ", 8) == 0);
	ck_assert(memcmp(frame_data(&b, 0x382), "PREMIUM\0", 8) == 0);
	ck_assert(memcmp(frame_data(&b, 0x35F), info, 8) == 0);
	ck_assert_uint_eq(le16(frame_data(&b, 0x379)), 105);
}
END_TEST

struct rx_case {
	enum canmsg_profile profile;
	uint32_t id;
	uint8_t len;
	uint8_t byte0;
	enum canmsg_rx want;
};

START_TEST(test_inverter_frames_are_parsed_per_profile)
{
	static const struct rx_case cases[] = {
		{ .profile = CANMSG_PYLON, .id = 0x305, .len = 8, .want = CANMSG_RX_KEEPALIVE },
		{ .profile = CANMSG_SMA, .id = 0x305, .len = 8, .byte0 = 0x12, .want = CANMSG_RX_KEEPALIVE },
		{ .profile = CANMSG_LUXPOWER, .id = 0x305, .len = 8, .want = CANMSG_RX_KEEPALIVE },
		{ .profile = CANMSG_VICTRON, .id = 0x306, .len = 8, .want = CANMSG_RX_KEEPALIVE },
		{ .profile = CANMSG_VICTRON, .id = 0x307, .len = 8, .want = CANMSG_RX_KEEPALIVE },
		{ .profile = CANMSG_PYLON, .id = 0x307, .len = 8, .want = CANMSG_RX_IGNORED },
		{ .profile = CANMSG_LUXPOWER, .id = 0x300, .len = 8, .byte0 = 0x01, .want = CANMSG_RX_SHUTDOWN },
		{ .profile = CANMSG_LUXPOWER, .id = 0x300, .len = 1, .byte0 = 0x03, .want = CANMSG_RX_SHUTDOWN },
		{ .profile = CANMSG_LUXPOWER, .id = 0x300, .len = 8, .byte0 = 0x02, .want = CANMSG_RX_IGNORED },
		{ .profile = CANMSG_LUXPOWER, .id = 0x300, .len = 0, .byte0 = 0x01, .want = CANMSG_RX_IGNORED },
		{ .profile = CANMSG_PYLON, .id = 0x300, .len = 8, .byte0 = 0x01, .want = CANMSG_RX_IGNORED },
		{ .profile = CANMSG_PYLON, .id = 0x351, .len = 8, .want = CANMSG_RX_IGNORED },
		{ .profile = CANMSG_VICTRON, .id = 0x000, .len = 0, .want = CANMSG_RX_IGNORED },
	};

	for (size_t i = 0; i < NELEM(cases); i++) {
		const struct canmsg_frame f = {
			.id = cases[i].id, .len = cases[i].len, .data = { cases[i].byte0 },
		};

		ck_assert_msg(canmsg_parse(cases[i].profile, &f) == cases[i].want,
			      "case %zu: 0x%03X", i, (unsigned)f.id);
	}
}
END_TEST

START_TEST(test_profile_names_round_trip)
{
	static const char *const names[] = { "pylon", "pylon-v2", "victron", "sma", "luxpower" };
	enum canmsg_profile p;

	for (size_t i = 0; i < NELEM(all_profiles); i++) {
		ck_assert_str_eq(canmsg_profile_name(all_profiles[i]), names[i]);
		ck_assert_int_eq(canmsg_profile_parse(names[i], &p), 0);
		ck_assert_int_eq(p, all_profiles[i]);
	}
	ck_assert_int_eq(canmsg_profile_parse("pylon2", &p), -EINVAL);
	ck_assert_int_eq(canmsg_profile_parse("", &p), -EINVAL);
	ck_assert_int_eq(canmsg_profile_parse(NULL, &p), -EINVAL);
	ck_assert_str_eq(canmsg_profile_name((enum canmsg_profile)42), "unknown");
}
END_TEST

TCase *tcase_canmsg(void)
{
	TCase *tc = tcase_create("canmsg");

	tcase_add_test(tc, test_worked_example_byte_for_byte_in_every_profile);
	tcase_add_test(tc, test_each_profile_sends_its_frame_set);
	tcase_add_test(tc, test_nothing_is_sent_without_transmit_or_room_for_the_whole_set);
	tcase_add_test(tc, test_three_packs_count_in_0x359_byte_4);
	tcase_add_test(tc, test_cell_ov_with_charging_blocked_clears_bit_7_and_ccl);
	tcase_add_test(tc, test_every_alarm_class_lands_on_its_specified_bit);
	tcase_add_test(tc, test_alarms_avoid_the_bits_the_copies_use);
	tcase_add_test(tc, test_out_of_range_values_saturate_instead_of_wrapping);
	tcase_add_test(tc, test_limits_round_to_the_safe_side);
	tcase_add_test(tc, test_a_limit_below_a_tenth_of_an_amp_is_no_permission);
	tcase_add_test(tc, test_charge_bit_follows_the_charge_output_not_the_bank);
	tcase_add_test(tc, test_force_and_full_charge_requests_only_with_charge_allowed);
	tcase_add_test(tc, test_request_bits_agree_with_limits_for_any_output);
	tcase_add_test(tc, test_hires_soc_never_says_more_than_the_soc_shown);
	tcase_add_test(tc, test_temperature_falls_back_to_mos_then_to_nothing);
	tcase_add_test(tc, test_kelvin_rounds_to_nearest);
	tcase_add_test(tc, test_modules_and_extreme_ids_name_packs_from_one);
	tcase_add_test(tc, test_identity_overrides_the_defaults);
	tcase_add_test(tc, test_inverter_frames_are_parsed_per_profile);
	tcase_add_test(tc, test_profile_names_round_trip);
	return tc;
}
