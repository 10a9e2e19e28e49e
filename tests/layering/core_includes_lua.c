/* Layering check (CMakeLists.txt, test layering_core_cannot_include_lua):
 * compiled with core's include directories and flags, this must fail: core
 * never sees Lua's (or libxml2's) headers. */
#include <lua.h>
