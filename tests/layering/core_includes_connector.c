/* Layering check (CMakeLists.txt, test layering_core_cannot_include_connectors):
 * compiled with core's include directories, this must fail: core includes
 * no connector header. */
#include "http_server_util.h"
