/* libFuzzer target: HF config.json text into lt_config_parse. Any input must either parse into a
 * config that passes lt_config_validate or be refused with a message; never crash or leak. */
#include <stdlib.h>
#include <string.h>

#include "io/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    lt_model_config cfg;
    lt_status st = lt_config_parse(text, "fuzz.json", &cfg);
    if (st) {
        if (!lt_status_msg(st)[0]) abort(); /* every refusal says something */
        lt_status_free(st);
    } else {
        lt_status v = lt_config_validate(&cfg, "fuzz.json");
        if (v) abort(); /* parse accepted what validation refuses */
        if (lt_config_n_params(&cfg) <= 0) abort();
    }
    free(text);
    return 0;
}
