/* jkbms scan / dump — being written. */
#include <stdio.h>

#include "jkbms_cmds.h"

int jkbms_scan_main(int argc, char **argv)
{
	fprintf(stderr, "jkbms scan: not available yet\n");
	return 2;
}

int jkbms_dump_main(int argc, char **argv)
{
	fprintf(stderr, "jkbms dump: not available yet\n");
	return 2;
}
