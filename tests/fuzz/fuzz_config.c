/* fuzz_config.c — libFuzzer harness: the tallyd.conf loader (INI reader, every key's parser, dump). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
count_item(void *user, const tally__ini_item_t *item, char *reason, size_t reasonlen)
{
    (void)item;
    (void)reason;
    (void)reasonlen;
    ++*(int *)user;
    return 0;
}

/* 1 when every line of text fits the INI reader's limit. */
static int
lines_fit(const char *text, size_t len)
{
    size_t col = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n')
            col = 0;
        else if (++col > TALLY__CONFIG_MAX_LINE)
            return 0;
    }
    return 1;
}

/* The dump without its first line (which names the file it came from). */
static const char *
body_of(const char *dump)
{
    const char *nl = strchr(dump, '\n');
    return nl ? nl + 1 : dump;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_ini_known_bug(data, size))
        return 0;
    const char *path = fuzz_write_file("tallyd.conf", data, size);
    char err[512];
    int n = 0;
    /* the shared INI reader on its own (metrics and plans use it too) */
    tally__config_ini_parse(path, count_item, &n, err, sizeof err);
    tally__config_t *cfg = NULL;
    if (tally__config_load(path, &cfg, err, sizeof err) == 0) {
        /* the dump must load back, to the same values (its own dump is the same) */
        char *text = NULL, *text2 = NULL;
        size_t len = 0, len2 = 0;
        FILE *fp = open_memstream(&text, &len);
        if (!fp)
            abort();
        tally__config_dump(cfg, fp);
        fclose(fp);
        /* a loaded config's dump fits the reader (resolved paths are
         * bounded) and must load back, to the same values */
        if (!lines_fit(text, len)) {
            fprintf(stderr, "fuzz_config: a dump line is longer than the reader takes\n");
            abort();
        }
        {
            const char *p2 = fuzz_write_file("dump.conf", (const uint8_t *)text, len);
            tally__config_t *again = NULL;
            if (tally__config_load(p2, &again, err, sizeof err) != 0) {
                fprintf(stderr, "fuzz_config: the dump does not load back: %s\n", err);
                abort();
            }
            fp = open_memstream(&text2, &len2);
            if (!fp)
                abort();
            tally__config_dump(again, fp);
            fclose(fp);
            if (strcmp(body_of(text), body_of(text2)) != 0) {
                fprintf(stderr, "fuzz_config: the dump loads back to other values:\n%s\n--- vs ---\n%s\n",
                        text, text2);
                abort();
            }
            free(text2);
            tally__config_destroy(again);
        }
        free(text);
        tally__config_destroy(cfg);
    }
    return 0;
}
