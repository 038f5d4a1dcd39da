/* ble — being written; see include/ble.h. */
#include "ble.h"
