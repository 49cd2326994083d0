/* Jinja engine and chat templates (src/tok/jinja_*.c, chat.c).
 *
 * Every expected string below was produced by rendering the same template and context with the
 * npm package @huggingface/jinja 0.5.11 (the reference this engine must match byte for byte):
 * whitespace control, statements, operators, number and JSON formatting, filters, tests, string
 * and dict methods. Then the refusals (line:column in the message), raise_exception, and
 * lt_chat_template_load / lt_chat_render on tokenizer_config.json files written here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "tok/chat.h"

typedef struct jcase {
    const char *src, *ctx, *want;
} jcase;

static const jcase cases[] = {
    /* whitespace control, trim_blocks and lstrip_blocks */
    {"{% if true %}\nyes\n{% endif %}\nend\n", NULL, "yes\nend"},
    {"line1\n    {% if true %}\n    x\n    {% endif %}\nend", NULL, "line1\n    x\nend"},
    {"a {{ 'b' }}\n c\n  {{ 'e' }}  \n", NULL, "a b\n c\n  e  "},
    {"  {{- 'a' }}\n\n{%- if true -%}\n\n  b  \n\n{%- endif -%}\n\n  c", NULL, "abc"},
    {"x {# comment #}\n  {#- trimmed -#}  y", NULL, "x y"},
    {"\t {% if true %} x{% endif %}\015\n {% if true %}y{% endif %}\015 {% if true %}z{% endif %}", NULL,
     " x\015\ny\015z"},
    {"a-}\nb%}\nc#}\nd", NULL, "a-}b%}c#}d"},
    {"x  {%- generation -%}  y {% endgeneration %} z", NULL, "xy  z"},
    {"{%- for m in ['a', 'b'] %}\n  {{- m }}\n{%- endfor %}\n", NULL, "ab"},
    {"keep\n\n", NULL, "keep\n"},
    /* statements */
    {"{% if x %}a{% elif y %}b{% else %}c{% endif %}", "{\"y\":1}", "b"},
    {"{% for x in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ "
     "loop.revindex }};{% endfor %}",
     NULL, "10truefalse33;21falsefalse32;32falsetrue31;"},
    {"{% for x in [1,2,3] %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }}{% endfor %}", NULL, "<1>21<2>32<3>"},
    {"{% for x in [] %}a{% else %}empty{% endfor %}", NULL, "empty"},
    {"{% for x in [1,2,3,4,5] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% "
     "endfor %}",
     NULL, "13"},
    {"{% for x in [1,2,3] %}A{{ x }}{% if x == 2 %}{% break %}{% endif %}B{% endfor %}", NULL, "A1B"},
    {"{% for x in [1,2,3,4] if x is even %}{{ x }}:{{ loop.index }}/{{ loop.length }} {% endfor %}", NULL,
     "2:1/2 4:2/2 "},
    {"{% for k, v in {'b': 1, 'a': 2}.items() %}{{ k }}={{ v }};{% endfor %}{% for k in {'b': 1, 'a': 2} %}{{ k }}{% "
     "endfor %}",
     NULL, "b=1;a=2;ba"},
    {"{% for a in [1,2] %}{% for b in ['x','y'] %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }}|{% "
     "endfor %}",
     NULL, "11x 21y 1|12x 22y 2|"},
    {"{% set x = 'out' %}{% for i in [1] %}{% set x = 'in' %}{{ x }}{% endfor %}{{ x }}", NULL, "inout"},
    {"{% set x = 1 %}{% for i in [1,2] %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}", NULL, "241"},
    {"{% set ns = namespace(n=0, items=[]) %}{% for i in [1,2,3] %}{% set ns.n = ns.n + i %}{% set ns.items = ns.items "
     "+ [i] %}{% endfor %}{{ ns.n }} {{ ns.items }} {{ ns }}",
     NULL, "6 [1, 2, 3] {\"n\": 6, \"items\": [1, 2, 3]}"},
    {"{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set s %}X{{ a }}{% endset %}[{{ s }}]", NULL, "12[X1]"},
    {"{% macro f(a, b=a*2, c='x') %}{{ a }}-{{ b }}-{{ c }};{% endmacro %}{{ f(1) }}{{ f(2, c='y') }}{{ f(a=3, b=0) }}",
     NULL, "1-2-x;2-4-y;3-0-x;"},
    {"{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n }}*{{ fact(n - 1) }}{% endif %}{% endmacro %}{{ fact(4) }}",
     NULL, "4*3*2*1"},
    {"{% macro f() %}{{ y }}{% endmacro %}{% for y in [7] %}{{ f() }}{% endfor %}", NULL, "7"},
    {"{% filter upper %}ab{{ 'c' }}{% endfilter %}", NULL, "ABC"},
    {"{% for x in [1,2,3] %}{% continue %}{% else %}E{% endfor %}", NULL, "E"},
    /* expressions and operators */
    {"{{ 1 + 2 }} {{ 1.5 + 1 }} {{ 2.0 * 2 }} {{ 7 / 2 }} {{ 6 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** "
     "10 }} {{ 2 ** -1 }} {{ -2 ** 2 }}",
     NULL, "3 2.5 4.0 3.5 3.0 3 -4 -1 1024 0.5 4"},
    {"{{ 'a' + 'b' }} {{ 'a' ~ 1 ~ 1.0 ~ true }} {{ 'a' + 1.0 }} {{ [1, 2] ~ 'x' }} {{ {'a': 1} ~ '' }} {{ [1] + [2, "
     "3] }}",
     NULL, "ab a11true a1 1,2x [object Map] [1, 2, 3]"},
    {"{{ 1 == '1' }} {{ [] == '' }} {{ none == undefined_var }} {{ true == 1 }} {{ 1 != 1.0 }} {{ 'a' == 'a' }} {{ [1] "
     "== [1] }}",
     NULL, "true true true true false true false"},
    {"{{ 1 < 2 }} {{ 2.5 >= 3 }} {{ 'b' in 'abc' }} {{ 'x' not in 'abc' }} {{ 1 in [1.0] }} {{ 'k' in {'k': 1} }} {{ 1 "
     "in undefined_var }}",
     NULL, "true false true true true true false"},
    {"{{ true and 'x' }}|{{ 0 or [] }}|{{ not [] }}|{{ [] or 'e' }}|{{ '' and 1 }}|{{ not 1 == 2 }}", NULL,
     "x|[]|true|e||true"},
    {"{{ 'a' if x is defined else 'b' }}|{{ 'c' if false }}|{{ 1 if 0 else 2 if 0 else 3 }}", NULL, "b||3"},
    {"{{ 5 - -3 }} {{ -x }} {{ [1, -1] }} {{ 2*-3 }} {{ +4 }}", "{\"x\":4}", "8 -4 [1, -1] -6 4"},
    {"{{ 'it''s' }} {{ \"a\" 'b' }} {{ 'tab\\there\\n' }} {{ '\\x41\\u00e9\\ud83d\\ude00' }}", NULL,
     "its ab tab\there\n A\303\251\360\237\230\200"},
    {"{{ x.y.z }}|{{ x['a'] }}|{{ x.items }}|{{ l[-1] }}|{{ l.0 }}|{{ l[10] }}|{{ l.length }}",
     "{\"x\":{\"a\":1,\"items\":2},\"l\":[5,6]}", "|1|2|6|5||2"},
    {"{{ [1,2,3,4,5][-2:] }} {{ [1,2,3,4,5][1:-1:2] }} {{ [1,2,3][::-1] }} {{ [1,2,3][5:0:-1] }} {{ [1,2,3][::0] }} {{ "
     "'h\303\251llo'[1:3] }} {{ 'abcdef'[::-2] }}",
     NULL, "[4, 5] [2, 4] [3, 2, 1] [3, 2] [] \303\251l fdb"},
    {"{{ {'b': 1, 'a': [1, 2.5, none, true]} }} {{ [x] }} {{ {'k': x} }}", NULL,
     "{\"b\": 1, \"a\": [1, 2.5, null, true]} [undefined] {\"k\": undefined}"},
    {"{{ 0.1 + 0.2 }} {{ 1/3 }} {{ x }} {{ 100000000000000000000.0 }} {{ 0.0000001 }} {{ 1/0 }} {{ 0/0 }} {{ -0.0 }} "
     "{{ 123456789.0 * 1000000000000 }}",
     "{\"x\":1e+21}",
     "0.30000000000000004 0.3333333333333333 1e+21 100000000000000000000.0 1e-7 Infinity NaN -0.0 "
     "123456788999999995904.0"},
    {"{{ a }} {{ b }} {{ c }} {{ d }}", "{\"a\":1,\"b\":2.5,\"c\":0,\"d\":12345678901234567000}",
     "1 2.5 0 12345678901234567000"},
    {"{{ o }}", "{\"o\":{\"2\":3,\"10\":2,\"b\":1,\"01\":4,\"a\":5}}",
     "{\"2\": 3, \"10\": 2, \"b\": 1, \"01\": 4, \"a\": 5}"},
    /* filters */
    {"{{ '  x  '|trim }}|{{ '\302\240x\343\200\200'|trim }}|{{ 'hello wORLD-x_y'|title }}|{{ 'hELLO'|capitalize }}|{{ "
     "'ab'|upper }}{{ 'AB'|lower }}|{{ '\303\237'|upper }}",
     NULL, "x|x|Hello WORLD-X_y|HELLO|ABab|SS"},
    {"{{ '\303\251\360\237\230\200'|length }} {{ [1, 2]|length }} {{ {'a': 1}|length }} {{ [3, 1, 2]|first }} {{ [3, "
     "1, 2]|last }} {{ [1, 2]|reverse }} {{ [1, 2]|list }}",
     NULL, "3 2 1 3 2 [2, 1] [1, 2]"},
    {"{{ ['b', 'A', 'a']|sort }} {{ [3, 1, 2]|sort(reverse=true) }} {{ ['b', 'A', 'a']|sort(case_sensitive=true) }} {{ "
     "m|sort(attribute='n')|map(attribute='n')|join }}",
     "{\"m\":[{\"n\":3},{\"n\":1},{\"n\":2}]}", "[\"A\", \"a\", \"b\"] [3, 2, 1] [\"A\", \"a\", \"b\"] 123"},
    {"{{ [1, 'a', none, true, 1.0, [2, 3]]|join('-') }}|{{ 'abc'|join('.') }}|{{ [1, 2]|join }}|{{ [1, 1.0, '1', "
     "true]|unique }}",
     NULL, "1-a--true-1-2,3|a.b.c|12|[1, \"1\", true]"},
    {"{{ x|default('y') }}|{{ ''|default('z', true) }}|{{ ''|default('q') }}|{{ none|default('n') }}|{{ "
     "0|default('zero', boolean=true) }}",
     NULL, "y|z|||zero"},
    {"{{ 1.5|int }} {{ -1.5|int }} {{ '12ab'|int }} {{ 'ab'|int(7) }} {{ 1.5|int(0) }} {{ 2|float }} {{ '2.5x'|float "
     "}} {{ 'x'|float }} {{ true|int }} {{ -3|abs }} {{ -3.5|abs }}",
     NULL, "1 -2 12 7 1.5 2.0 2.5 0.0 1 3 3.5"},
    {"{{ 1|string }} {{ 1.0|string }} {{ true|string }} {{ [1.0, 'a']|string }} {{ 'x'|string }}", NULL,
     "1 1.0 true [1, \"a\"] x"},
    {"{{ {'a': 1, 'b': [1, {'c': none}]}|tojson }}|{{ x|tojson }}|{{ 'a\"b\\\\c\\n\\u0001\303\251'|tojson }}|{{ "
     "1.0|tojson }}|{{ undefined_var|tojson }}",
     "{\"x\":[1.5,\"s\",null,true]}",
     "{\"a\": 1, \"b\": [1, {\"c\": null}]}|[1.5, \"s\", null, true]|\"a\\\"b\\\\c\\n\\u0001\303\251\"|1|null"},
    {"{{ {'a': 1, 'b': [1, {'c': none}], 'd': {}, 'e': []}|tojson(indent=2) }}", NULL,
     "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    {\n      \"c\": null\n    }\n  ],\n  \"d\": {},\n  \"e\": []\n}"},
    {"{{ {'a': [1, 2]}|tojson(separators=(',', ':')) }} {{ {'a': [1, 2]}|tojson(indent=0) }} {{ "
     "'\360\237\230\200\303\251'|tojson(ensure_ascii=true) }}",
     NULL, "{\"a\":[1,2]} {\"a\": [1, 2]} \"\\ud83d\\ude00\\u00e9\""},
    {"{{ 'x'|indent(2, true) }}|{{ 'a\nb\n\nc'|indent }}|{{ '\nx\n'|indent(2, blank=true) }}|{{ 'a\nb'|indent(width=1, "
     "first=true) }}",
     NULL, "  x|a\n    b\n\n    c|\n  x\n  | a\n b"},
    {"{{ 'abc'|replace('b', 'X') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 'abc'|replace('', '-') }} {{ 'abc'|safe }}",
     NULL, "aXc bba -a-b-c- abc"},
    {"{{ {'b': 2, 'a': 1}|items }} {{ {'b': 2, 'a': 1}|dictsort }} {{ {'b': 2, 'a': 1}.dictsort(by='value', "
     "reverse=true) }}",
     NULL, "[[\"b\", 2], [\"a\", 1]] [[\"a\", 1], [\"b\", 2]] [[\"b\", 2], [\"a\", 1]]"},
    {"{{ ms|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(', ') }}|{{ ms|rejectattr('role', "
     "'equalto', 'user')|list|length }}|{{ ms|selectattr('x')|list }}|{{ ms|map(attribute='meta.k', "
     "default='\077')|list }}",
     "{\"ms\":[{\"role\":\"user\",\"content\":\"a\",\"meta\":{\"k\":1}},{\"role\":\"assistant\",\"content\":\"b\","
     "\"x\":true},{\"role\":\"user\",\"content\":\"c\"}]}",
     "a, c|1|[{\"role\": \"assistant\", \"content\": \"b\", \"x\": true}]|[1, \"\077\", \"\077\"]"},
    /* tests */
    {"{{ x is defined }}{{ x is undefined }}{{ none is none }}{{ 'a' is string }}{{ 1 is number }}{{ 1.5 is integer "
     "}}{{ [1] is iterable }}{{ 'a' is iterable }}{{ {} is mapping }}{{ {} is sequence }}",
     NULL, "falsetruetruetruetruefalsetruetruetruetrue"},
    {"{{ 3 is odd }}{{ 4 is even }}{{ true is boolean }}{{ false is false }}{{ 1 is true }}{{ 'abc' is lower }}{{ "
     "'Abc' is upper }}{{ 2 is lower }}{{ x is not none }}{{ range is callable }}",
     NULL, "truetruetruetruefalsetruefalsefalsetruetrue"},
    /* methods and globals */
    {"{{ ' x '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '\n a'.lstrip('\n') }}|{{ 'a \n'.rstrip() }}|{{ 'ab'.upper() "
     "}}{{ 'AB'.lower() }}|{{ 'a b'.title() }}|{{ 'ab'.capitalize() }}",
     NULL, "x|xxaxx|a|a|ABab|A B|Ab"},
    {"{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ '  a  b  '.split(none, 1) }} {{ "
     "'a</think>b'.split('</think>')[-1] }}",
     NULL, "[\"a\", \"b\", \"\", \"c\"] [\"a\", \"b\"] [\"a\", \"b,c\"] [\"a\", \"b  \"] b"},
    {"{{ 'abc'.startswith('a') }}{{ 'abc'.startswith(('x', 'ab')) }}{{ 'abc'.endswith('bc') }}{{ 'abc'.replace('b', "
     "'X') }}{{ 'aaa'.replace('a', 'b', 1) }}",
     NULL, "truetruetrueaXcbaa"},
    {"{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 2) }} {{ d.items() }} {{ d.keys() }} {{ d.values() }}",
     "{\"d\":{\"a\":1,\"b\":[2]}}", "1  2 [[\"a\", 1], [\"b\", [2]]] [\"a\", \"b\"] [1, [2]]"},
    {"{{ range(3) }} {{ range(1, 7, 2)|list }} {{ range(3, 0, -1)|list }} {{ range(0)|length }}", NULL,
     "[0, 1, 2] [1, 3, 5] [3, 2, 1] 0"},
    /* found by tools/fuzz/fuzz_jinja.c: an empty slice of a list mapped and joined (the join of
       nothing took a pointer into an empty buffer: UB) */
    {"{{ m[::-0] | map(attribute='role') | join(',') }}|{{ [] | join }}|",
     "{\"m\":[{\"role\":\"user\"}]}", "||"},
    {"{{ namespace(a=1) }} {{ namespace({'a': 1}, b=2) }} {{ true }}{{ True }}{{ False }}{{ none }}{{ None }}|", NULL,
     "{\"a\": 1} {\"a\": 1, \"b\": 2} truetruefalse|"},
};

/* Renders src with ctx (JSON text or NULL); returns the output (malloc) or NULL with *st set. */
static char *render(const char *src, const char *ctx, lt_status *st) {
    lt_jinja *t;
    char *out = NULL;
    *st = lt_jinja_parse(src, strlen(src), "t", &t);
    if (*st) return NULL;
    json_t *c = ctx ? json_loads(ctx, JSON_DECODE_INT_AS_REAL, NULL) : NULL; /* as JSON.parse */
    if (ctx && !c) {
        fprintf(stderr, "bad test context %s\n", ctx);
        exit(1);
    }
    *st = lt_jinja_render(t, c, &out);
    json_decref(c);
    lt_jinja_free(t);
    return out;
}

static void test_reference_cases(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lt_status st;
        char *out = render(cases[i].src, cases[i].ctx, &st);
        CHECKF(!st, "case %zu %s: %s", i, cases[i].src, st ? lt_status_msg(st) : "");
        if (st) {
            lt_status_free(st);
            continue;
        }
        CHECKF(!strcmp(out, cases[i].want), "case %zu %s:\n  got  [%s]\n  want [%s]", i, cases[i].src, out,
               cases[i].want);
        free(out);
    }
}

/* A template that must fail, with a status code and message fragments (position included). */
static void refused(const char *src, const char *ctx, lt_err_code code, const char *frag1, const char *frag2) {
    lt_status st;
    char *out = render(src, ctx, &st);
    CHECKF(st != NULL, "%s rendered [%s] instead of failing", src, out ? out : "");
    free(out);
    if (!st) return;
    const char *m = lt_status_msg(st);
    CHECKF(lt_status_code(st) == code, "%s: code %d, want %d (%s)", src, (int)lt_status_code(st), (int)code, m);
    CHECKF(strstr(m, frag1) != NULL, "%s: message [%s] lacks [%s]", src, m, frag1);
    if (frag2) CHECKF(strstr(m, frag2) != NULL, "%s: message [%s] lacks [%s]", src, m, frag2);
    lt_status_free(st);
}

static void test_refusals(void) {
    /* statements loft does not implement: refused at parse time, at the statement's line:column */
    refused("line1\n{% include 'x.jinja' %}", NULL, LT_ERR_UNSUPPORTED, "t:2:1:", "include");
    refused("{{ x }}\n  {% raw %}{{ y }}{% endraw %}", NULL, LT_ERR_UNSUPPORTED, "t:2:3:", "raw");
    refused("{% for x in y recursive %}{% endfor %}", NULL, LT_ERR_UNSUPPORTED, "t:1:15:", "recursive");
    refused("{{ x is divisibleby(3) }}", NULL, LT_ERR_UNSUPPORTED, "t:1:20:", "divisibleby");
    refused("{{ f(*args) }}", NULL, LT_ERR_UNSUPPORTED, "t:1:6:", "unpacking");
    refused("{% macro m() %}{{ varargs }}{% endmacro %}", NULL, LT_ERR_UNSUPPORTED, "t:1:1:", "varargs");
    refused("{%+ if x %}{% endif %}", NULL, LT_ERR_UNSUPPORTED, "t:1:1:", "{%+");
    refused("{{ '\\ud800' }}", NULL, LT_ERR_UNSUPPORTED, "t:1:5:", "surrogate");
    /* syntax errors */
    refused("a\n  {% if x %}b", NULL, LT_ERR_FORMAT, "t:2:3:", "never closed");
    refused("{{ 'abc }}", NULL, LT_ERR_FORMAT, "t:1:4:", "closing quote");
    refused("{{ x | }}", NULL, LT_ERR_FORMAT, "t:1:8:", "unexpected");
    refused("{% endif %}", NULL, LT_ERR_FORMAT, "t:1:1:", "endif");
    refused("ok {# open comment", NULL, LT_ERR_FORMAT, "t:1:4:", "#}");
    refused("{{ 'a' }} \xff", NULL, LT_ERR_FORMAT, "t:1:11:", "UTF-8");
    refused("{{ '\\q' }}", NULL, LT_ERR_FORMAT, "t:1:5:", "escape");
    refused("{{ x @ y }}", NULL, LT_ERR_FORMAT, "t:1:6:", "unexpected character");
    /* render-time refusals: what the reference cannot do, or what loft does not copy of it */
    refused("{{ 'ok' }}\n{{ 'x'|frobnicate }}", NULL, LT_ERR_UNSUPPORTED, "t:2:8:", "frobnicate");
    refused("{{ x is frob }}", NULL, LT_ERR_UNSUPPORTED, "t:1:9:", "frob");
    refused("{{ 'x'.strip }}", NULL, LT_ERR_UNSUPPORTED, "t:1:7:", "function");
    refused("{{ {'a': 1}|tojson(sort_keys=true) }}", NULL, LT_ERR_UNSUPPORTED, "t:1:13:", "sort_keys");
    refused("{{ 'ΑΣ'|lower }}", NULL, LT_ERR_UNSUPPORTED, "t:1:9:", "sigma");
    refused("{{ '😀'[0] }}", NULL, LT_ERR_UNSUPPORTED, "t:1:7:", "surrogate");
    /* errors the reference raises too */
    refused("{{ x + 1 }}", NULL, LT_ERR_INVALID_ARG, "t:1:6:", "undefined");
    refused("{{ 'a' ~ none }}", NULL, LT_ERR_INVALID_ARG, "t:1:8:", "null");
    refused("{% for x in y %}{% endfor %}", NULL, LT_ERR_INVALID_ARG, "t:1:13:", "UndefinedValue");
    refused("{{ (1, 2) }}", NULL, LT_ERR_INVALID_ARG, "t:1:5:", "TupleValue");
    refused("{% break %}", NULL, LT_ERR_INVALID_ARG, "break", NULL);
    refused("{{ 1 < 'a' }}", NULL, LT_ERR_INVALID_ARG, "t:1:6:", "Unknown operator");
    refused("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", NULL, LT_ERR_INVALID_ARG, "t:1:34:", "not more than 1");
    refused("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", NULL, LT_ERR_INVALID_ARG, "t:1:19:", "deep");
    refused("{% for i in range(100000000) %}{% endfor %}", NULL, LT_ERR_INVALID_ARG, "t:1:13:", "too long");
    refused("{{ true }}", "{\"true\": 1}", LT_ERR_INVALID_ARG, "true", "already declared");
    /* raise_exception: LT_ERR_INVALID_ARG carrying the template's message and position */
    refused(
        "{% if messages[0].role != 'user' %}\n  {{ raise_exception('Conversation roles must alternate') }}{% endif %}",
        "{\"messages\": [{\"role\": \"assistant\"}]}", LT_ERR_INVALID_ARG,
        "t:2:6:", "Conversation roles must alternate");
    /* nesting beyond the parser's limit is refused, not a stack overflow */
    char deep[1200] = "{{ ";
    for (int i = 0; i < 400; i++) strcat(deep, "(");
    strcat(deep, "1");
    for (int i = 0; i < 400; i++) strcat(deep, ")");
    strcat(deep, " }}");
    refused(deep, NULL, LT_ERR_UNSUPPORTED, "nesting", NULL);
}

/* Loose ends of the value model: the reference treats JSON 1.0 as the integer 1, keeps the input's
 * key order except that array-index keys come first, and prints undefined members as "undefined". */
static void test_values(void) {
    lt_status st;
    char *out = render("{{ x }}|{{ x|tojson }}", "{\"x\": {\"b\": 1.0, \"2\": [1.5, -0.0], \"a\": null}}", &st);
    CHECK_OK(st);
    if (out)
        CHECKF(!strcmp(out, "{\"2\": [1.5, 0], \"b\": 1, \"a\": null}|{\"2\": [1.5, 0], \"b\": 1, \"a\": null}"), "%s",
               out);
    free(out);
    out = render("{{ strftime_now('%Y') | length }}{{ strftime_now('%S %%') }}", NULL, &st);
    CHECK_OK(st);
    if (out) CHECKF(!strcmp(out, "4%S %"), "strftime_now: %s", out); /* the year has 4 digits; %S is left as is */
    free(out);
    /* a template parsed once renders many times, each render independent (reference: "4" for [2, 2]) */
    lt_jinja *t;
    const char *sum = "{% set ns = namespace(n=0) %}{% for x in xs %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}";
    CHECK_OK(lt_jinja_parse(sum, strlen(sum), "t", &t));
    for (int i = 1; t && i <= 3; i++) {
        char ctx[64];
        snprintf(ctx, sizeof ctx, "{\"xs\": [%d, %d]}", i, i);
        json_t *c = json_loads(ctx, 0, NULL);
        CHECK_OK(lt_jinja_render(t, c, &out));
        char want[16];
        snprintf(want, sizeof want, "%d", 2 * i);
        if (out) CHECKF(!strcmp(out, want), "render %d: %s", i, out);
        free(out);
        json_decref(c);
    }
    lt_jinja_free(t);
}

static const char chat_tmpl[] =
    "{%- if tools %}{{- '<|im_start|>system\\n# Tools' }}{%- for t in tools %}{{- '\\n' + t | tojson }}{%- endfor "
    "%}{{- '<|im_end|>\\n' }}{%- endif %}\n"
    "{%- set ns = namespace(last_user=messages|length - 1) %}\n"
    "{%- for m in messages[::-1] %}{%- if m.role == 'user' and ns.last_user == messages|length - 1 %}{%- set "
    "ns.last_user = (messages|length - 1) - loop.index0 %}{%- endif %}{%- endfor %}\n"
    "{%- for m in messages %}\n"
    "    {%- if m.role == 'assistant' and '</think>' in m.content %}\n"
    "        {%- set content = m.content.split('</think>')[-1].lstrip('\\n') %}\n"
    "        {%- set reasoning = m.content.split('</think>')[0].split('<think>')[-1].strip('\\n') %}\n"
    "    {%- else %}\n"
    "        {%- set content = m.content %}\n"
    "        {%- set reasoning = '' %}\n"
    "    {%- endif %}\n"
    "    {%- if m.role == 'assistant' and loop.index0 > ns.last_user %}\n"
    "        {{- '<|im_start|>assistant\\n<think>\\n' + reasoning + '\\n</think>\\n\\n' + content + '<|im_end|>\\n' "
    "}}\n"
    "    {%- else %}\n"
    "        {{- '<|im_start|>' + m.role + '\\n' + content + '<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "    {%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- "
    "endif %}\n"
    "{%- endif %}\n"
    "{{- eos_token if bos_token is not defined else bos_token }}";
static const char chat_msgs[] = "[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi "
                                "\360\237\221\213\"},{\"role\":\"assistant\",\"content\":\"<think>\\nplan\\n</"
                                "think>\\n\\nHello!\"},{\"role\":\"user\",\"content\":\"Bye\"},{\"role\":\"assistant\","
                                "\"content\":\"<think>x</think>\\n\\nCiao\"}]";
static const char chat_tools[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"b\":1,\"a\":[1.5,\"\303\251\"]}}}]";
static const char chat_want_plain[] = "<|im_start|>system\n"
                                      "Be brief.<|im_end|>\n"
                                      "<|im_start|>user\n"
                                      "Hi \360\237\221\213<|im_end|>\n"
                                      "<|im_start|>assistant\n"
                                      "Hello!<|im_end|>\n"
                                      "<|im_start|>user\n"
                                      "Bye<|im_end|>\n"
                                      "<|im_start|>assistant\n"
                                      "<think>\n"
                                      "x\n"
                                      "</think>\n"
                                      "\n"
                                      "Ciao<|im_end|>\n"
                                      "<|im_end|>";
static const char chat_want_nothink[] = "<|im_start|>system\n"
                                        "Be brief.<|im_end|>\n"
                                        "<|im_start|>user\n"
                                        "Hi \360\237\221\213<|im_end|>\n"
                                        "<|im_start|>assistant\n"
                                        "Hello!<|im_end|>\n"
                                        "<|im_start|>user\n"
                                        "Bye<|im_end|>\n"
                                        "<|im_start|>assistant\n"
                                        "<think>\n"
                                        "x\n"
                                        "</think>\n"
                                        "\n"
                                        "Ciao<|im_end|>\n"
                                        "<|im_start|>assistant\n"
                                        "<think>\n"
                                        "\n"
                                        "</think>\n"
                                        "\n"
                                        "<|im_end|>";
static const char chat_want_tools[] = "<|im_start|>system\n"
                                      "# Tools\n"
                                      "{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": "
                                      "{\"b\": 1, \"a\": [1.5, \"\303\251\"]}}}<|im_end|>\n"
                                      "<|im_start|>system\n"
                                      "Be brief.<|im_end|>\n"
                                      "<|im_start|>user\n"
                                      "Hi \360\237\221\213<|im_end|>\n"
                                      "<|im_start|>assistant\n"
                                      "Hello!<|im_end|>\n"
                                      "<|im_start|>user\n"
                                      "Bye<|im_end|>\n"
                                      "<|im_start|>assistant\n"
                                      "<think>\n"
                                      "x\n"
                                      "</think>\n"
                                      "\n"
                                      "Ciao<|im_end|>\n"
                                      "<|im_start|>assistant\n"
                                      "<|im_end|>";
static const char chat_want_bos[] = "<|im_start|>system\n"
                                    "Be brief.<|im_end|>\n"
                                    "<|im_start|>user\n"
                                    "Hi \360\237\221\213<|im_end|>\n"
                                    "<|im_start|>assistant\n"
                                    "Hello!<|im_end|>\n"
                                    "<|im_start|>user\n"
                                    "Bye<|im_end|>\n"
                                    "<|im_start|>assistant\n"
                                    "<think>\n"
                                    "x\n"
                                    "</think>\n"
                                    "\n"
                                    "Ciao<|im_end|>\n"
                                    "<|im_start|>assistant\n"
                                    "<s>";

static char *write_config(const char *dir, json_t *cfg) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    if (system(cmd) != 0) return NULL;
    char *path = lt_path_join(dir, "tokenizer_config.json");
    if (cfg) json_dump_file(cfg, path, JSON_INDENT(1));
    json_decref(cfg);
    return path;
}

static char *chat(const lt_chat_template *ct, const char *msgs, const lt_chat_opts *o, lt_status *st) {
    json_t *m = json_loads(msgs, 0, NULL);
    char *out = NULL;
    *st = lt_chat_render(ct, m, o, &out);
    json_decref(m);
    return out;
}

static void test_chat(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/test_jinja_tok", lt_test_tmpdir());
    /* a string template, special tokens as strings (Qwen3 has bos_token null) */
    char *path = write_config(dir, json_pack("{s:s, s:n, s:s, s:f}", "chat_template", chat_tmpl, "bos_token",
                                             "eos_token", "<|im_end|>", "model_max_length", 1e30));
    lt_chat_template *ct;
    CHECK_OK(lt_chat_template_load(dir, NULL, &ct));
    lt_status st;
    lt_chat_opts o = {.add_generation_prompt = false, .enable_thinking = -1};
    char *out = chat(ct, chat_msgs, &o, &st);
    CHECK_OK(st);
    if (out) CHECKF(!strcmp(out, chat_want_plain), "plain:\n%s", out);
    free(out);
    o = (lt_chat_opts){.add_generation_prompt = true, .enable_thinking = 0};
    out = chat(ct, chat_msgs, &o, &st);
    CHECK_OK(st);
    if (out) CHECKF(!strcmp(out, chat_want_nothink), "enable_thinking=false:\n%s", out);
    free(out);
    json_t *tools = json_loads(chat_tools, 0, NULL);
    o = (lt_chat_opts){.add_generation_prompt = true, .enable_thinking = -1, .tools = tools};
    out = chat(ct, chat_msgs, &o, &st);
    CHECK_OK(st);
    if (out) CHECKF(!strcmp(out, chat_want_tools), "tools:\n%s", out);
    free(out);
    json_t *extra = json_pack("{s:s}", "add_generation_prompt", "twice");
    o = (lt_chat_opts){.enable_thinking = -1, .extra = extra};
    out = chat(ct, chat_msgs, &o, &st);
    CHECK_ERR(st, "add_generation_prompt");
    free(out);
    json_decref(extra);
    json_decref(tools);
    out = chat(ct, "{\"role\": \"user\"}", &o, &st); /* messages must be a list */
    CHECK_ERR(st, "list");
    free(out);
    lt_chat_template_free(ct);
    free(path);

    /* the list-of-named-templates form, AddedToken objects for the special tokens */
    path =
        write_config(dir, json_pack("{s:[{s:s,s:s},{s:s,s:s}], s:{s:s,s:b}, s:{s:s}}", "chat_template", "name",
                                    "tool_use", "template", "TOOLS", "name", "default", "template", chat_tmpl,
                                    "bos_token", "content", "<s>", "lstrip", 0, "eos_token", "content", "<|im_end|>"));
    CHECK_OK(lt_chat_template_load(dir, NULL, &ct));
    o = (lt_chat_opts){.add_generation_prompt = true, .enable_thinking = 1};
    out = chat(ct, chat_msgs, &o, &st);
    CHECK_OK(st);
    if (out) CHECKF(!strcmp(out, chat_want_bos), "named templates + AddedToken:\n%s", out);
    free(out);
    lt_chat_template_free(ct);
    free(path);

    /* no template anywhere: refused with a message saying how to give one; a file replaces it */
    path = write_config(dir, json_pack("{s:s, s:s}", "bos_token", "<s>", "eos_token", "</s>"));
    CHECK_ERR(lt_chat_template_load(dir, NULL, &ct), "--chat-template FILE");
    char *file = lt_path_join(dir, "override.jinja");
    FILE *f = fopen(file, "w");
    if (f) {
        fputs("{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}\n{% endfor %}", f);
        fclose(f);
    }
    CHECK_OK(lt_chat_template_load(dir, file, &ct));
    o = (lt_chat_opts){.enable_thinking = -1};
    out = chat(ct, "[{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]", &o,
               &st);
    CHECK_OK(st);
    if (out) CHECKF(!strcmp(out, "[user] hi</s>\n[assistant] yo</s>\n"), "override: %s", out);
    free(out);
    lt_chat_template_free(ct);
    /* a template error names the override file and the line:column in it */
    f = fopen(file, "w");
    if (f) {
        fputs("ok\n{% include 'other' %}", f);
        fclose(f);
    }
    CHECK_ERR(lt_chat_template_load(dir, file, &ct), "override.jinja:2:1:");
    /* newer transformers: chat_template.jinja beside the config */
    char *side = lt_path_join(dir, "chat_template.jinja");
    f = fopen(side, "w");
    if (f) {
        fputs("{{ bos_token }}{{ messages|length }}", f);
        fclose(f);
    }
    CHECK_OK(lt_chat_template_load(dir, NULL, &ct));
    out = chat(ct, "[]", &o, &st);
    CHECK_OK(st);
    if (out) CHECKF(!strcmp(out, "<s>0"), "chat_template.jinja: %s", out);
    free(out);
    lt_chat_template_free(ct);
    free(side);
    free(file);
    free(path);

    /* duplicate keys and bad token types are format errors naming the file */
    path = write_config(dir, NULL);
    f = fopen(path, "w");
    if (f) {
        fputs("{\"chat_template\": \"a\", \"chat_template\": \"b\"}", f);
        fclose(f);
    }
    CHECK_ERR(lt_chat_template_load(dir, NULL, &ct), "tokenizer_config.json");
    free(path);
    path = write_config(dir, json_pack("{s:s, s:i}", "chat_template", "x", "eos_token", 5));
    CHECK_ERR(lt_chat_template_load(dir, NULL, &ct), "eos_token");
    free(path);
    CHECK_ERR(lt_chat_template_load(NULL, NULL, &ct), "template");
}

int main(void) {
    test_reference_cases();
    test_refusals();
    test_values();
    test_chat();
    TEST_MAIN_END();
}
