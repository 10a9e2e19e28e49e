/* The versions of the libraries transforms/ links (Lua, libxml2), for
 * `sluice version` (core/version.h): core prints them without including
 * their headers. */
#include "version.h"

#include <libxml/xmlversion.h>
#include <lua.h>

const sl_lib_version sl_transforms_lib_versions[] = {
    {"libxml2", LIBXML_DOTTED_VERSION},
    {"lua", LUA_RELEASE},
    {NULL, NULL},
};
