/*
 * energy — V × I integrated into never-decreasing counters (see energy.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "energy.h"

#define ENERGY_MAX_VOLTAGE_MV 1000000u	/* 1 kV */
#define ENERGY_MAX_CURRENT_MA 10000000	/* 10 kA */

static void carry(uint64_t *mwh, uint64_t *nj, uint64_t add_nj)
{
	*nj += add_nj;
	*mwh += *nj / ENERGY_NJ_PER_MWH;
	*nj %= ENERGY_NJ_PER_MWH;
}

void energy_add_nj(struct energy_meter *m, int64_t nj)
{
	if (nj > 0)
		carry(&m->charged_mwh, &m->charged_nj, (uint64_t)nj);
	else if (nj < 0)
		carry(&m->discharged_mwh, &m->discharged_nj, (uint64_t)-(nj + 1) + 1);
}

int64_t energy_update(struct energy_meter *m, uint32_t voltage_mv, int32_t current_ma, uint64_t now_ms)
{
	bool plausible = voltage_mv <= ENERGY_MAX_VOLTAGE_MV && current_ma <= ENERGY_MAX_CURRENT_MA &&
			 current_ma >= -ENERGY_MAX_CURRENT_MA;
	uint64_t dt_ms, nj;
	int64_t added = 0;

	if (m->running && plausible && now_ms > m->last_ms) {
		dt_ms = now_ms - m->last_ms;
		if (dt_ms > ENERGY_MAX_STEP_MS)
			dt_ms = ENERGY_MAX_STEP_MS;
		/* mV × mA = µW; µW × ms = nJ.  At most 1e6 × 1e7 × 5e3 = 5e16. */
		nj = (uint64_t)voltage_mv * (uint64_t)llabs(current_ma) * dt_ms;
		added = current_ma < 0 ? -(int64_t)nj : (int64_t)nj;
		energy_add_nj(m, added);
	}
	m->last_ms = now_ms;
	m->running = true;
	return added;
}

void energy_pause(struct energy_meter *m)
{
	m->running = false;
}

void energy_raise(struct energy_meter *m, uint64_t charged_mwh, uint64_t discharged_mwh)
{
	if (charged_mwh > m->charged_mwh) {
		m->charged_mwh = charged_mwh;
		m->charged_nj = 0;
	}
	if (discharged_mwh > m->discharged_mwh) {
		m->discharged_mwh = discharged_mwh;
		m->discharged_nj = 0;
	}
}

double energy_kwh(uint64_t mwh)
{
	return (double)mwh / 1e6;
}

/* ----------------------------------------------------------------- book */

void energy_book_init(struct energy_book *b)
{
	memset(b, 0, sizeof(*b));
}

struct energy_meter *energy_book_meter(struct energy_book *b, const char *key)
{
	struct energy_entry *e;

	for (unsigned i = 0; i < b->n; i++)
		if (strcmp(b->entries[i].key, key) == 0)
			return &b->entries[i].meter;
	if (b->n >= ENERGY_BOOK_MAX || strlen(key) >= ENERGY_KEY_MAX || !*key)
		return NULL;
	e = &b->entries[b->n++];
	memset(e, 0, sizeof(*e));
	strcpy(e->key, key);
	return &e->meter;
}

json_t *energy_book_json(const struct energy_book *b)
{
	json_t *meters = json_object();

	for (unsigned i = 0; i < b->n; i++) {
		const struct energy_meter *m = &b->entries[i].meter;

		json_object_set_new(meters, b->entries[i].key,
				    json_pack("{s:I, s:I}", "charged_mwh", (json_int_t)m->charged_mwh,
					      "discharged_mwh", (json_int_t)m->discharged_mwh));
	}
	return json_pack("{s:i, s:o}", "version", 1, "meters", meters);
}

static bool stored_counter(const json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

int energy_book_restore(struct energy_book *b, const json_t *doc)
{
	const json_t *meters = json_object_get(doc, "meters"), *m;
	const char *key;
	uint64_t charged = 0, discharged = 0;

	if (json_integer_value(json_object_get(doc, "version")) != 1 || !json_is_object(meters))
		return -EINVAL;
	json_object_foreach((json_t *)meters, key, m) {
		if (!stored_counter(json_object_get(m, "charged_mwh"), &charged) ||
		    !stored_counter(json_object_get(m, "discharged_mwh"), &discharged))
			return -EINVAL;
	}
	json_object_foreach((json_t *)meters, key, m) {
		struct energy_meter *meter = energy_book_meter(b, key);

		stored_counter(json_object_get(m, "charged_mwh"), &charged);
		stored_counter(json_object_get(m, "discharged_mwh"), &discharged);
		if (meter)
			energy_raise(meter, charged, discharged);
	}
	return 0;
}
