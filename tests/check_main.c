/*
 * The test runner.  Prints Check's summary and then one plain line,
 * "N passed, N failed, N skipped", where skipped counts the tests that need
 * ../shared/vectors when that folder is absent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "tests.h"

static unsigned skipped;

const char *tests_vectors_dir(void)
{
	static const char *dir;
	static bool looked;
	struct stat st;

	if (!looked) {
		const char *env = getenv("JKB_VECTORS");

		dir = env && *env ? env : "../shared/vectors";
		if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
			dir = NULL;
		looked = true;
	}
	return dir;
}

void tests_add_vector_test(TCase *tc, const TTest *t)
{
	if (tests_vectors_dir()) {
		tcase_add_test(tc, t);
		return;
	}
	printf("SKIP %s: no vectors folder (set JKB_VECTORS)\n", t->name);
	skipped++;
}

int main(void)
{
	TCase *(*const cases[])(void) = {
		tcase_stream, tcase_stream_props, tcase_decode, tcase_cmd,
		tcase_capture, tcase_vectors, tcase_jkbms_tool,
		tcase_bank, tcase_charge, tcase_canmsg, tcase_encode,
		tcase_cfg, tcase_daemon, tcase_safety, tcase_sim_battery, tcase_ble,
		tcase_energy, tcase_ha, tcase_mqtt,
	};
	Suite *suite = suite_create("jkbridged");
	SRunner *sr;
	int run, failed;

	if (!tests_vectors_dir())
		printf("vectors folder absent: tests that read real captures are skipped\n");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		suite_add_tcase(suite, cases[i]());

	sr = srunner_create(suite);
	srunner_run_all(sr, CK_NORMAL);
	run = srunner_ntests_run(sr);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);

	printf("%d passed, %d failed, %u skipped\n", run - failed, failed, skipped);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
