/* jkbms sim — being written. */
#include <stdio.h>

#include "jkbms_cmds.h"

int jkbms_sim_main(int argc, char **argv)
{
	fprintf(stderr, "jkbms sim: not available yet\n");
	return 2;
}
