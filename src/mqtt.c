/* mqtt — being written; see include/mqtt.h. */
#include "mqtt.h"
