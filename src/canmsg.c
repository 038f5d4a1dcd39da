/*
 * canmsg — the virtual battery as one inverter profile's CAN frame set, and
 * the inverter's own frames parsed (inverter-can.md §1–2).
 *
 * One builder per frame ID (the table `builders`); a profile is a list of
 * IDs plus flags for the bytes it uses differently (the table `profiles`).
 * Every number goes through put_u16()/put_s16(), which compute in 64 bits
 * and saturate into the field: a huge value is sent as the largest one the
 * field holds, never wrapped.  Saturation stops one short of the SMA
 * "invalid" markers (u16 0xFFFF, s16 0x8000) so that a clamped value is
 * never read as "no value"; only put_invalid_*() write those.
 *
 * Invariants on the wire, whatever the input:
 *   - 0x35C bit 7 (charge enable) set ⇔ 0x351 CCL ≠ 0, and bit 6 ⇔ DCL ≠ 0
 *     (design.md rule 5).  Both come only from the charge output: CCL =
 *     charge_enable ? ccl_ma / 100 : 0, and the bit is CCL ≠ 0, so a limit
 *     below 0.1 A is sent as "charging not allowed", not as "allowed, 0 A";
 *   - force-charge and full-charge requests (bits 4, 3) only go out with
 *     the charge bit: never "charge now" with CCL = 0;
 *   - limits round toward the safe side (CVL, CCL, DCL down, DVL up);
 *     measurements round to nearest.
 *
 * Wire table (little-endian; [S..] as in inverter-can.md):
 *   0x351  u16 CVL 0.1 V | s16 CCL 0.1 A | s16 DCL 0.1 A (positive) | u16 DVL 0.1 V   §1.2 [S10][S11]
 *   0x355  u16 SOC % | u16 SOH % | HiRes SOC u16 0.01 % (SMA, Victron [S11][S15])
 *          luxpower: bytes 4–7 = u16 max, min cell mV [S14]
 *   0x356  s16 V 0.01 V | s16 I 0.1 A (+ = charging) | s16 T 0.1 °C = (min + max) / 2
 *          of the cell sensors, as YamBMS [S1]; luxpower: bytes 4–7 = max, min T [S14]
 *   0x359  bytes 0–1 protections, 2–3 the same bits as warnings (Pylon V1.2 [S10]):
 *          b0.1 cell OV, b0.2 cell UV, b0.3 over-T, b0.4 under-T, b0.7 discharge OC,
 *          b1.0 charge OC, b1.3 system error.  Byte 4 module count (fresh packs),
 *          5–6 "PN" (luxpower: u16 capacity Ah of the fresh packs [S14]), 7 = 0
 *   0x35A  16 two-bit items, alarms in 0–3, warnings in 4–7, order of §2.2 [S11];
 *          raised = 01, not raised = 10 ("leaves", so an alarm is always cleared
 *          explicitly: the all-clear frame is AA…AA as BYD sends [S23])
 *   0x35C  byte 0: b7 charge enable, b6 discharge enable, b4 force charge
 *          (request force charge II, YamBMS [S1]), b3 full charge [S10];
 *          luxpower: bytes 2–3 = u16 cycles [S14]
 *   0x35E  manufacturer, 8 ASCII, space padded [S10]
 *   0x35F  Victron: u16 product ID 0 | version major, minor (MSB first [S15][S23]) |
 *          u16 capacity Ah | u16 hardware ID 0.  SMA: battery type | BMS version |
 *          capacity Ah | manufacturer ID — type and manufacturer ID have no
 *          registered value for us, so they carry SMA's "invalid" 0xFFFF [S11]
 *   0x372  u16 ×4: modules online, blocking charge, blocking discharge, offline [S1][S23]
 *   0x373  u16 ×4: min, max cell mV; min, max cell temperature in K [S15][S23]
 *   0x374–0x377  ASCII IDs of min-V cell, max-V cell, min-T and max-T sensor [S1][S23]:
 *          "P<pack>C<cell>" with a two-digit cell and "P<pack>T<sensor>",
 *          all 1-based (pack 1 cell 5 = "P1C05"), NUL padded
 *   0x379  u16 installed capacity Ah [S12][S1]
 *   0x382  product identification, ASCII, NUL padded [S1][S23]
 *
 * All frames have DLC 8, unused bytes 0 (Sol-Ark takes only 8-byte frames
 * [S12]).  Bytes past a frame's defined fields are padding, not "unused
 * fields", so SMA gets zeros there too (the §1.5 example); SMA's invalid
 * markers go only into defined fields we have no value for.
 *
 * Temperature without cell sensors (have_temps false): the MOSFET sensor if
 * the BMS has one — a real reading inside the pack, if a warm one — else no
 * reading at all: SMA gets "invalid" in 0x356, the other profiles have no
 * such marker and get 0 °C, the side on which an inverter that acts on
 * temperature charges less, never more.
 *
 * Pure core: no I/O, no allocation, no kernel headers.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "canmsg.h"

#define U16_MAX_VALID 0xFFFE		/* 0xFFFF is SMA's "invalid" */
#define S16_MAX_VALID 0x7FFF
#define S16_MIN_VALID (-0x7FFF)		/* 0x8000 is SMA's "invalid" */

enum {
	PF_HIRES_SOC = 1u << 0,		/* 0x355 bytes 4–5: SOC in 0.01 % */
	PF_SMA_INVALID = 1u << 1,	/* fields without a value carry 0xFFFF / 0x8000 */
	PF_LUX = 1u << 2,		/* LuxPower byte uses (§2.4) */
};

/* Everything one frame builder may read, and the wire limits agreed once. */
struct ctx {
	unsigned flags;
	const struct battery *bat;
	const struct charge_output *out;
	const struct canmsg_identity *id;
	const char *manufacturer;	/* 0x35E, already defaulted */
	int64_t ccl_da, dcl_da;		/* 0.1 A, after the permission rule */
	bool have_temp;
	int16_t temp_lo_dc, temp_hi_dc;
};

/* ---- field writers --------------------------------------------------- */

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = v & 0xFF;
	p[1] = v >> 8;
}

static void put_u16(uint8_t *p, int64_t v)
{
	put_le16(p, (uint16_t)clamp64(v, 0, U16_MAX_VALID));
}

static void put_s16(uint8_t *p, int64_t v)
{
	put_le16(p, (uint16_t)(int16_t)clamp64(v, S16_MIN_VALID, S16_MAX_VALID));
}

static void put_invalid_u16(uint8_t *p)
{
	put_le16(p, 0xFFFF);
}

static void put_invalid_s16(uint8_t *p)
{
	put_le16(p, 0x8000);
}

/* Copy up to 8 characters of s, padding with `pad`. */
static void put_ascii(uint8_t d[8], const char *s, char pad)
{
	size_t n = strnlen(s, 8);

	memset(d, pad, 8);
	memcpy(d, s, n);
}

/* Division rounding half away from zero (measurements). */
static int64_t div_round(int64_t a, int64_t b)
{
	return a >= 0 ? (a + b / 2) / b : -((-a + b / 2) / b);
}

static int64_t div_ceil(uint64_t a, uint64_t b)
{
	return (int64_t)((a + b - 1) / b);
}

/* ---- frame builders -------------------------------------------------- */

static void build_limits(const struct ctx *c, uint32_t id, uint8_t d[8])
{
	put_u16(d, c->out->cvl_mv / 100);
	put_s16(d + 2, c->ccl_da);
	put_s16(d + 4, c->dcl_da);
	put_u16(d + 6, div_ceil(c->out->dvl_mv, 100));
}

/* The SOC shown, at 0.01 %: the bank's fine value when it agrees with the
 * whole percent charge chose to show (which may be capped at 98 %, or
 * forced to 0), else that percent itself.  SMA uses this instead of the
 * 1 % field, so it must never say more than the shown SOC does. */
static int64_t hires_soc(const struct ctx *c, int64_t soc_pct)
{
	int64_t v = c->bat->soc_centi_pct / 100 == soc_pct ? clamp64(c->bat->soc_centi_pct, 0, 10000) :
							       soc_pct * 100;

	/* design.md rule 6: when the shown SOC is held at 98 %, so is this. */
	return soc_pct <= 98 && v > 9800 ? 9800 : v;
}

static void build_soc(const struct ctx *c, uint32_t id, uint8_t d[8])
{
	int64_t soc = clamp64(c->out->soc_pct, 0, 100);

	put_u16(d, soc);
	put_u16(d + 2, clamp64(c->out->soh_pct, 0, 100));
	if (c->flags & PF_HIRES_SOC)
		put_u16(d + 4, hires_soc(c, soc));
	if (c->flags & PF_LUX) {
		put_u16(d + 4, c->bat->cell_max_mv);
		put_u16(d + 6, c->bat->cell_min_mv);
	}
}

static void build_measured(const struct ctx *c, uint32_t id, uint8_t d[8])
{
	put_s16(d, div_round(c->bat->voltage_mv, 10));
	put_s16(d + 2, div_round(c->bat->current_ma, 100));
	if (c->flags & PF_LUX) {
		put_s16(d + 4, c->temp_hi_dc);
		put_s16(d + 6, c->temp_lo_dc);
	} else if (!c->have_temp && (c->flags & PF_SMA_INVALID)) {
		put_invalid_s16(d + 4);
	} else {
		put_s16(d + 4, div_round((int64_t)c->temp_lo_dc + c->temp_hi_dc, 2));
	}
}

/* Pylon V1.2 0x359 bits [S10]; warnings use the same bit two bytes later.
 * Cell imbalance has no bit in V1.2 (only the "Hybrid" document gives it
 * one), so it is left out rather than set on a bit the spec leaves blank. */
static const struct {
	uint32_t alarm;
	uint8_t byte, bit;
} pylon_bits[] = {
	{ BANK_ALARM_CELL_OV, 0, 1 },
	{ BANK_ALARM_CELL_UV, 0, 2 },
	{ BANK_ALARM_OVER_TEMP, 0, 3 },
	{ BANK_ALARM_UNDER_TEMP, 0, 4 },
	{ BANK_ALARM_DISCHARGE_OC, 0, 7 },
	{ BANK_ALARM_CHARGE_OC, 1, 0 },
	{ BANK_ALARM_SYSTEM, 1, 3 },
};

static void put_pylon_alarms(uint8_t d[2], uint32_t alarms)
{
	for (size_t i = 0; i < sizeof(pylon_bits) / sizeof(pylon_bits[0]); i++)
		if (alarms & pylon_bits[i].alarm)
			d[pylon_bits[i].byte] |= 1u << pylon_bits[i].bit;
}

static void build_alarms(const struct ctx *c, uint32_t id, uint8_t d[8])
{
	put_pylon_alarms(d, c->bat->protections);
	put_pylon_alarms(d + 2, c->bat->warnings);
	d[4] = (uint8_t)clamp64(c->bat->packs_fresh, 0, 255);
	if (c->flags & PF_LUX) {
		put_u16(d + 5, c->bat->capacity_mah / 1000);
	} else {
		d[5] = 'P';
		d[6] = 'N';
	}
}

/* 0x35A items in SMA's order (§2.2): 0 general, 1 high V, 2 low V, 3 high T,
 * 4 low T, 5 high T charge, 6 low T charge, 7 high (discharge) current,
 * 8 high charge current, 9 contactor, 10 short circuit, 11 BMS internal,
 * 12 cell imbalance, 13–14 reserved, 15 generator.  Our classes merge
 * charge/discharge temperatures and short circuits into the general items;
 * "general" is raised with any other item. */
#define SMA_ITEM_GENERAL 0
#define SMA_ITEMS 16

static const struct {
	uint32_t alarm;
	uint8_t item;
} sma_items[] = {
	{ BANK_ALARM_CELL_OV, 1 },
	{ BANK_ALARM_CELL_UV, 2 },
	{ BANK_ALARM_OVER_TEMP, 3 },
	{ BANK_ALARM_UNDER_TEMP, 4 },
	{ BANK_ALARM_DISCHARGE_OC, 7 },
	{ BANK_ALARM_CHARGE_OC, 8 },
	{ BANK_ALARM_SYSTEM, 11 },
	{ BANK_ALARM_IMBALANCE, 12 },
};

static void put_sma_pairs(uint8_t d[4], uint32_t alarms)
{
	uint16_t raised = 0;

	for (size_t i = 0; i < sizeof(sma_items) / sizeof(sma_items[0]); i++)
		if (alarms & sma_items[i].alarm)
			raised |= 1u << sma_items[i].item;
	if (raised)
		raised |= 1u << SMA_ITEM_GENERAL;
	for (unsigned item = 0; item < SMA_ITEMS; item++) {
		unsigned pair = raised & (1u << item) ? 0x1 : 0x2;	/* arrives : leaves */

		d[item / 4] |= pair << (2 * (item % 4));
	}
}

static void build_pairs(const struct ctx *c, uint32_t id, uint8_t d[8])
{
	put_sma_pairs(d, c->bat->protections);
	put_sma_pairs(d + 4, c->bat->warnings);
}

static void build_requests(const struct ctx *c, uint32_t id, uint8_t d[8])
{
	bool charge = c->ccl_da > 0;

	d[0] = (uint8_t)(charge << 7 | (c->dcl_da > 0) << 6 |
			 (charge && c->out->force_charge) << 4 |
			 (charge && c->out->full_charge) << 3);
	if (c->flags & PF_LUX)
		put_u16(d + 2, c->bat->cycles);
}

static void build_name(const struct ctx *c, uint32_t id, uint8_t d[8])
{
	put_ascii(d, c->manufacturer, ' ');
}

static int64_t installed_ah(const struct ctx *c)
{
	uint64_t mah = c->id->installed_capacity_mah ? c->id->installed_capacity_mah
						     : c->bat->capacity_mah;

	return (int64_t)(mah / 1000);
}

static void build_info(const struct ctx *c, uint32_t id, uint8_t d[8])
{
	if (c->flags & PF_SMA_INVALID) {
		put_invalid_u16(d);		/* battery type */
		put_invalid_u16(d + 6);		/* manufacturer ID */
	}
	d[2] = c->id->version_major;
	d[3] = c->id->version_minor;
	put_u16(d + 4, installed_ah(c));
}

static void build_modules(const struct ctx *c, uint32_t id, uint8_t d[8])
{
	int64_t fresh = c->bat->packs_fresh;
	int64_t offline = (int64_t)c->bat->packs_configured - fresh;

	/* The packs act as one battery: when it may not charge, every online
	 * module is reported as blocking (the bank keeps no per-pack count). */
	put_u16(d, fresh);
	put_u16(d + 2, c->ccl_da > 0 ? 0 : fresh);
	put_u16(d + 4, c->dcl_da > 0 ? 0 : fresh);
	put_u16(d + 6, offline > 0 ? offline : 0);
}

/* 0.1 °C -> K, to nearest: (dc + 2731.5) / 10, kept in integers. */
static int64_t kelvin(int16_t dc)
{
	return div_round(2 * (int64_t)dc + 5463, 20);
}

static void build_extremes(const struct ctx *c, uint32_t id, uint8_t d[8])
{
	put_u16(d, c->bat->cell_min_mv);
	put_u16(d + 2, c->bat->cell_max_mv);
	put_u16(d + 4, kelvin(c->temp_lo_dc));
	put_u16(d + 6, kelvin(c->temp_hi_dc));
}

static void build_where(const struct ctx *c, uint32_t id, uint8_t d[8])
{
	const struct battery *b = c->bat;
	const struct bank_where *w;
	char s[24];

	switch (id) {
	case 0x374: w = &b->cell_min_at; break;
	case 0x375: w = &b->cell_max_at; break;
	case 0x376: w = &b->temp_min_at; break;
	default: w = &b->temp_max_at; break;
	}
	if (id >= 0x376) {
		if (!b->have_temps)
			return;		/* no sensor to name */
		snprintf(s, sizeof(s), "P%uT%u", w->pack + 1u, w->index + 1u);
	} else {
		snprintf(s, sizeof(s), "P%uC%02u", w->pack + 1u, w->index + 1u);
	}
	put_ascii(d, s, '\0');
}

static void build_capacity(const struct ctx *c, uint32_t id, uint8_t d[8])
{
	put_u16(d, installed_ah(c));
}

static void build_product(const struct ctx *c, uint32_t id, uint8_t d[8])
{
	put_ascii(d, c->id->product[0] ? c->id->product : "JK-BMS", '\0');
}

typedef void frame_builder(const struct ctx *c, uint32_t id, uint8_t d[8]);

static const struct {
	uint32_t id;
	frame_builder *build;
} builders[] = {
	{ 0x351, build_limits },
	{ 0x355, build_soc },
	{ 0x356, build_measured },
	{ 0x359, build_alarms },
	{ 0x35A, build_pairs },
	{ 0x35C, build_requests },
	{ 0x35E, build_name },
	{ 0x35F, build_info },
	{ 0x372, build_modules },
	{ 0x373, build_extremes },
	{ 0x374, build_where },
	{ 0x375, build_where },
	{ 0x376, build_where },
	{ 0x377, build_where },
	{ 0x379, build_capacity },
	{ 0x382, build_product },
};

/* ---- profiles -------------------------------------------------------- */

static const uint16_t pylon_ids[] = { 0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E };
static const uint16_t pylon_v2_ids[] = {
	0x351, 0x355, 0x356, 0x359, 0x35A, 0x35C, 0x35E,
	0x372, 0x373, 0x374, 0x375, 0x376, 0x377, 0x379,
};
static const uint16_t victron_ids[] = {
	0x351, 0x355, 0x356, 0x35A, 0x35E, 0x35F,
	0x372, 0x373, 0x374, 0x375, 0x376, 0x377, 0x379, 0x382,
};
static const uint16_t sma_ids[] = { 0x351, 0x355, 0x356, 0x35A, 0x35E, 0x35F };

#define IDS(a) .ids = (a), .nids = sizeof(a) / sizeof((a)[0])

/*
 * Default 0x35E names: "PYLON" where the inverter expects a Pylontech
 * (Deye recognises it and shows SOH); "GOODWE" for pylon-v2, the name
 * GoodWe's LX U5.4-L profile expects [S4][S5] (other pylon-v2 inverters
 * can be given "PYLON" through the identity); "SMA" as YamBMS sends to
 * SMA; our own name for Victron, whose GX applies Pylontech-specific
 * handling to a battery that calls itself PYLON.
 */
static const struct profile {
	const char *name;
	const char *manufacturer;
	unsigned flags;
	const uint16_t *ids;
	size_t nids;
} profiles[] = {
	[CANMSG_PYLON] = { "pylon", "PYLON", 0, IDS(pylon_ids) },
	[CANMSG_PYLON_V2] = { "pylon-v2", "GOODWE", 0, IDS(pylon_v2_ids) },
	[CANMSG_VICTRON] = { "victron", "JKBRIDGE", PF_HIRES_SOC, IDS(victron_ids) },
	[CANMSG_SMA] = { "sma", "SMA", PF_HIRES_SOC | PF_SMA_INVALID, IDS(sma_ids) },
	[CANMSG_LUXPOWER] = { "luxpower", "PYLON", PF_LUX, IDS(pylon_ids) },
};

#define NPROFILES (sizeof(profiles) / sizeof(profiles[0]))

static const struct profile *profile_get(enum canmsg_profile p)
{
	return (unsigned)p < NPROFILES ? &profiles[p] : NULL;
}

static frame_builder *builder_for(uint32_t id)
{
	for (size_t i = 0; i < sizeof(builders) / sizeof(builders[0]); i++)
		if (builders[i].id == id)
			return builders[i].build;
	return NULL;
}

/* Cell sensors, else the MOSFET sensor, else none (see the top comment). */
static void ctx_temps(struct ctx *c)
{
	const struct battery *b = c->bat;

	c->have_temp = b->have_temps || b->have_mos_temp;
	if (b->have_temps) {
		c->temp_lo_dc = b->temp_min_dc;
		c->temp_hi_dc = b->temp_max_dc;
	} else if (b->have_mos_temp) {
		c->temp_lo_dc = c->temp_hi_dc = b->mos_temp_max_dc;
	} else {
		c->temp_lo_dc = c->temp_hi_dc = 0;
	}
}

static void ctx_init(struct ctx *c, const struct profile *p, const struct battery *bat,
		     const struct charge_output *out, const struct canmsg_identity *id)
{
	static const struct canmsg_identity no_identity;

	c->flags = p->flags;
	c->bat = bat;
	c->out = out;
	c->id = id ? id : &no_identity;
	c->manufacturer = c->id->manufacturer[0] ? c->id->manufacturer : p->manufacturer;
	c->ccl_da = out->charge_enable ? clamp64(out->ccl_ma / 100, 0, S16_MAX_VALID) : 0;
	c->dcl_da = out->discharge_enable ? clamp64(out->dcl_ma / 100, 0, S16_MAX_VALID) : 0;
	ctx_temps(c);
}

size_t canmsg_build(enum canmsg_profile profile, const struct battery *bat,
		    const struct charge_output *out, const struct canmsg_identity *id,
		    struct canmsg_frame *frames, size_t max)
{
	const struct profile *p = profile_get(profile);
	struct ctx c;

	if (!p || !bat || !out || !out->transmit || !frames || max < p->nids)
		return 0;	/* never a partial set */
	ctx_init(&c, p, bat, out, id);
	for (size_t i = 0; i < p->nids; i++) {
		struct canmsg_frame *f = &frames[i];

		memset(f, 0, sizeof(*f));
		f->id = p->ids[i];
		f->len = 8;
		builder_for(f->id)(&c, f->id, f->data);
	}
	return p->nids;
}

/* ---- inverter -> battery --------------------------------------------- */

enum canmsg_rx canmsg_parse(enum canmsg_profile profile, const struct canmsg_frame *f)
{
	switch (f->id) {
	case 0x305:
		return CANMSG_RX_KEEPALIVE;
	case 0x306:
	case 0x307:	/* Victron GX; 0x307 carries "VIC" [S23][S34] */
		return profile == CANMSG_VICTRON ? CANMSG_RX_KEEPALIVE : CANMSG_RX_IGNORED;
	case 0x300:	/* LuxPower: byte 0 bit 0 = shut the battery down [S14] */
		if (profile == CANMSG_LUXPOWER && f->len >= 1 && (f->data[0] & 0x01))
			return CANMSG_RX_SHUTDOWN;
		return CANMSG_RX_IGNORED;
	default:
		return CANMSG_RX_IGNORED;
	}
}

const char *canmsg_profile_name(enum canmsg_profile p)
{
	const struct profile *prof = profile_get(p);

	return prof ? prof->name : "unknown";
}

int canmsg_profile_parse(const char *s, enum canmsg_profile *out)
{
	for (size_t i = 0; s && i < NPROFILES; i++) {
		if (strcmp(s, profiles[i].name) == 0) {
			*out = (enum canmsg_profile)i;
			return 0;
		}
	}
	return -EINVAL;
}
