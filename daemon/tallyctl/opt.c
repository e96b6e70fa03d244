/* opt.c — one option parser and help printer for every tallyctl command (see opt.h). */
#include "opt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tally/tally.h"
#include "timeparse.h"
#include "timeutil.h"

/* The option every command has; its index in args->seen is HELP_OPT. */
#define HELP_OPT (-1)

static size_t
nopts(const ctl_cmd_t *cmd)
{
    size_t n = 0;
    while (cmd->opts && cmd->opts[n].name)
        n++;
    return n;
}

#define HELP_WIDTH 80 /* columns of a help line */
#define HELP_COL 26   /* where an option's help text starts */

/* Write text from column col on, breaking lines at blanks so that none
 * passes HELP_WIDTH and starting each further line at column indent; a
 * '\n' in text forces a break. Ends with a newline. */
static void
wrap(FILE *fp, const char *text, int col, int indent)
{
    const char *p = text;
    int at_line_start = 1;
    while (*p) {
        if (*p == '\n') {
            fprintf(fp, "\n%*s", indent, "");
            col = indent;
            at_line_start = 1;
            p++;
            continue;
        }
        size_t w = strcspn(p, " \n");
        if (*p == '[') { /* an optional part of a synopsis stays on one line */
            const char *close = strchr(p, ']');
            if (close && !memchr(p, '\n', (size_t)(close - p)))
                w = (size_t)(close - p) + strcspn(close, " \n");
        }
        if (!at_line_start && col + 1 + (int)w > HELP_WIDTH) {
            fprintf(fp, "\n%*s", indent, "");
            col = indent;
            at_line_start = 1;
        }
        if (!at_line_start) {
            fputc(' ', fp);
            col++;
        }
        fprintf(fp, "%.*s", (int)w, p);
        col += (int)w;
        at_line_start = 0;
        p += w;
        while (*p == ' ')
            p++;
    }
    fputc('\n', fp);
}

static void
print_synopsis(const ctl_cmd_t *cmd, FILE *fp)
{
    const char *p = cmd->synopsis;
    int first = 1;
    while (p && *p) {
        size_t n = strcspn(p, "\n");
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)n, p);
        /* continuation lines start under the command's first option */
        int col = fprintf(fp, "%s tallyctl ", first ? "usage:" : "      ");
        wrap(fp, line, col, col + (int)strlen(cmd->name) + 1);
        first = 0;
        p += n + (p[n] == '\n');
    }
}

void
ctl_opt_help(const ctl_cmd_t *cmd, FILE *fp)
{
    print_synopsis(cmd, fp);
    if (cmd->description)
        fputs(cmd->description, fp);
    fputs("options:\n", fp);
    size_t n = nopts(cmd);
    for (size_t i = 0; i <= n; i++) {
        /* the table's options, then --help */
        const ctl_opt_t help = {"help", 'h', CTL_FLAG, NULL, "print this help and exit", 0};
        const ctl_opt_t *o = i < n ? &cmd->opts[i] : &help;
        char head[64], text[1024];
        if (o->short_name)
            snprintf(head, sizeof head, "-%c, --%s%s%s", o->short_name, o->name,
                     o->metavar ? " " : "", o->metavar ? o->metavar : "");
        else
            snprintf(head, sizeof head, "    --%s%s%s", o->name, o->metavar ? " " : "",
                     o->metavar ? o->metavar : "");
        int col = fprintf(fp, "  %-*s", HELP_COL - 2, head);
        if (col > HELP_COL) { /* a long head: the help starts on the next line */
            fprintf(fp, "\n%*s", HELP_COL, "");
            col = HELP_COL;
        }
        snprintf(text, sizeof text, "%s%s", o->help ? o->help : "",
                 o->required ? " (required)" : "");
        wrap(fp, text, col, HELP_COL);
    }
    if (cmd->epilog)
        fputs(cmd->epilog, fp);
}

static int
vreport(const ctl_args_t *a, const char *fmt, va_list ap)
{
    fprintf(stderr, "tallyctl %s: ", a->cmd->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    return 0;
}

int
ctl_usage_error(const ctl_args_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(a, fmt, ap);
    va_end(ap);
    print_synopsis(a->cmd, stderr);
    fprintf(stderr, "Run 'tallyctl %s --help' for its options.\n", a->cmd->name);
    return CTL_EXIT_USAGE;
}

int
ctl_fail(const ctl_args_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(a, fmt, ap);
    va_end(ap);
    return CTL_EXIT_FAIL;
}

/* The option called name (or a unique prefix of one, like getopt_long), by
 * index; HELP_OPT for --help; -2 unknown; -3 ambiguous. */
static int
find_long(const ctl_cmd_t *cmd, const char *name, size_t len)
{
    size_t n = nopts(cmd);
    int match = -2;
    if (len == 0) /* "--=x" */
        return -2;
    if (len == 4 && strncmp(name, "help", 4) == 0)
        return HELP_OPT;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(cmd->opts[i].name, name, len) != 0)
            continue;
        if (cmd->opts[i].name[len] == '\0')
            return (int)i; /* exact beats any prefix */
        match = match == -2 ? (int)i : -3;
    }
    if (match == -2 && len > 0 && strncmp("help", name, len) == 0)
        return HELP_OPT;
    return match;
}

static int
find_short(const ctl_cmd_t *cmd, char c)
{
    if (c == 'h')
        return HELP_OPT;
    for (size_t i = 0; i < nopts(cmd); i++)
        if (cmd->opts[i].short_name == c)
            return (int)i;
    return -2;
}

int
ctl_opt_parse(const ctl_cmd_t *cmd, int argc, char **argv, ctl_args_t *out)
{
    memset(out, 0, sizeof *out);
    out->cmd = cmd;
    size_t cap = argc > 0 ? (size_t)argc : 1;
    out->seen = calloc(cap, sizeof *out->seen);
    out->operands = calloc(cap, sizeof *out->operands);
    if (!out->seen || !out->operands) {
        fprintf(stderr, "tallyctl %s: out of memory\n", cmd->name);
        return -ENOMEM;
    }
    int help = 0, dashdash = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int idx;
        const char *val = NULL, *shown = s;
        char sname[3] = "-?";
        if (dashdash || s[0] != '-' || s[1] == '\0') {
            out->operands[out->noperands++] = s;
            continue;
        }
        if (strcmp(s, "--") == 0) {
            dashdash = 1;
            continue;
        }
        if (s[1] == '-') {
            const char *name = s + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            idx = find_long(cmd, name, len);
            if (idx == -2)
                return ctl_usage_error(out, "unknown option '--%.*s'", (int)len, name);
            if (idx == -3)
                return ctl_usage_error(out, "option '--%.*s' is ambiguous", (int)len, name);
            if (eq) {
                if (idx == HELP_OPT || cmd->opts[idx].kind == CTL_FLAG)
                    return ctl_usage_error(out, "option '--%s' takes no value",
                                           idx == HELP_OPT ? "help" : cmd->opts[idx].name);
                val = eq + 1;
            }
        } else {
            idx = find_short(cmd, s[1]);
            sname[1] = s[1];
            shown = sname;
            if (idx == -2)
                return ctl_usage_error(out, "unknown option '-%c'", s[1]);
            if (s[2] != '\0') {
                if (idx == HELP_OPT || cmd->opts[idx].kind == CTL_FLAG)
                    return ctl_usage_error(out, "option '-%c' takes no value", s[1]);
                val = s + 2;
            }
        }
        if (idx == HELP_OPT) {
            help = 1;
            continue;
        }
        const ctl_opt_t *o = &cmd->opts[idx];
        if (o->kind != CTL_FLAG && val == NULL) {
            if (i + 1 >= argc)
                return ctl_usage_error(out, "option '%s' needs a value (%s)", shown,
                                       o->metavar ? o->metavar : "VALUE");
            val = argv[++i];
        }
        out->seen[out->nseen].opt = idx;
        out->seen[out->nseen].val = val;
        out->nseen++;
    }
    /* --help wins over every other problem of the command line, as before */
    if (help) {
        ctl_opt_help(cmd, stdout);
        return 1;
    }
    for (size_t k = 0; k < nopts(cmd); k++) {
        if (!cmd->opts[k].required)
            continue;
        size_t j = 0;
        while (j < out->nseen && out->seen[j].opt != (int)k)
            j++;
        if (j == out->nseen)
            return ctl_usage_error(out, "--%s is required", cmd->opts[k].name);
    }
    if ((int)out->noperands > cmd->max_operands)
        return ctl_usage_error(out, "unexpected argument '%s'", out->operands[cmd->max_operands]);
    if ((int)out->noperands < cmd->min_operands)
        return ctl_usage_error(out, "missing argument");
    return 0;
}

void
ctl_args_fini(ctl_args_t *a)
{
    free(a->seen);
    free((void *)a->operands);
    a->seen = NULL;
    a->operands = NULL;
    a->nseen = a->noperands = 0;
}

/* The index of option name in the command's table; a name that is not in
 * it is a bug in the command, caught by any test that runs it. */
static int
opt_index(const ctl_args_t *a, const char *name)
{
    for (size_t i = 0; i < nopts(a->cmd); i++)
        if (strcmp(a->cmd->opts[i].name, name) == 0)
            return (int)i;
    fprintf(stderr, "tallyctl %s: internal error: no option --%s\n", a->cmd->name, name);
    abort();
}

const char *
ctl_opt_str(const ctl_args_t *a, const char *name)
{
    int idx = opt_index(a, name);
    for (size_t i = a->nseen; i-- > 0;)
        if (a->seen[i].opt == idx)
            return a->seen[i].val;
    return NULL;
}

int
ctl_opt_flag(const ctl_args_t *a, const char *name)
{
    int idx = opt_index(a, name);
    for (size_t i = 0; i < a->nseen; i++)
        if (a->seen[i].opt == idx)
            return 1;
    return 0;
}

const char *
ctl_opt_next(const ctl_args_t *a, const char *name, size_t *pos)
{
    int idx = opt_index(a, name);
    while (*pos < a->nseen) {
        const struct ctl_seen *s = &a->seen[(*pos)++];
        if (s->opt == idx)
            return s->val;
    }
    return NULL;
}

int
ctl_opt_int(const ctl_args_t *a, const char *name, long long min, long long max, long long *out)
{
    const char *s = ctl_opt_str(a, name);
    if (s == NULL)
        return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno || v < min || v > max)
        return ctl_usage_error(a, "--%s: want a whole number in %lld..%lld, not '%s'", name, min,
                               max, s);
    *out = v;
    return 0;
}

int
ctl_opt_time(const ctl_args_t *a, const char *name, int end, int64_t *out_ms, int *given)
{
    const char *s = ctl_opt_str(a, name);
    if (given)
        *given = s != NULL;
    if (s == NULL)
        return 0;
    if (ctl_time_parse(s, tally__time_now_ms(), end, out_ms) != 0)
        return ctl_usage_error(a, "--%s: '%s' is not a time; use %s", name, s, CTL_TIME_FORMS);
    return 0;
}
