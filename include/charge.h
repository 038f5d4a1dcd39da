/*
 * charge — what the virtual battery asks of the inverter: CVL, CCL, DCL,
 * DVL, the request bits and the SOC shown (inverter-can.md §3.1, §3.5).
 *
 * States: WAIT (nothing to charge yet / charging not allowed) -> BULK ->
 * CUTOFF (the compensated end-of-charge test held for cutoff_hold) -> EOC
 * (end of charge: CCL 0, CVL at rebulk) -> FLOAT (if enabled; CVL stepped
 * down toward float, the Deye grid-dump workaround) -> back to BULK on
 * rebulk by cell voltage, SOC, days since the last end of charge or a
 * force-charge request.  Every transition goes through one function and is
 * reported in out->changed.  With float enabled, CUTOFF -> EOC -> FLOAT
 * happens in one step (out->end_of_charge tells the EOC happened), so the
 * inverter never sees CVL dip to rebulk for one update between the two.
 *
 * Limits: CCL = min(configured max, Σ pack limits allowing charge,
 * temperature table × capacity, taper on the highest cell); DCL likewise
 * with the lowest cell.  Reductions apply at once; increases ramp.
 *
 * The invariants of design.md hold on every output, whatever the input
 * (one clamp function applies them last, on every path):
 *   CVL ≤ cells × bulk and CVL ≤ cells × (OVP − CHARGE_OVP_MARGIN_MV), OVP
 *     being the lower of the configured one and battery->cell_ovp_mv (when
 *     known), so CVL < cells × OVP;
 *   CCL ≤ max_charge and CCL ≤ battery->charge_limit_ma (DCL likewise),
 *     both whole multiples of 100 mA (the 0.1 A CAN resolution, downward);
 *   charge_enable ⇔ CCL > 0 and discharge_enable ⇔ DCL > 0; a force-charge
 *     or full-charge request only with charge_enable;
 *   CCL = 0 in WAIT and EOC, when charging is not allowed by the packs or
 *     the user, with too few fresh packs, or on a CELL_OV, OVER_TEMP,
 *     UNDER_TEMP or CHARGE_OC protection; DCL = 0 when discharging is not
 *     allowed, with too few fresh packs, or on CELL_UV or DISCHARGE_OC;
 *   SOC shown ≤ 98 % until end of charge (EOC or FLOAT), ≤ 100 % always;
 *   a battery that is not ready or has no fresh pack: transmit = false and
 *     every value 0; fewer than min_packs fresh: transmit, CCL = DCL = 0.
 *
 * Pure core: time is a parameter (monotonic ms for timers, wall-clock
 * seconds for "days since the last end of charge").
 */
#ifndef CHARGE_H
#define CHARGE_H

#include <stdbool.h>
#include <stdint.h>

#include "bank.h"

/* CVL never comes closer than this to cells × OVP (per cell). */
#define CHARGE_OVP_MARGIN_MV 50
/* DVL and the bottom of the DCL taper: cells × (UVP + this). */
#define CHARGE_DVL_MARGIN_MV 200

enum charge_chemistry {
	CHARGE_LFP,
	CHARGE_LIION,
	CHARGE_LTO,
};

enum charge_state {
	CHARGE_WAIT,
	CHARGE_BULK,
	CHARGE_CUTOFF,
	CHARGE_EOC,
	CHARGE_FLOAT,
};

struct charge_config {
	enum charge_chemistry chemistry;
	unsigned cells;			/* cells in series per pack */
	unsigned min_packs;
	uint32_t bulk_cell_mv;		/* LFP default 3450 */
	uint32_t float_cell_mv;		/* 3350 */
	uint32_t rebulk_cell_mv;	/* 3300 */
	uint32_t cell_ovp_mv;		/* 3650; CVL stays below cells × this */
	uint32_t cell_uvp_mv;		/* 2800; DVL = cells × (UVP + 200 mV) */
	uint32_t dcl_knee_cell_mv;	/* 3100; DCL tapers from here to UVP + 200 mV */
	uint32_t end_of_charge_timeout_s;	/* max time in CUTOFF: 1800; 0 = off */
	uint32_t cutoff_hold_s;		/* the criterion must hold this long: 10 */
	uint32_t cutoff_timer_s;	/* in CUTOFF this long -> EOC: 60 (the bank
					   reports no balancing, so it always runs) */
	uint8_t cutoff_min_soc;		/* 95: no cut-off below this SOC; 0 = off */
	uint8_t rebulk_soc;		/* 85; 0 = off */
	uint16_t rebulk_days;		/* 14; 0 = off */
	bool float_enabled;
	uint32_t float_step_mv;		/* pack voltage per step: 100; 0 = no steps */
	uint32_t float_step_interval_s;	/* 180; 0 = no steps (straight to float) */
	uint32_t max_charge_ma;		/* 200 A */
	uint32_t max_discharge_ma;	/* 200 A */
	uint32_t ramp_ma_per_s;		/* increase rate of CCL/DCL: 5000; 0 = at once */
	bool force_charge_enabled;
	uint8_t force_charge_start_soc;	/* 10 */
	uint8_t force_charge_stop_soc;	/* 30 */
	bool user_forbid_charge;	/* Home Assistant switches (opt-in) */
	bool user_forbid_discharge;
};

/* Fill `cfg` with the defaults for a chemistry and cell count. */
void charge_config_defaults(struct charge_config *cfg, enum charge_chemistry chem, unsigned cells);

struct charge_output {
	bool transmit;			/* false: say nothing (not ready, or no fresh pack) */
	enum charge_state state;
	bool changed;			/* state changed in this step */
	bool end_of_charge;		/* EOC reached in this step (store it) */
	uint32_t cvl_mv, dvl_mv;
	uint32_t ccl_ma, dcl_ma;
	bool charge_enable, discharge_enable;
	bool force_charge;		/* 0x35C force-charge request */
	bool full_charge;		/* 0x35C full-charge request: never set */
	uint8_t soc_pct;		/* as shown to the inverter */
	uint8_t soh_pct;
};

/* What survives a restart (written by store). */
struct charge_persist {
	enum charge_state state;
	int64_t last_eoc_wall_s;	/* 0 = never or unknown: the 14-day count
					   then starts at the next step in EOC/FLOAT */
};

struct charge {
	struct charge_config cfg;
	enum charge_state state;
	uint64_t state_since_ms;
	int64_t last_eoc_wall_s;
	bool criterion;			/* true: cut-off criterion, false: bulk */
	uint64_t criterion_since_ms;	/* ... held since */
	bool have_criterion;		/* false: grey zone or no data */
	uint32_t ccl_ma, dcl_ma;	/* last ramped value (before rounding) */
	uint64_t last_step_ms;
	uint32_t float_cvl_mv;		/* the stepped-down CVL in FLOAT */
	uint64_t float_step_ms;
	bool force_charge;
};

void charge_init(struct charge *c, const struct charge_config *cfg, uint64_t now_ms);
/* After charge_init(): CUTOFF resumes as BULK, EOC and FLOAT are kept (FLOAT
 * at the float voltage, no new step-down), an unknown state becomes WAIT. */
void charge_restore(struct charge *c, const struct charge_persist *p, uint64_t now_ms);
void charge_persist(const struct charge *c, struct charge_persist *p);

void charge_step(struct charge *c, const struct battery *bat, uint64_t now_ms, int64_t wall_s,
		 struct charge_output *out);

const char *charge_state_name(enum charge_state s);	/* "bulk", "float", ... */

#endif
