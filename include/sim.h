/* sim — being written. */
#ifndef SIM_H
#define SIM_H
#endif
