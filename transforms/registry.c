/* The step registry: every step type built into sluice, which core looks up
 * by the key of a `steps:` entry (core/step.h). The order is the one
 * `sluice check` lists them in. A new step is one new file and one line here. */
#include "step.h"

extern const sl_step_type sl_lua_step;
extern const sl_step_type sl_json_to_xml_step;
extern const sl_step_type sl_xml_to_json_step;
extern const sl_step_type sl_filter_step;
extern const sl_step_type sl_set_step;
extern const sl_step_type sl_validate_step;

/* one line per entry; NULL ends the list */
/* clang-format off */
const sl_step_type *const sl_step_registry[] = {
    &sl_lua_step,
    &sl_json_to_xml_step,
    &sl_xml_to_json_step,
    &sl_filter_step,
    &sl_set_step,
    &sl_validate_step,
    NULL,
};
/* clang-format on */
