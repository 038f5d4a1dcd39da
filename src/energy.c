/* energy — being written; see include/energy.h. */
#include "energy.h"
