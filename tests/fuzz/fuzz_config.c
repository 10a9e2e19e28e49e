/* libFuzzer target: the config loader (YAML reader, schema checks, the
 * connector and step parsers) on one file's bytes, as `sluice check`. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/sluice-fuzz-config-%d.yaml", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    sl_config_errors errs = {0};
    sl_config *cfg = sl_config_load(path, &errs);
    sl_config_free(cfg);
    sl_config_errors_free(&errs);
    return 0;
}
