/* Layering check (CMakeLists.txt, test layering_core_sees_core_and_lib): a
 * core file may include core and lib headers; this must compile with core's
 * include directories, which makes the two failing checks beside it mean
 * what they say. */
#include "fs.h"
#include "route.h"
