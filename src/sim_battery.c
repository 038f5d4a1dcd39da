/* sim_battery — being written; see include/sim_battery.h. */
#include "sim_battery.h"
