/*
 * The unit-test harness: one Check runner (check_main.c) over every test
 * case below.  Tests that read the real captures in ../shared/vectors (or
 * $JKB_VECTORS) are added through tests_add_vector_test(), which registers
 * them when the folder is there and counts them as skipped, visibly, when it
 * is not.
 */
#ifndef TESTS_H
#define TESTS_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The vectors folder, or NULL when it is absent. */
const char *tests_vectors_dir(void);

void tests_add_vector_test(TCase *tc, const TTest *t);

/* One factory per test file. */
TCase *tcase_stream(void);
TCase *tcase_stream_props(void);
TCase *tcase_decode(void);
TCase *tcase_cmd(void);
TCase *tcase_capture(void);
TCase *tcase_vectors(void);
TCase *tcase_jkbms_tool(void);
TCase *tcase_bank(void);
TCase *tcase_charge(void);
TCase *tcase_canmsg(void);
TCase *tcase_encode(void);
TCase *tcase_cfg(void);
TCase *tcase_daemon(void);
TCase *tcase_safety(void);
TCase *tcase_sim_battery(void);
TCase *tcase_ble(void);
TCase *tcase_energy(void);
TCase *tcase_ha(void);
TCase *tcase_mqtt(void);

#endif
