/* `sluice test FILE...`: route tests without a network. A test file names a
 * config and a route, input messages, fixtures that answer ctx.http calls,
 * and the messages expected at each output. Each case runs the real route
 * engine (a gateway of its own on a temporary log, every connector replaced
 * by an in-process capture connector); format: the README's route tests and
 * the examples in routes/tests/ (*.test.yaml). */
#ifndef SLUICE_ROUTE_TEST_H
#define SLUICE_ROUTE_TEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "error.h"

/* Runs the test files and writes one line per case ("PASS FILE: NAME" or
 * "FAIL FILE: NAME" followed by indented details and a diff), then
 * "N passed, N failed". Each case builds a gateway from the config in a
 * directory under $TMPDIR or /tmp (removed at the end), appends every input to the
 * route's topic as an input does (the route's `key:` is evaluated; a key
 * that cannot be read is an error of the input, as at ingest) and waits up
 * to 30 s per input for the route to finish it. Returns 0 when every case
 * passed, 1 when one failed, 2 when a test file (or the config it names)
 * could not be read or is malformed (its cases are not run; the others
 * are). Not thread-safe with respect to the environment (${VAR} in files). */
int sl_route_test_run(char *const *files, size_t n, FILE *out);

/* The `sluice test` command: argv[0] is "test", argv[1..] the files.
 * Prints to stdout; returns the exit code (2 with a usage line when no
 * file is given). */
int sl_route_test_main(int argc, char **argv);

/* Reads an XML text as JSON (the mapping of the xml_to_json step with its
 * default options) for the `xml_subset` expectation, which checks that the
 * expected XML is a subset of the captured body. Defined outside core, by the
 * layer that owns XML (transforms/expr_registry.c). Thread-safe. Returns a new
 * reference, or NULL with err saying why the text is not XML. */
json_t *sl_test_xml_to_json(const char *xml, size_t len, sl_error *err);

#endif
