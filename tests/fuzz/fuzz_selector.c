/* fuzz_selector.c — libFuzzer harness: the label-selector parser and matcher. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "selector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *labels;
    if (!labels)
        labels = json_pack("{s:s, s:s, s:s, s:s}", "env", "prod", "team", "x", "app.kubernetes.io/name",
                           "web", "empty", "");
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char err[128];
    tally__selector_t *sel = NULL;
    if (tally__selector_parse(text, &sel, err, sizeof err) == 0) {
        (void)tally__selector_count(sel);
        (void)tally__selector_match_json(sel, labels);
        json_t *none = json_object();
        (void)tally__selector_match_json(sel, none);
        json_decref(none);
        tally__selector_destroy(sel);
    } else if (!memchr(err, '\0', sizeof err)) {
        abort(); /* the reason must be a terminated string */
    }
    free(text);
    return 0;
}
