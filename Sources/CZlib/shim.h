#ifndef TETRISERVE_CZLIB_SHIM_H
#define TETRISERVE_CZLIB_SHIM_H
#include <zlib.h>
#endif
