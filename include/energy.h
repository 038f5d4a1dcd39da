/*
 * energy — energy charged into and discharged from a pack or the virtual
 * battery, in the Home Assistant Energy dashboard's sense ("battery in" /
 * "battery out"): V × I integrated over time, split by the sign of the
 * current before integrating (positive = charging, design.md).
 *
 * Invariants:
 *   - a counter never decreases; restoring a stored value only raises it;
 *   - an interval longer than ENERGY_MAX_STEP_MS counts as that long, so a
 *     gap in the samples, a suspend or a stalled loop cannot invent energy;
 *   - a paused meter (stale pack, no fresh sample) integrates nothing, and
 *     the first update after a pause only starts a new interval;
 *   - arithmetic is exact: whole mWh plus a carried remainder in nJ
 *     (mV × mA × ms = nJ), so many small steps add up to what one long step
 *     would, and uint64 mWh lasts longer than any battery.
 *
 * The book keeps the meters by a stable key (the BMS address, "replay:NAME"
 * for a replay pack, "battery"), so reordering or renaming packs in the
 * configuration does not move energy between them.  Its JSON document is
 * what the daemon stores (store.h) in the state directory:
 *
 *	{"version": 1, "meters": {"battery": {"charged_mwh": 1234, "discharged_mwh": 987}, ...}}
 *
 * Pure core: time is a parameter, no I/O.
 */
#ifndef ENERGY_H
#define ENERGY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define ENERGY_MAX_STEP_MS 5000		/* longest interval one update counts */
#define ENERGY_NJ_PER_MWH 3600000000ULL	/* 1 mWh = 3.6 J */
#define ENERGY_BOOK_MAX 40
#define ENERGY_KEY_MAX 48
#define ENERGY_BATTERY_KEY "battery"

struct energy_meter {
	uint64_t charged_mwh;
	uint64_t discharged_mwh;
	uint64_t charged_nj;		/* remainder below one mWh */
	uint64_t discharged_nj;
	uint64_t last_ms;
	bool running;			/* last_ms starts the current interval */
};

/*
 * Integrate voltage × current from the previous update (or nothing, after a
 * pause) up to now_ms.  Returns the energy added in nJ, positive when
 * charging, negative when discharging, so a sum of meters can be kept
 * (energy_add_nj).  A sample that is not physically plausible (above 1 kV
 * or 10 kA) integrates nothing.
 */
int64_t energy_update(struct energy_meter *m, uint32_t voltage_mv, int32_t current_ma, uint64_t now_ms);
void energy_pause(struct energy_meter *m);

/* Add energy measured elsewhere (nJ, positive = charged). */
void energy_add_nj(struct energy_meter *m, int64_t nj);

/* Raise the counters to at least these values (never lowers them). */
void energy_raise(struct energy_meter *m, uint64_t charged_mwh, uint64_t discharged_mwh);

/* Counter in kWh, for display. */
double energy_kwh(uint64_t mwh);

struct energy_book {
	unsigned n;
	struct energy_entry {
		char key[ENERGY_KEY_MAX];
		struct energy_meter meter;
	} entries[ENERGY_BOOK_MAX];
};

void energy_book_init(struct energy_book *b);

/* The meter for key, created at zero when absent; NULL when the book is
 * full or the key does not fit. */
struct energy_meter *energy_book_meter(struct energy_book *b, const char *key);

/* The whole book as the stored document (new reference, or NULL). */
json_t *energy_book_json(const struct energy_book *b);

/* Raise each meter of the book to the stored document's values, creating
 * the meters it names.  0, or -EINVAL for a document this version did not
 * write (nothing is changed then). */
int energy_book_restore(struct energy_book *b, const json_t *doc);

#endif
