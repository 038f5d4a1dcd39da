/* ha — being written. */
#ifndef HA_H
#define HA_H
#endif
