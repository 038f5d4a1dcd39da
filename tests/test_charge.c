/* Tests for charge. */
#include "tests.h"

TCase *tcase_charge(void)
{
	return tcase_create("charge");
}
