/*
 * bank — the packs and the one virtual battery made of them.
 *
 * Each pack's last valid sample (and settings, when the BMS sent them) is
 * kept with the time it arrived.  bank_aggregate() merges the fresh packs
 * (design.md, inverter-can.md §4):
 *
 *   - SOC = Σ remaining / Σ capacity over fresh packs that report them (a
 *     JK04 unit has neither: it adds its cells to the extremes and alarms,
 *     never to SOC or capacity);
 *   - voltage = mean, current = sum, cycles = mean;
 *   - min/max cell voltage and temperature, with the pack and cell they
 *     come from;
 *   - per-pack charge/discharge limits summed over the packs that allow it;
 *   - JK error bits mapped to alarm classes: a class every fresh pack
 *     reports is a protection, one only some report is a warning.
 *
 * Safety rules enforced here: nothing is `ready` before every configured
 * pack has produced a valid sample or the start-up timeout declared it
 * offline (rule 1); a pack older than stale_after leaves every sum (rule 2);
 * fewer than min_packs fresh packs clear both permissions and raise
 * BANK_ALARM_SYSTEM as a protection.
 *
 * Pure core: time is a parameter (monotonic ms), no I/O.
 */
#ifndef BANK_H
#define BANK_H

#include <stdbool.h>
#include <stdint.h>

#include "jk_decode.h"

#define BANK_MAX_PACKS 16

/* Alarm classes, one bit each; the inverter profiles map them to their bits. */
enum bank_alarm {
	BANK_ALARM_CELL_OV = 1u << 0,		/* cell or pack over-voltage */
	BANK_ALARM_CELL_UV = 1u << 1,		/* cell or pack under-voltage */
	BANK_ALARM_OVER_TEMP = 1u << 2,		/* cells, MOSFET, charge or discharge */
	BANK_ALARM_UNDER_TEMP = 1u << 3,
	BANK_ALARM_CHARGE_OC = 1u << 4,		/* charge over-current or short */
	BANK_ALARM_DISCHARGE_OC = 1u << 5,	/* discharge over-current or short */
	BANK_ALARM_SYSTEM = 1u << 6,		/* BMS internal, or too few packs */
	BANK_ALARM_IMBALANCE = 1u << 7,		/* wire resistance / cell count */
};

/* JK error bitmask (jkbms-ble.md §4.3) -> enum bank_alarm bits. */
uint32_t bank_alarms_from_jk(uint32_t jk_errors);

struct bank_config {
	unsigned min_packs;
	uint32_t stale_after_ms;
	uint32_t startup_timeout_ms;
	/* A pack's limit is 90 % of its BMS's over-current setting; one that
	 * sent no settings frame counts with the fallback.  A non-zero cap
	 * (the pack's own max_*_current in the configuration) bounds either. */
	uint32_t fallback_charge_ma;
	uint32_t fallback_discharge_ma;
	uint32_t cap_charge_ma[BANK_MAX_PACKS];
	uint32_t cap_discharge_ma[BANK_MAX_PACKS];
};

struct bank_pack {
	bool have_sample;
	uint64_t sample_ms;
	struct jk_sample sample;
	bool have_settings;
	struct jk_settings settings;
	bool offline;		/* declared offline at the start-up timeout */
};

struct bank {
	struct bank_config cfg;
	unsigned npacks;
	uint64_t start_ms;
	bool started;		/* every pack reported or was declared offline */
	struct bank_pack packs[BANK_MAX_PACKS];
};

/* Where an extreme value comes from: pack index and 0-based cell/sensor. */
struct bank_where {
	uint8_t pack;
	uint8_t index;
};

struct battery {
	bool ready;			/* safe to tell the inverter anything (rule 1) */
	unsigned packs_configured;
	unsigned packs_fresh;		/* fresh samples this cycle */
	unsigned packs_soc;		/* of those, packs that report SOC and capacity */

	uint32_t voltage_mv;		/* mean of fresh packs */
	int32_t current_ma;		/* sum; positive = charging */
	uint64_t remaining_mah;
	uint64_t capacity_mah;
	uint16_t soc_centi_pct;		/* Σ remaining / Σ capacity, 0.01 % */
	uint8_t soh_pct;		/* capacity-weighted */
	uint32_t cycles;		/* mean */

	uint16_t cell_min_mv, cell_max_mv;
	struct bank_where cell_min_at, cell_max_at;
	unsigned cells_per_pack_max;
	unsigned cells_per_pack_min;	/* fewest cells a fresh pack reports, 0 = none */
	bool have_temps;
	int16_t temp_min_dc, temp_max_dc;
	struct bank_where temp_min_at, temp_max_at;
	bool have_mos_temp;
	int16_t mos_temp_max_dc;

	bool charge_allowed;		/* some fresh pack allows charging */
	bool discharge_allowed;
	uint32_t charge_limit_ma;	/* Σ limits of fresh packs that allow charging */
	uint32_t discharge_limit_ma;
	uint32_t cell_ovp_mv;		/* lowest OVP among packs' settings, 0 = unknown */
	uint32_t cell_uvp_mv;		/* highest UVP among packs' settings, 0 = unknown */

	uint32_t protections;		/* enum bank_alarm bits */
	uint32_t warnings;
};

void bank_init(struct bank *b, const struct bank_config *cfg, unsigned npacks, uint64_t now_ms);
void bank_set_sample(struct bank *b, unsigned pack, const struct jk_sample *s, uint64_t now_ms);
void bank_set_settings(struct bank *b, unsigned pack, const struct jk_settings *s);

bool bank_pack_fresh(const struct bank *b, unsigned pack, uint64_t now_ms);

/* Merge the fresh packs; advances the start-up state (hence not const). */
void bank_aggregate(struct bank *b, uint64_t now_ms, struct battery *out);

#endif
