/* opt.h — tallyctl's command table entry and its one option parser.
 *
 * Every command is a ctl_cmd_t: a name, the help text, a table of options
 * (ctl_opt_t, ended by an entry whose name is NULL) and a run function.
 * ctl_opt_parse() reads argv against that table the way getopt_long() with
 * permutation does — `--name VALUE`, `--name=VALUE`, a unique prefix of a
 * long name, `-c VALUE` / `-cVALUE` for an option with a short name,
 * operands anywhere, `--` ends the options — and every command gets
 * `--help` / `-h` for free, generated from the same table. The parsed
 * result borrows argv; nothing in it outlives main().
 *
 * Exit statuses are shared by every command: CTL_EXIT_OK, CTL_EXIT_FAIL
 * (the command ran and failed), CTL_EXIT_USAGE (bad command line, nothing
 * done).
 */
#ifndef TALLYCTL_OPT_H
#define TALLYCTL_OPT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CTL_EXIT_OK 0
#define CTL_EXIT_FAIL 1
#define CTL_EXIT_USAGE 2

/** How an option takes its value. */
typedef enum ctl_opt_kind {
    CTL_FLAG, /**< no value; given or not */
    CTL_ARG,  /**< one value; given again, the last one counts */
    CTL_LIST, /**< one value per use; every use counts (--label k=v ...) */
} ctl_opt_kind_t;

/** One option of a command. */
typedef struct ctl_opt {
    const char *name;    /**< long name without "--"; NULL ends a table */
    char short_name;     /**< one-letter alias (`-c`), or 0 */
    ctl_opt_kind_t kind; /**< flag, value or list */
    const char *metavar; /**< the value's name in help ("FILE"); NULL for flags */
    const char *help;    /**< help text; '\n' starts a continuation line */
    int required;        /**< 1: the parser refuses a command line without it */
} ctl_opt_t;

/** The result of parsing one command line; every string borrows argv. */
typedef struct ctl_args {
    const struct ctl_cmd *cmd;
    struct ctl_seen {
        int opt;         /**< index into cmd->opts */
        const char *val; /**< its value; NULL for a flag */
    } * seen;            /**< every option given, in command-line order */
    size_t nseen;
    const char **operands; /**< the arguments that are not options, in order */
    size_t noperands;
} ctl_args_t;

/** A command: one entry of tallyctl's command table (main.c). */
typedef struct ctl_cmd {
    const char *name;        /**< "usage" */
    const char *summary;     /**< one line for `tallyctl --help` */
    const char *synopsis;    /**< after "usage: tallyctl "; "\n" starts another form */
    const char *description; /**< the text of `tallyctl NAME --help`, above the options */
    const char *epilog;      /**< text below the options (exit statuses); may be NULL */
    const ctl_opt_t *opts;   /**< options, ended by {NULL}; --help is implied */
    int min_operands;        /**< operands the command needs at least */
    int max_operands;        /**< and at most */
    /** Runs the command; returns the exit status. */
    int (*run)(const ctl_args_t *args);
} ctl_cmd_t;

/**
 * @brief Parse argv (argv[0] is the command's name) against cmd's table.
 * @param[out] out the options and operands, borrowed from argv; release
 *        with ctl_args_fini() whatever the return value.
 * @return 0 parsed; 1 when --help was given (the help is printed on stdout:
 *         exit 0); CTL_EXIT_USAGE with a message naming the problem on
 *         stderr (unknown or ambiguous option, missing value, a required
 *         option missing, too many or too few operands); -ENOMEM.
 */
int ctl_opt_parse(const ctl_cmd_t *cmd, int argc, char **argv, ctl_args_t *out);

/** @brief Free what ctl_opt_parse() allocated; argv is untouched. */
void ctl_args_fini(ctl_args_t *a);

/** @brief Print cmd's help (synopsis, description, options, epilog) to fp. */
void ctl_opt_help(const ctl_cmd_t *cmd, FILE *fp);

/**
 * @brief Report a bad command line: "tallyctl CMD: MESSAGE" and the
 *        synopsis on stderr.
 * @return CTL_EXIT_USAGE, so that a command can `return ctl_usage_error(...)`.
 */
int ctl_usage_error(const ctl_args_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/**
 * @brief Report a failure: "tallyctl CMD: MESSAGE" on stderr.
 * @return CTL_EXIT_FAIL.
 */
int ctl_fail(const ctl_args_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** @brief The value of option name (the last one given), or NULL. */
const char *ctl_opt_str(const ctl_args_t *a, const char *name);

/** @brief Whether option name was given. */
int ctl_opt_flag(const ctl_args_t *a, const char *name);

/**
 * @brief Iterate over the values of a CTL_LIST option in command-line
 *        order: start with *pos = 0.
 * @return the next value, or NULL when there is none left.
 */
const char *ctl_opt_next(const ctl_args_t *a, const char *name, size_t *pos);

/**
 * @brief The value of an integer option, checked.
 * @param[in,out] out left as it is (the default) when the option is absent.
 * @return 0; CTL_EXIT_USAGE (reported, naming the option and the value)
 *         when it is not a whole number in [min, max].
 */
int ctl_opt_int(const ctl_args_t *a, const char *name, long long min, long long max,
                long long *out);

/**
 * @brief The value of a time option, parsed by ctl_time_parse() against
 *        the wall clock.
 * @param end CTL_TIME_START or CTL_TIME_END (timeparse.h): which end of a
 *        day or month the value names.
 * @param[out] out_ms unix milliseconds; untouched when the option is absent.
 * @param[out] given 1 when the option was given, else 0 (may be NULL).
 * @return 0; CTL_EXIT_USAGE (reported, naming the option, the value and
 *         the forms accepted) when it is not a time.
 */
int ctl_opt_time(const ctl_args_t *a, const char *name, int end, int64_t *out_ms, int *given);

#endif
