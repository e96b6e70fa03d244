/* ctl.h — what tallyctl's commands share: the command table, configuration and store, the HTTP
 * target, secrets, JSON output.
 *
 * Each cmd_*.c file defines the ctl_cmd_t of its commands; main.c lists
 * them in one table. A new command is a new ctl_cmd_t and one line there.
 *
 * Configuration: a command with a --config option reads FILE, or without it
 * the installed default (TALLYCTL_DEFAULT_CONFIG) when that file exists,
 * else built-in defaults; then the TALLY_SECTION_KEY environment overrides,
 * exactly as tallyd does (lib/config.c).
 */
#ifndef TALLYCTL_CTL_H
#define TALLYCTL_CTL_H

#include <jansson.h>
#include <stddef.h>

#include "config.h"
#include "opt.h"
#include "store.h"

/* The commands, one file per group. */
extern const ctl_cmd_t ctl_cmd_emit;    /* cmd_events.c */
extern const ctl_cmd_t ctl_cmd_watch;   /* cmd_events.c */
extern const ctl_cmd_t ctl_cmd_keygen;  /* cmd_keygen.c */
extern const ctl_cmd_t ctl_cmd_dump;    /* cmd_store.c */
extern const ctl_cmd_t ctl_cmd_backup;  /* cmd_store.c */
extern const ctl_cmd_t ctl_cmd_restore; /* cmd_store.c */
extern const ctl_cmd_t ctl_cmd_compact; /* cmd_store.c */
extern const ctl_cmd_t ctl_cmd_check;   /* cmd_store.c */
extern const ctl_cmd_t ctl_cmd_usage;   /* cmd_api.c */
extern const ctl_cmd_t ctl_cmd_stats;   /* cmd_api.c */
extern const ctl_cmd_t ctl_cmd_plan;    /* cmd_admin.c */
extern const ctl_cmd_t ctl_cmd_invoice; /* cmd_admin.c */

/** The --config option, with the help every command shows for it. */
#define CTL_OPT_CONFIG                                                                             \
    {                                                                                              \
        "config", 'c', CTL_ARG, "FILE",                                                            \
            "tallyd's configuration (default: " TALLYCTL_DEFAULT_CONFIG " when it exists, else "   \
            "built-in defaults), with the TALLY_SECTION_KEY overrides",                            \
            0                                                                                      \
    }

/** The --url option. */
#define CTL_OPT_URL                                                                                \
    {                                                                                              \
        "url", 0, CTL_ARG, "URL",                                                                  \
            "tallyd's HTTP API, http://HOST:PORT (default: [http] listen of the configuration, "   \
            "0.0.0.0 and :: meaning this host)",                                                   \
            0                                                                                      \
    }

/** The --token-file option. */
#define CTL_OPT_TOKEN_FILE                                                                         \
    {                                                                                              \
        "token-file", 0, CTL_ARG, "FILE",                                                          \
            "read the API token from FILE (its first line that is not blank or a # comment); "     \
            "without it: TALLY_TOKEN, then [tallyctl] token_file of the configuration",            \
            0                                                                                      \
    }

/** The --token option, kept for scripts written before --token-file. */
#define CTL_OPT_TOKEN                                                                              \
    {                                                                                              \
        "token", 0, CTL_ARG, "TOKEN",                                                              \
            "the API token itself, kept for scripts: ps and the shell history show it to other "   \
            "users, so prefer --token-file or TALLY_TOKEN",                                        \
            0                                                                                      \
    }

/** The options of every command that sends an API token to tallyd's HTTP API. */
#define CTL_OPTS_HTTP CTL_OPT_URL, CTL_OPT_TOKEN_FILE, CTL_OPT_TOKEN, CTL_OPT_CONFIG

/** Longest API token or emitter credential accepted, in bytes. */
#define CTL_SECRET_MAX 512

/**
 * @brief Load the configuration of a command that has a --config option
 *        (see the top of this file for where it comes from).
 * @param[out] cfg owned by the caller until tally__config_destroy().
 * @return 0, or CTL_EXIT_FAIL with the reason on stderr.
 */
int ctl_config_load(const ctl_args_t *a, tally__config_t **cfg);

/**
 * @brief Load the configuration and open its store.
 * @return 0 with both set (release the store first); CTL_EXIT_FAIL with the
 *         reason on stderr and nothing to release.
 */
int ctl_store_open(const ctl_args_t *a, int readonly, tally__config_t **cfg,
                   tally__store_t **store);

/**
 * @brief Read a secret (an API token, an emitter credential) from a file:
 *        its first line that is not blank or a # comment, without blanks
 *        around it. Warns on stderr when group or others may read the file.
 * @param what the option or key it came from, for messages ("--token-file").
 * @param out CTL_SECRET_MAX bytes.
 * @return 0, or CTL_EXIT_FAIL (reported: cannot open, no secret in it,
 *         too long, a blank or control character inside).
 */
int ctl_read_secret(const ctl_args_t *a, const char *what, const char *file, char *out);

/** Where an HTTP command sends its requests. */
typedef struct ctl_target {
    char url[300];              /**< base URL, "http://HOST:PORT" */
    char token[CTL_SECRET_MAX]; /**< API token; "" when none */
} ctl_target_t;

/**
 * @brief Resolve a command's URL and token (CTL_OPTS_HTTP): --url, else
 *        the configuration's http.listen; --token-file, --token,
 *        TALLY_TOKEN, else the configuration's tallyctl.token_file.
 *        The configuration is read only when something comes from it.
 * @param need_token 1: the command sends a token (and declares the token
 *        options), so a missing one is an error; 0: only the URL is
 *        resolved (the command declares --url and --config only).
 * @return 0; CTL_EXIT_USAGE (reported) for --token with --token-file, or no
 *         token when one is needed; CTL_EXIT_FAIL (reported) when the
 *         configuration or a token file cannot be read, or http.listen
 *         has port 0.
 * @note Clear t with ctl_target_fini() once done: it holds the token.
 */
int ctl_target_resolve(const ctl_args_t *a, int need_token, ctl_target_t *t);

/** @brief Wipe the token in t. */
void ctl_target_fini(ctl_target_t *t);

/**
 * @brief Print a JSON value and a newline on stdout, then release it.
 * @param j stolen (NULL is reported as out of memory: a jansson
 *        constructor failed).
 * @param flags json_dumps() flags; JSON_PRESERVE_ORDER is added.
 * @return 0, or CTL_EXIT_FAIL when j is NULL or cannot be written.
 */
int ctl_json_print(const ctl_args_t *a, json_t *j, size_t flags);

/**
 * @brief A JSON string of n bytes that may not be valid UTF-8 (a label
 *        written by an older tally): invalid bytes become U+FFFD.
 * @return a new reference, or NULL when out of memory.
 */
json_t *ctl_json_stringn(const char *s, size_t n);

/**
 * @brief A JSON number for a double: an integer when it is one (and exact
 *        in a double), else a real; null for NaN and infinities, which
 *        JSON cannot write.
 * @return a new reference, or NULL when out of memory.
 */
json_t *ctl_json_number(double v);

/** @brief Whether stderr is a terminal (for progress lines). */
int ctl_stderr_is_tty(void);

#endif
