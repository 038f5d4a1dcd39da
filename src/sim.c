/* sim — being written; see include/sim.h. */
#include "sim.h"
