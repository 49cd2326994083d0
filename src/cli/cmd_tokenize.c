/* `loft tokenize`: text on stdin -> token ids on stdout, or ids -> text with --decode. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "tok/tok.h"

static lt_opt tokenize_opts[] = {
    {"tokenizer", "DIR", "model directory with tokenizer.json (or the tokenizer.json itself) (required)", NULL},
    {"add-special", NULL, "add the post-processor's special tokens (BOS ...), as add_special_tokens=True", NULL},
    {"jsonl", NULL, "line mode: every input line is a JSON string, every output line its ids", NULL},
    {"decode", NULL, "read token ids (separated by spaces) and print their text", NULL},
    {"skip-special", NULL, "with --decode: leave special tokens out of the text", NULL},
    {NULL, NULL, NULL, NULL},
};
static const lt_cmd_info tokenize_cmd = {
    "tokenize",
    "encode stdin to token ids, or decode ids to text\n\n"
    "  default     the whole of stdin is one text; prints its ids on one line\n"
    "  --jsonl     each input line is a JSON string; prints one line of ids per line (empty for none)\n"
    "  --decode    stdin holds ids; prints the decoded text as it is (no newline added)\n"
    "  --decode --jsonl  each input line holds ids; prints each text as a JSON string on its own line",
    "--tokenizer DIR [--add-special] [--jsonl] [--decode [--skip-special]] < input", tokenize_opts};

/* Appends "id id id\n" to out. */
static bool lt_ids_line(const int32_t *ids, int64_t n, char **buf, size_t *cap) {
    size_t need = (size_t)n * 12 + 2;
    if (need > *cap) {
        char *b = realloc(*buf, need);
        if (!b) return false;
        *buf = b;
        *cap = need;
    }
    char *o = *buf;
    for (int64_t i = 0; i < n; i++) {
        if (i) *o++ = ' ';
        char tmp[12];
        int k = 0;
        uint32_t v = (uint32_t)ids[i];
        do tmp[k++] = (char)('0' + v % 10);
        while ((v /= 10));
        while (k) *o++ = tmp[--k];
    }
    *o++ = '\n';
    return fwrite(*buf, 1, (size_t)(o - *buf), stdout) == (size_t)(o - *buf);
}

/* Whitespace-separated ids in s[len] -> *ids (malloc'ed, may be empty). Returns NULL or an error text. */
static const char *lt_read_ids(const char *s, size_t len, int32_t **ids, int64_t *n) {
    int64_t cap = 0;
    *ids = NULL;
    *n = 0;
    for (size_t i = 0; i < len;) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            i++;
            continue;
        }
        if (c < '0' || c > '9') return "expected token ids: non-negative integers separated by spaces";
        int64_t v = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            v = v * 10 + (s[i++] - '0');
            if (v > INT32_MAX) return "a token id is larger than 2147483647";
        }
        if (i < len && !(s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
            return "expected token ids: non-negative integers separated by spaces";
        if (*n == cap) {
            cap = cap ? cap * 2 : 256;
            int32_t *v2 = realloc(*ids, (size_t)cap * sizeof *v2);
            if (!v2) return "out of memory";
            *ids = v2;
        }
        (*ids)[(*n)++] = (int32_t)v;
    }
    return NULL;
}

/* The whole of stdin (NUL-terminated, free()). */
static char *lt_read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (cap - n < 2) {
            char *b = cap < SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!b) break;
            buf = b;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, stdin);
        n += r;
        if (r == 0) {
            if (ferror(stdin)) break;
            buf[n] = 0;
            *len = n;
            return buf;
        }
    }
    free(buf);
    return NULL;
}

static int lt_tok_fail_line(long long line, lt_status st) {
    fflush(stdout);
    fprintf(stderr, "loft tokenize: stdin:%lld: %s\n", line, lt_status_msg(st));
    lt_status_free(st);
    return 1;
}

static int lt_tokenize_lines(const lt_tokenizer *t, bool decode, bool add_special, bool skip_special) {
    char *line = NULL, *out = NULL;
    size_t line_cap = 0, out_cap = 0;
    long long lineno = 0;
    int rc = 0;
    ssize_t got;
    while ((got = getline(&line, &line_cap, stdin)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        if (len && line[len - 1] == '\n') len--;
        int32_t *ids = NULL;
        int64_t n = 0;
        lt_status st = NULL;
        if (!decode) {
            json_error_t err;
            json_t *v = json_loadb(line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
            if (!v) {
                st = lt_errorf(LT_ERR_FORMAT, "column %d: invalid JSON (expected a JSON string): %s", err.column,
                               err.text);
            } else if (!json_is_string(v)) {
                st = lt_errorf(LT_ERR_FORMAT, "expected a JSON string, got another JSON value");
            } else {
                st = lt_tok_encode(t, json_string_value(v), json_string_length(v), add_special, &ids, &n);
            }
            json_decref(v);
            if (!st && !lt_ids_line(ids, n, &out, &out_cap)) st = lt_errorf(LT_ERR_IO, "cannot write to stdout");
        } else {
            const char *bad = lt_read_ids(line, len, &ids, &n);
            char *text = NULL;
            size_t tlen = 0;
            if (bad) st = lt_errorf(LT_ERR_FORMAT, "%s", bad);
            if (!st) st = lt_tok_decode(t, ids, n, skip_special, &text, &tlen);
            if (!st) {
                json_t *s = json_stringn(text, tlen);
                char *js = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
                if (!js || fputs(js, stdout) == EOF || fputc('\n', stdout) == EOF)
                    st = lt_errorf(LT_ERR_IO, "cannot write the decoded text as JSON");
                free(js);
                json_decref(s);
            }
            free(text);
        }
        free(ids);
        if (st) {
            rc = lt_tok_fail_line(lineno, st);
            break;
        }
    }
    if (!rc && ferror(stdin)) {
        fprintf(stderr, "loft tokenize: stdin: read error: %s\n", strerror(errno));
        rc = 1;
    }
    free(line);
    free(out);
    return rc;
}

static int lt_tokenize_whole(const lt_tokenizer *t, bool decode, bool add_special, bool skip_special) {
    size_t len;
    char *in = lt_read_stdin(&len);
    if (!in) {
        fprintf(stderr, "loft tokenize: stdin: cannot read it all (out of memory or read error)\n");
        return 1;
    }
    int32_t *ids = NULL;
    int64_t n = 0;
    lt_status st = NULL;
    int rc = 0;
    if (!decode) {
        st = lt_status_wrapf(lt_tok_encode(t, in, len, add_special, &ids, &n), "stdin");
        char *out = NULL;
        size_t cap = 0;
        if (!st && !lt_ids_line(ids, n, &out, &cap)) st = lt_errorf(LT_ERR_IO, "cannot write to stdout");
        free(out);
    } else {
        const char *bad = lt_read_ids(in, len, &ids, &n);
        if (bad) {
            st = lt_errorf(LT_ERR_FORMAT, "stdin: %s", bad);
        } else {
            char *text = NULL;
            size_t tlen = 0;
            st = lt_status_wrapf(lt_tok_decode(t, ids, n, skip_special, &text, &tlen), "stdin");
            if (!st && fwrite(text, 1, tlen, stdout) != tlen) st = lt_errorf(LT_ERR_IO, "cannot write to stdout");
            free(text);
        }
    }
    if (st) rc = lt_cli_fail("tokenize", st);
    free(ids);
    free(in);
    return rc;
}

int lt_cmd_tokenize(int argc, char **argv) {
    const char *pos[1];
    int npos;
    int rc = lt_args_parse(&tokenize_cmd, argc, argv, pos, 0, &npos);
    if (rc >= 0) return rc;
    const char *dir = lt_opt_get(&tokenize_cmd, "tokenizer");
    if (!dir) {
        fprintf(stderr, "loft tokenize: --tokenizer is required; see 'loft tokenize --help'\n");
        return 2;
    }
    bool decode = lt_opt_get(&tokenize_cmd, "decode") != NULL;
    bool add_special = lt_opt_get(&tokenize_cmd, "add-special") != NULL;
    bool skip_special = lt_opt_get(&tokenize_cmd, "skip-special") != NULL;
    if (decode && add_special) {
        fprintf(stderr, "loft tokenize: --add-special is for encoding; with --decode use --skip-special or nothing\n");
        return 2;
    }
    if (!decode && skip_special) {
        fprintf(stderr, "loft tokenize: --skip-special needs --decode\n");
        return 2;
    }
    lt_tokenizer *t;
    lt_status st = lt_tok_load(dir, &t);
    if (st) return lt_cli_fail("tokenize", st);
    static char outbuf[1 << 20];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    if (lt_opt_get(&tokenize_cmd, "jsonl"))
        rc = lt_tokenize_lines(t, decode, add_special, skip_special);
    else
        rc = lt_tokenize_whole(t, decode, add_special, skip_special);
    if (fflush(stdout) != 0 && !rc) {
        fprintf(stderr, "loft tokenize: cannot write to stdout: %s\n", strerror(errno));
        rc = 1;
    }
    lt_tok_free(t);
    return rc;
}
