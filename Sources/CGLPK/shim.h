#ifndef TETRISERVE_CGLPK_SHIM_H
#define TETRISERVE_CGLPK_SHIM_H
// GLPK, the GNU Linear Programming Kit (Debian: libglpk-dev), solves the upper bound's
// integer program (TetriSim's UpperBound).
#include <glpk.h>
#endif
