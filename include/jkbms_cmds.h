/*
 * The subcommands of the jkbms tool that live in their own files:
 * each takes the argv that starts with its own name and returns the exit
 * status.
 */
#ifndef JKBMS_CMDS_H
#define JKBMS_CMDS_H

int jkbms_sim_main(int argc, char **argv);	/* jkbms_sim.c */
int jkbms_scan_main(int argc, char **argv);	/* jkbms_ble.c */
int jkbms_dump_main(int argc, char **argv);	/* jkbms_ble.c */

#endif
