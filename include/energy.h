/* energy — being written. */
#ifndef ENERGY_H
#define ENERGY_H
#endif
