/*
 * energy: V × I integrated into charged / discharged counters that never go
 * down, a gap that counts as at most ENERGY_MAX_STEP_MS, and a stored book
 * that only ever raises what is counted.
 */
#include <errno.h>

#include "energy.h"
#include "tests.h"


START_TEST(test_one_hour_at_one_kilowatt_is_one_kwh_charged)
{
	struct energy_meter m = { 0 };
	uint64_t t = 1000;

	energy_update(&m, 50000, 20000, t);	/* 50 V × 20 A = 1 kW; starts the interval */
	for (unsigned i = 0; i < 3600; i++)
		energy_update(&m, 50000, 20000, t += 1000);
	ck_assert_uint_eq(m.charged_mwh, 1000000);
	ck_assert_uint_eq(m.discharged_mwh, 0);
	ck_assert_double_eq_tol(energy_kwh(m.charged_mwh), 1.0, 1e-12);
}
END_TEST

START_TEST(test_discharge_counts_apart_and_the_return_value_is_signed)
{
	struct energy_meter m = { 0 };

	energy_update(&m, 52000, -10000, 0);
	ck_assert_int_eq(energy_update(&m, 52000, -10000, 1000), -520000000000LL);	/* 520 W × 1 s */
	ck_assert_int_eq(energy_update(&m, 52000, 10000, 2000), 520000000000LL);
	ck_assert_uint_eq(m.charged_mwh, 144);		/* 520 J = 144.4 mWh */
	ck_assert_uint_eq(m.discharged_mwh, 144);
}
END_TEST

START_TEST(test_small_steps_add_up_exactly_through_the_remainder)
{
	struct energy_meter a = { 0 }, b = { 0 };

	/* 3.3 V × 1 mA over 100 ms is 0.33 mJ: far below one mWh per step. */
	energy_update(&a, 3300, 1, 0);
	for (uint64_t t = 100; t <= 3600000; t += 100)
		energy_update(&a, 3300, 1, t);
	energy_update(&b, 3300, 1, 0);
	for (uint64_t t = 5000; t <= 3600000; t += 5000)
		energy_update(&b, 3300, 1, t);
	ck_assert_uint_eq(a.charged_mwh, 3);	/* 3.3 mWh */
	ck_assert_uint_eq(a.charged_mwh, b.charged_mwh);
	ck_assert_uint_eq(a.charged_nj, b.charged_nj);
}
END_TEST

START_TEST(test_a_gap_counts_as_at_most_the_longest_step)
{
	struct energy_meter m = { 0 };

	energy_update(&m, 50000, 72000, 0);		/* 3.6 kW = 1 mWh per ms */
	energy_update(&m, 50000, 72000, 3600000);	/* an hour later: a suspend */
	ck_assert_uint_eq(m.charged_mwh, ENERGY_MAX_STEP_MS);
}
END_TEST

START_TEST(test_after_a_pause_the_first_update_adds_nothing)
{
	struct energy_meter m = { 0 };

	energy_update(&m, 50000, 72000, 0);
	energy_update(&m, 50000, 72000, 1000);
	ck_assert_uint_eq(m.charged_mwh, 1000);
	energy_pause(&m);
	ck_assert_int_eq(energy_update(&m, 50000, 72000, 4000), 0);
	ck_assert_uint_eq(m.charged_mwh, 1000);
	energy_update(&m, 50000, 72000, 5000);
	ck_assert_uint_eq(m.charged_mwh, 2000);
}
END_TEST

START_TEST(test_implausible_samples_and_clock_steps_add_nothing)
{
	struct energy_meter m = { 0 };

	energy_update(&m, 50000, 1000, 10000);
	ck_assert_int_eq(energy_update(&m, 4000000000u, 2000000000, 11000), 0);
	ck_assert_int_eq(energy_update(&m, 50000, 1000, 9000), 0);	/* backwards */
	ck_assert_uint_eq(m.charged_mwh, 0);
	ck_assert_uint_eq(m.charged_nj, 0);
}
END_TEST

START_TEST(test_restore_only_raises)
{
	struct energy_meter m = { .charged_mwh = 500, .discharged_mwh = 900 };

	energy_raise(&m, 400, 1000);
	ck_assert_uint_eq(m.charged_mwh, 500);
	ck_assert_uint_eq(m.discharged_mwh, 1000);
}
END_TEST

START_TEST(test_book_round_trips_and_never_goes_below_the_stored_values)
{
	struct energy_book a, b;
	struct energy_meter *m;
	json_t *doc;

	energy_book_init(&a);
	energy_book_meter(&a, ENERGY_BATTERY_KEY)->charged_mwh = 123456;
	energy_book_meter(&a, "C8:47:8C:E1:E2:AA")->discharged_mwh = 42;
	doc = energy_book_json(&a);
	ck_assert_ptr_nonnull(doc);

	energy_book_init(&b);
	m = energy_book_meter(&b, "C8:47:8C:E1:E2:AA");
	m->discharged_mwh = 50;		/* already counted more: kept */
	ck_assert_int_eq(energy_book_restore(&b, doc), 0);
	ck_assert_uint_eq(energy_book_meter(&b, ENERGY_BATTERY_KEY)->charged_mwh, 123456);
	ck_assert_uint_eq(m->discharged_mwh, 50);
	ck_assert_uint_eq(b.n, 2);
	json_decref(doc);
}
END_TEST

START_TEST(test_a_document_this_version_did_not_write_changes_nothing)
{
	static const char *const bad[] = {
		"{\"meters\": {}}",
		"{\"version\": 2, \"meters\": {}}",
		"{\"version\": 1, \"meters\": {\"battery\": {\"charged_mwh\": -1, \"discharged_mwh\": 0}}}",
		"{\"version\": 1, \"meters\": {\"a\": {\"charged_mwh\": 5, \"discharged_mwh\": 5},"
		" \"battery\": {\"charged_mwh\": \"x\"}}}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct energy_book b;
		json_t *doc = json_loads(bad[i], 0, NULL);

		ck_assert_ptr_nonnull(doc);
		energy_book_init(&b);
		ck_assert_int_eq(energy_book_restore(&b, doc), -EINVAL);
		ck_assert_uint_eq(b.n, 0);
		json_decref(doc);
	}
}
END_TEST

START_TEST(test_book_is_bounded)
{
	struct energy_book b;
	char key[16];

	energy_book_init(&b);
	ck_assert_ptr_null(energy_book_meter(&b, ""));
	for (unsigned i = 0; i < ENERGY_BOOK_MAX; i++) {
		snprintf(key, sizeof(key), "k%u", i);
		ck_assert_ptr_nonnull(energy_book_meter(&b, key));
	}
	ck_assert_ptr_null(energy_book_meter(&b, "one-too-many"));
	ck_assert_ptr_nonnull(energy_book_meter(&b, "k3"));
}
END_TEST

TCase *tcase_energy(void)
{
	TCase *tc = tcase_create("energy");

	tcase_add_test(tc, test_one_hour_at_one_kilowatt_is_one_kwh_charged);
	tcase_add_test(tc, test_discharge_counts_apart_and_the_return_value_is_signed);
	tcase_add_test(tc, test_small_steps_add_up_exactly_through_the_remainder);
	tcase_add_test(tc, test_a_gap_counts_as_at_most_the_longest_step);
	tcase_add_test(tc, test_after_a_pause_the_first_update_adds_nothing);
	tcase_add_test(tc, test_implausible_samples_and_clock_steps_add_nothing);
	tcase_add_test(tc, test_restore_only_raises);
	tcase_add_test(tc, test_book_round_trips_and_never_goes_below_the_stored_values);
	tcase_add_test(tc, test_a_document_this_version_did_not_write_changes_nothing);
	tcase_add_test(tc, test_book_is_bounded);
	return tc;
}
