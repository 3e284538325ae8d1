#ifndef TETRISERVE_COPENBLAS_SHIM_H
#define TETRISERVE_COPENBLAS_SHIM_H
// Debian's libopenblas-dev installs cblas.h (with openblas_get_corename and
// openblas_set_num_threads) under /usr/include/x86_64-linux-gnu via alternatives.
#include <cblas.h>
#endif
