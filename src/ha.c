/* ha — being written; see include/ha.h. */
#include "ha.h"
