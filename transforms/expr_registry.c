/* The expression languages the gateway knows (core/expr.h): the key
 * languages of `key:` in the order they are tried, and the condition
 * languages of `when:`. A new language is one table and one line here.
 * Also the XML reading `sluice test` compares `xml_subset` with. */
#include "expr.h"
#include "json_xml.h"
#include "route_test.h"

extern const sl_expr_lang sl_expr_xpath; /* transforms/json_xml.c */
extern const sl_expr_lang sl_expr_lua;   /* transforms/lua_expr.c */

/* one line per entry; the order is that of the "expected ..." error */
/* clang-format off */
const sl_expr_lang *const sl_expr_key_langs[] = {
    &sl_expr_header,
    &sl_expr_json_path,
    &sl_expr_xpath,
    NULL,
};

const sl_expr_lang *const sl_expr_cond_langs[] = {
    &sl_expr_lua,
    NULL,
};
/* clang-format on */

json_t *sl_test_xml_to_json(const char *xml, size_t len, sl_error *err)
{
    return sl_xml_to_json(xml, len, NULL, err);
}
