/* sim_battery — being written. */
#ifndef SIM_BATTERY_H
#define SIM_BATTERY_H
#endif
