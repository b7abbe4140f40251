// SPDX-License-Identifier: Apache-2.0
/*
 * OTLP JSON metrics -> Prometheus text. The body is parsed with json-c, every
 * point becomes a series of a family (name, type, help), and the families are
 * written at the end, so that one family is never split even when several
 * resources carry it. This runs on the UI thread at scrape time, never on the
 * drain path, so clarity wins over speed here.
 */
#include "prom.h"

#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "htable.h"
#include "log.h"
#include "util.h"

#define PROM_TARGET_INFO      "target_info"
#define PROM_TARGET_INFO_HELP "Target metadata"
/* Labels of one series beyond which the rest are left out (OTLP has no limit). */
#define PROM_MAX_LABELS 128

/* ---- numbers ------------------------------------------------------------- */

void prom_format_double(char *buf, size_t size, double v)
{
	char e[48], digits[24];
	int nd = 0, x, dp, p;
	const char *s, *ep;
	size_t o = 0;
	bool neg;

	if (!size)
		return;
	if (isnan(v)) {
		snprintf(buf, size, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, size, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	if (v == 0) {
		snprintf(buf, size, "%s", signbit(v) ? "-0" : "0");
		return;
	}
	/* The shortest decimal that reads back as v, as Go's 'g' with precision -1. */
	for (p = 1; p <= 17; p++) {
		snprintf(e, sizeof(e), "%.*e", p - 1, v);
		if (strtod(e, NULL) == v)
			break;
	}
	neg = e[0] == '-';
	s = e + neg;
	for (; *s && *s != 'e'; s++) {
		if (*s >= '0' && *s <= '9' && nd < (int)sizeof(digits) - 1)
			digits[nd++] = *s;
	}
	ep = *s == 'e' ? s + 1 : "0";
	x = atoi(ep);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';
	dp = x + 1;

#define OUT(c)                          \
	do {                            \
		if (o + 1 < size)       \
			buf[o++] = (c); \
	} while (0)
	if (neg)
		OUT('-');
	if (x < -4 || x >= 6) {
		int ax = x < 0 ? -x : x;
		char xd[8];
		int n = snprintf(xd, sizeof(xd), "%02d", ax);

		OUT(digits[0]);
		if (nd > 1) {
			OUT('.');
			for (int i = 1; i < nd; i++)
				OUT(digits[i]);
		}
		OUT('e');
		OUT(x < 0 ? '-' : '+');
		for (int i = 0; i < n; i++)
			OUT(xd[i]);
	} else if (dp <= 0) {
		OUT('0');
		OUT('.');
		for (int i = 0; i < -dp; i++)
			OUT('0');
		for (int i = 0; i < nd; i++)
			OUT(digits[i]);
	} else {
		for (int i = 0; i < MAX(nd, dp); i++) {
			if (i == dp)
				OUT('.');
			OUT(i < nd ? digits[i] : '0');
		}
	}
#undef OUT
	buf[o] = '\0';
}

static void put_double(struct jbuf *out, double v)
{
	char tmp[48];

	prom_format_double(tmp, sizeof(tmp), v);
	jbuf_puts(out, tmp);
}

/* ---- names --------------------------------------------------------------- */

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

#define MAX_TOKENS    64
#define MAX_TOKEN_LEN 256

struct tokens {
	char tok[MAX_TOKENS][MAX_TOKEN_LEN];
	int n;
};

static void tokens_add(struct tokens *t, const char *s, size_t len)
{
	if (t->n >= MAX_TOKENS || !len)
		return;
	len = MIN(len, (size_t)MAX_TOKEN_LEN - 1);
	memcpy(t->tok[t->n], s, len);
	t->tok[t->n][len] = '\0';
	t->n++;
}

/* Tokens of s: maximal runs of letters and digits. */
static void tokens_split(struct tokens *t, const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t j;

		while (i < len && !is_alnum(s[i]))
			i++;
		j = i;
		while (j < len && is_alnum(s[j]))
			j++;
		tokens_add(t, s + i, j - i);
		i = j;
	}
}

static bool tokens_has(const struct tokens *t, const char *s)
{
	for (int i = 0; i < t->n; i++)
		if (!strcmp(t->tok[i], s))
			return true;
	return false;
}

static void tokens_remove(struct tokens *t, const char *s)
{
	int k = 0;

	for (int i = 0; i < t->n; i++) {
		if (!strcmp(t->tok[i], s))
			continue;
		if (k != i)
			memcpy(t->tok[k], t->tok[i], sizeof(t->tok[i]));
		k++;
	}
	t->n = k;
}

struct unit_map {
	const char *otel, *prom;
};

static const struct unit_map unit_map[] = {
	{ "d", "days" },
	{ "h", "hours" },
	{ "min", "minutes" },
	{ "s", "seconds" },
	{ "ms", "milliseconds" },
	{ "us", "microseconds" },
	{ "ns", "nanoseconds" },
	{ "By", "bytes" },
	{ "KiBy", "kibibytes" },
	{ "MiBy", "mebibytes" },
	{ "GiBy", "gibibytes" },
	{ "TiBy", "tibibytes" },
	{ "KBy", "kilobytes" },
	{ "MBy", "megabytes" },
	{ "GBy", "gigabytes" },
	{ "TBy", "terabytes" },
	{ "m", "meters" },
	{ "V", "volts" },
	{ "A", "amperes" },
	{ "J", "joules" },
	{ "W", "watts" },
	{ "g", "grams" },
	{ "Cel", "celsius" },
	{ "Hz", "hertz" },
	{ "1", "" },
	{ "%", "percent" },
};

static const struct unit_map per_unit_map[] = {
	{ "s", "second" }, { "m", "minute" }, { "h", "hour" }, { "d", "day" },
	{ "w", "week" },   { "mo", "month" }, { "y", "year" },
};

static const char *map_unit(const struct unit_map *map, size_t n, const char *u)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(map[i].otel, u))
			return map[i].prom;
	return u;
}

/* Trims spaces; the result points into buf. */
static char *trim(char *buf)
{
	char *e;

	while (*buf == ' ' || *buf == '\t')
		buf++;
	e = buf + strlen(buf);
	while (e > buf && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return buf;
}

/* One unit part: mapped, cleaned up to alnum runs joined by '_'. Empty when annotated. */
static void unit_token(char *dst, size_t size, const char *part, bool per)
{
	const char *mapped;
	struct tokens *t;
	size_t o = 0;

	dst[0] = '\0';
	if (!*part || strpbrk(part, "{}"))
		return;
	mapped = per ? map_unit(per_unit_map, ARRAY_SIZE(per_unit_map), part) :
		       map_unit(unit_map, ARRAY_SIZE(unit_map), part);
	t = calloc(1, sizeof(*t));
	if (!t)
		return;
	tokens_split(t, mapped, strlen(mapped));
	for (int i = 0; i < t->n; i++) {
		int n = snprintf(dst + o, size - o, "%s%s", i ? "_" : "", t->tok[i]);

		if (n < 0 || (size_t)n >= size - o)
			break;
		o += (size_t)n;
	}
	free(t);
}

void prom_metric_name(struct jbuf *out, const char *name, const char *unit, enum prom_source src)
{
	char ubuf[MAX_TOKEN_LEN], main_tok[MAX_TOKEN_LEN], per_tok[MAX_TOKEN_LEN];
	struct tokens *t = calloc(1, sizeof(*t));
	char *slash, *main_u, *per_u = NULL;
	size_t start = out->len;

	if (!t) {
		out->failed = true;
		return;
	}
	tokens_split(t, name, strlen(name));
	snprintf(ubuf, sizeof(ubuf), "%s", unit ? unit : "");
	slash = strchr(ubuf, '/');
	if (slash) {
		*slash = '\0';
		per_u = trim(slash + 1);
	}
	main_u = trim(ubuf);
	unit_token(main_tok, sizeof(main_tok), main_u, false);
	if (*main_tok && !tokens_has(t, main_tok))
		tokens_add(t, main_tok, strlen(main_tok));
	if (per_u) {
		unit_token(per_tok, sizeof(per_tok), per_u, true);
		if (*per_tok && !tokens_has(t, per_tok)) {
			tokens_add(t, "per", 3);
			tokens_add(t, per_tok, strlen(per_tok));
		}
	}
	if (src == PROM_SRC_MONOTONIC_SUM) {
		tokens_remove(t, "total");
		tokens_add(t, "total", 5);
	}
	if (src == PROM_SRC_GAUGE && unit && !strcmp(unit, "1")) {
		tokens_remove(t, "ratio");
		tokens_add(t, "ratio", 5);
	}
	for (int i = 0; i < t->n; i++) {
		if (i)
			jbuf_putc(out, '_');
		else if (t->tok[0][0] >= '0' && t->tok[0][0] <= '9')
			jbuf_putc(out, '_');
		jbuf_puts(out, t->tok[i]);
	}
	if (out->len == start)
		jbuf_putc(out, '_'); /* a name of no letter or digit at all */
	free(t);
}

void prom_label_name(struct jbuf *out, const char *key)
{
	if (!*key) {
		jbuf_putc(out, '_');
		return;
	}
	if (key[0] >= '0' && key[0] <= '9')
		jbuf_puts(out, "key_");
	else if (key[0] == '_')
		jbuf_puts(out, "key"); /* "_x" -> "key_x"; "__x" is reserved to Prometheus */
	for (const char *p = key; *p; p++)
		jbuf_putc(out, is_alnum(*p) || *p == '_' ? *p : '_');
}

/* ---- labels -------------------------------------------------------------- */

struct label {
	char *name;
	char *value;
};

struct labels {
	struct label l[PROM_MAX_LABELS];
	int n;
	bool failed;
};

static void labels_clear(struct labels *ls)
{
	for (int i = 0; i < ls->n; i++) {
		free(ls->l[i].name);
		free(ls->l[i].value);
	}
	ls->n = 0;
	ls->failed = false;
}

/* Adds name=value; a second value for the same name is joined with ';'. Empty values are
 * left out: Prometheus treats them as absent. */
static void labels_add(struct labels *ls, const char *name, const char *value)
{
	struct label *l;

	if (!value || !*value)
		return;
	for (int i = 0; i < ls->n; i++) {
		size_t a, b;
		char *v;

		if (strcmp(ls->l[i].name, name))
			continue;
		a = strlen(ls->l[i].value);
		b = strlen(value);
		v = realloc(ls->l[i].value, a + b + 2);
		if (!v) {
			ls->failed = true;
			return;
		}
		v[a] = ';';
		memcpy(v + a + 1, value, b + 1);
		ls->l[i].value = v;
		return;
	}
	if (ls->n >= PROM_MAX_LABELS)
		return;
	l = &ls->l[ls->n];
	l->name = strdup(name);
	l->value = strdup(value);
	if (!l->name || !l->value) {
		free(l->name);
		free(l->value);
		ls->failed = true;
		return;
	}
	ls->n++;
}

static void labels_add_key(struct labels *ls, const char *key, const char *value)
{
	struct jbuf n;

	jbuf_init(&n);
	prom_label_name(&n, key);
	if (jbuf_cstr(&n))
		labels_add(ls, n.data, value);
	else
		ls->failed = true;
	jbuf_free(&n);
}

static int label_cmp(const void *a, const void *b)
{
	return strcmp(((const struct label *)a)->name, ((const struct label *)b)->name);
}

static void put_escaped(struct jbuf *out, const char *s, bool quote)
{
	for (; *s; s++) {
		switch (*s) {
		case '\\':
			jbuf_puts(out, "\\\\");
			break;
		case '\n':
			jbuf_puts(out, "\\n");
			break;
		case '"':
			if (quote) {
				jbuf_puts(out, "\\\"");
				break;
			}
			/* fallthrough */
		default:
			jbuf_putc(out, *s);
		}
	}
}

/* name="value",... sorted by name, no braces. */
static void labels_render(struct labels *ls, struct jbuf *out)
{
	qsort(ls->l, (size_t)ls->n, sizeof(ls->l[0]), label_cmp);
	for (int i = 0; i < ls->n; i++) {
		if (i)
			jbuf_putc(out, ',');
		jbuf_puts(out, ls->l[i].name);
		jbuf_puts(out, "=\"");
		put_escaped(out, ls->l[i].value, true);
		jbuf_putc(out, '"');
	}
}

/* ---- OTLP JSON access -------------------------------------------------------- */

static struct json_object *get(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_is_type(o, json_type_object))
		return NULL;
	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static size_t arr_len(struct json_object *a)
{
	return a && json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v = get(o, key);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* A JSON number, or a string holding one (64-bit integers, "NaN", "Infinity"). */
static double num(struct json_object *v)
{
	const char *s;

	if (!v)
		return 0;
	switch (json_object_get_type(v)) {
	case json_type_int:
		return (double)json_object_get_int64(v);
	case json_type_double:
		return json_object_get_double(v);
	case json_type_string:
		s = json_object_get_string(v);
		if (!strcmp(s, "Infinity"))
			return INFINITY;
		if (!strcmp(s, "-Infinity"))
			return -INFINITY;
		return strtod(s, NULL);
	default:
		return 0;
	}
}

static uint64_t num_u64(struct json_object *v)
{
	if (v && json_object_is_type(v, json_type_string))
		return strtoull(json_object_get_string(v), NULL, 10);
	if (v && json_object_is_type(v, json_type_int))
		return (uint64_t)json_object_get_int64(v);
	return (uint64_t)num(v);
}

/* An AnyValue as a label value (the Collector's AsString); the caller frees it. */
static char *any_string(struct json_object *v)
{
	struct json_object *x;
	char tmp[48];

	if ((x = get(v, "stringValue")))
		return strdup(json_object_get_string(x));
	if ((x = get(v, "intValue"))) {
		if (json_object_is_type(x, json_type_string))
			return strdup(json_object_get_string(x));
		snprintf(tmp, sizeof(tmp), "%" PRId64, json_object_get_int64(x));
		return strdup(tmp);
	}
	if ((x = get(v, "doubleValue"))) {
		prom_format_double(tmp, sizeof(tmp), num(x));
		return strdup(tmp);
	}
	if ((x = get(v, "boolValue")))
		return strdup(json_object_get_boolean(x) ? "true" : "false");
	if ((x = get(v, "bytesValue")))
		return strdup(json_object_get_string(x));
	if ((x = get(v, "arrayValue")) || (x = get(v, "kvlistValue")))
		return strdup(json_object_to_json_string_ext(x, JSON_C_TO_STRING_PLAIN));
	return strdup("");
}

/* ---- families and series ---------------------------------------------------- */

struct series {
	struct hnode node;
	struct family *fam;
	struct series *next;
	char *labels;
	double value;
	/* histograms */
	double *bounds; /* sorted, distinct */
	uint64_t *cum; /* cumulative count at each bound */
	size_t n_bounds;
	uint64_t count;
	double sum;
};

struct family {
	struct hnode node;
	char *name;
	char *help;
	enum prom_source src;
	struct series *head, *tail;
};

struct conv {
	struct htable families;
	struct htable series;
	struct family **list;
	size_t n, cap;
	int err;
	uint64_t dropped; /* points left out: type conflicts */
};

static const char *family_type(enum prom_source src)
{
	switch (src) {
	case PROM_SRC_MONOTONIC_SUM:
		return "counter";
	case PROM_SRC_HISTOGRAM:
		return "histogram";
	default:
		return "gauge";
	}
}

static struct family *family_get(struct conv *c, const char *name, const char *help,
				 enum prom_source src)
{
	uint64_t h = hash_bytes(name, strlen(name), 0);
	struct family *f, **list;
	struct hnode *n;

	for (n = htable_first(&c->families, h); n; n = htable_next_same(n, h)) {
		f = container_of(n, struct family, node);
		if (strcmp(f->name, name))
			continue;
		/* Sums of both kinds and gauges of one name: the first type stays. */
		if (strcmp(family_type(f->src), family_type(src))) {
			c->dropped++;
			return NULL;
		}
		return f;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 32;

		list = realloc(c->list, cap * sizeof(*list));
		if (!list)
			goto nomem;
		c->list = list;
		c->cap = cap;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		goto nomem;
	f->name = strdup(name);
	f->help = strdup(help ? help : "");
	f->src = src;
	if (!f->name || !f->help) {
		free(f->name);
		free(f->help);
		free(f);
		goto nomem;
	}
	htable_insert(&c->families, &f->node, h);
	c->list[c->n++] = f;
	return f;
nomem:
	c->err = -ENOMEM;
	return NULL;
}

static uint64_t series_hash(const struct family *f, const char *labels)
{
	return hash_bytes(labels, strlen(labels), (uint64_t)(uintptr_t)f);
}

/* The series of f with these labels; *created tells whether it is new. */
static struct series *series_get(struct conv *c, struct family *f, const char *labels,
				 bool *created)
{
	uint64_t h = series_hash(f, labels);
	struct series *s;
	struct hnode *n;

	*created = false;
	for (n = htable_first(&c->series, h); n; n = htable_next_same(n, h)) {
		s = container_of(n, struct series, node);
		if (s->fam == f && !strcmp(s->labels, labels))
			return s;
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->labels = strdup(labels))) {
		free(s);
		c->err = -ENOMEM;
		return NULL;
	}
	s->fam = f;
	htable_insert(&c->series, &s->node, h);
	if (f->tail)
		f->tail->next = s;
	else
		f->head = s;
	f->tail = s;
	*created = true;
	return s;
}

static void conv_free(struct conv *c)
{
	for (size_t i = 0; i < c->n; i++) {
		struct family *f = c->list[i];
		struct series *s, *next;

		for (s = f->head; s; s = next) {
			next = s->next;
			free(s->labels);
			free(s->bounds);
			free(s->cum);
			free(s);
		}
		free(f->name);
		free(f->help);
		free(f);
	}
	free(c->list);
	htable_free(&c->families);
	htable_free(&c->series);
}

/* ---- conversion -------------------------------------------------------------- */

struct res_ctx {
	char *job;
	char *instance;
	const char *scope_name;
	const char *scope_version;
};

static void point_labels(struct labels *ls, struct json_object *attrs, const struct res_ctx *r)
{
	size_t n = arr_len(attrs);

	labels_clear(ls);
	for (size_t i = 0; i < n; i++) {
		struct json_object *a = json_object_array_get_idx(attrs, i);
		const char *key = get_str(a, "key");
		char *v;

		if (!key)
			continue;
		v = any_string(get(a, "value"));
		if (!v) {
			ls->failed = true;
			continue;
		}
		labels_add_key(ls, key, v);
		free(v);
	}
	labels_add(ls, "otel_scope_name", r->scope_name);
	labels_add(ls, "otel_scope_version", r->scope_version);
	labels_add(ls, "job", r->job);
	labels_add(ls, "instance", r->instance);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Cumulative buckets from OTLP's per-bucket counts, bounds sorted and de-duplicated. */
static int histogram_fill(struct series *s, struct json_object *p)
{
	struct json_object *jb = get(p, "explicitBounds"), *jc = get(p, "bucketCounts");
	size_t nb = arr_len(jb), nc = arr_len(jc), k = 0;
	struct {
		double bound;
		size_t idx;
	} *order = NULL;

	s->count = num_u64(get(p, "count"));
	s->sum = num(get(p, "sum"));
	if (!nb || !nc)
		return 0;
	order = calloc(nb, sizeof(*order));
	s->bounds = calloc(nb, sizeof(*s->bounds));
	s->cum = calloc(nb, sizeof(*s->cum));
	if (!order || !s->bounds || !s->cum) {
		free(order);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nb; i++) {
		order[i].bound = num(json_object_array_get_idx(jb, i));
		order[i].idx = i;
	}
	/* Sorted by bound (a stable sort is not needed: the first of equal bounds wins). */
	for (size_t i = 1; i < nb; i++) {
		for (size_t j = i; j > 0 && cmp_double(&order[j - 1].bound, &order[j].bound) > 0;
		     j--) {
			__typeof__(*order) t = order[j];

			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	}
	uint64_t cum = 0;
	for (size_t i = 0; i < nb; i++) {
		if (k && s->bounds[k - 1] == order[i].bound)
			continue;
		if (order[i].idx < nc)
			cum += num_u64(json_object_array_get_idx(jc, order[i].idx));
		s->bounds[k] = order[i].bound;
		s->cum[k] = cum;
		k++;
	}
	s->n_bounds = k;
	free(order);
	return 0;
}

static void histogram_merge(struct conv *c, struct series *s, struct json_object *p)
{
	struct series tmp = { 0 };

	if (histogram_fill(&tmp, p)) {
		c->err = -ENOMEM;
		goto out;
	}
	if (tmp.n_bounds != s->n_bounds ||
	    (tmp.n_bounds && memcmp(tmp.bounds, s->bounds, tmp.n_bounds * sizeof(double)))) {
		c->dropped++;
		goto out;
	}
	for (size_t i = 0; i < s->n_bounds; i++)
		s->cum[i] += tmp.cum[i];
	s->count += tmp.count;
	s->sum += tmp.sum;
out:
	free(tmp.bounds);
	free(tmp.cum);
}

static void convert_metric(struct conv *c, struct json_object *m, const struct res_ctx *r,
			   struct labels *ls)
{
	const char *name = get_str(m, "name"), *unit = get_str(m, "unit");
	struct json_object *data, *points;
	enum prom_source src;
	struct family *f;
	struct jbuf pname, lbuf;
	size_t np;

	if (!name)
		return;
	if ((data = get(m, "sum"))) {
		struct json_object *mono = get(data, "isMonotonic");

		src = mono && json_object_get_boolean(mono) ? PROM_SRC_MONOTONIC_SUM : PROM_SRC_SUM;
	} else if ((data = get(m, "gauge"))) {
		src = PROM_SRC_GAUGE;
	} else if ((data = get(m, "histogram"))) {
		src = PROM_SRC_HISTOGRAM;
	} else {
		c->dropped++; /* exponential histograms, summaries: not produced by tcpotel */
		return;
	}
	points = get(data, "dataPoints");
	np = arr_len(points);
	if (!np)
		return;
	jbuf_init(&pname);
	jbuf_init(&lbuf);
	prom_metric_name(&pname, name, unit, src);
	if (!jbuf_cstr(&pname)) {
		c->err = -ENOMEM;
		goto out;
	}
	f = family_get(c, pname.data, get_str(m, "description"), src);
	if (!f)
		goto out;
	for (size_t i = 0; i < np && !c->err; i++) {
		struct json_object *p = json_object_array_get_idx(points, i);
		struct series *s;
		bool created;

		point_labels(ls, get(p, "attributes"), r);
		jbuf_reset(&lbuf);
		labels_render(ls, &lbuf);
		if (ls->failed || !jbuf_cstr(&lbuf)) {
			c->err = -ENOMEM;
			break;
		}
		s = series_get(c, f, lbuf.data, &created);
		if (!s)
			break;
		if (src != PROM_SRC_HISTOGRAM) {
			struct json_object *v = get(p, "asInt");

			s->value += v ? (double)strtoll(json_object_get_string(v), NULL, 10) :
					num(get(p, "asDouble"));
		} else if (created) {
			if (histogram_fill(s, p))
				c->err = -ENOMEM;
		} else {
			histogram_merge(c, s, p);
		}
	}
out:
	jbuf_free(&pname);
	jbuf_free(&lbuf);
}

static void target_info(struct conv *c, struct json_object *attrs, const struct res_ctx *r,
			struct labels *ls)
{
	size_t n = arr_len(attrs);
	struct family *f;
	struct series *s;
	struct jbuf lbuf;
	bool created;

	labels_clear(ls);
	for (size_t i = 0; i < n; i++) {
		struct json_object *a = json_object_array_get_idx(attrs, i);
		const char *key = get_str(a, "key");
		char *v;

		if (!key || !strcmp(key, "service.name") || !strcmp(key, "service.namespace") ||
		    !strcmp(key, "service.instance.id"))
			continue;
		v = any_string(get(a, "value"));
		if (v)
			labels_add_key(ls, key, v);
		free(v);
	}
	if (!ls->n)
		return;
	labels_add(ls, "job", r->job);
	labels_add(ls, "instance", r->instance);
	f = family_get(c, PROM_TARGET_INFO, PROM_TARGET_INFO_HELP, PROM_SRC_GAUGE);
	if (!f)
		return;
	jbuf_init(&lbuf);
	labels_render(ls, &lbuf);
	if (ls->failed || !jbuf_cstr(&lbuf)) {
		c->err = -ENOMEM;
	} else {
		s = series_get(c, f, lbuf.data, &created);
		if (s)
			s->value = 1; /* the same resource twice is one target */
	}
	jbuf_free(&lbuf);
}

static void convert_resource(struct conv *c, struct json_object *rm, struct labels *ls)
{
	struct json_object *attrs = get(get(rm, "resource"), "attributes");
	struct json_object *sms = get(rm, "scopeMetrics");
	struct res_ctx r = { 0 };
	char *ns = NULL;

	for (size_t i = 0; i < arr_len(attrs); i++) {
		struct json_object *a = json_object_array_get_idx(attrs, i);
		const char *key = get_str(a, "key");
		char **dst = NULL;

		if (!key)
			continue;
		if (!strcmp(key, "service.name"))
			dst = &r.job;
		else if (!strcmp(key, "service.namespace"))
			dst = &ns;
		else if (!strcmp(key, "service.instance.id"))
			dst = &r.instance;
		if (dst) {
			free(*dst);
			*dst = any_string(get(a, "value"));
		}
	}
	if (r.job && ns && *ns) {
		char *j;

		if (asprintf(&j, "%s/%s", ns, r.job) < 0) {
			c->err = -ENOMEM;
			goto out;
		}
		free(r.job);
		r.job = j;
	}
	if (r.job)
		target_info(c, attrs, &r, ls);
	for (size_t i = 0; i < arr_len(sms) && !c->err; i++) {
		struct json_object *sm = json_object_array_get_idx(sms, i);
		struct json_object *scope = get(sm, "scope"), *metrics = get(sm, "metrics");

		r.scope_name = get_str(scope, "name");
		r.scope_version = get_str(scope, "version");
		for (size_t k = 0; k < arr_len(metrics) && !c->err; k++)
			convert_metric(c, json_object_array_get_idx(metrics, k), &r, ls);
	}
out:
	free(r.job);
	free(r.instance);
	free(ns);
}

static int family_cmp(const void *a, const void *b)
{
	return strcmp((*(struct family *const *)a)->name, (*(struct family *const *)b)->name);
}

static void put_sample(struct jbuf *out, const char *name, const char *suffix, const char *labels,
		       const char *le, double v)
{
	jbuf_puts(out, name);
	jbuf_puts(out, suffix);
	if (*labels || le) {
		jbuf_putc(out, '{');
		jbuf_puts(out, labels);
		if (le) {
			if (*labels)
				jbuf_putc(out, ',');
			jbuf_puts(out, "le=\"");
			jbuf_puts(out, le);
			jbuf_putc(out, '"');
		}
		jbuf_putc(out, '}');
	}
	jbuf_putc(out, ' ');
	put_double(out, v);
	jbuf_putc(out, '\n');
}

static void write_family(struct jbuf *out, const struct family *f)
{
	if (*f->help) {
		jbuf_puts(out, "# HELP ");
		jbuf_puts(out, f->name);
		jbuf_putc(out, ' ');
		put_escaped(out, f->help, false);
		jbuf_putc(out, '\n');
	}
	jbuf_puts(out, "# TYPE ");
	jbuf_puts(out, f->name);
	jbuf_putc(out, ' ');
	jbuf_puts(out, family_type(f->src));
	jbuf_putc(out, '\n');
	for (const struct series *s = f->head; s; s = s->next) {
		char le[48];

		if (f->src != PROM_SRC_HISTOGRAM) {
			put_sample(out, f->name, "", s->labels, NULL, s->value);
			continue;
		}
		for (size_t i = 0; i < s->n_bounds; i++) {
			prom_format_double(le, sizeof(le), s->bounds[i]);
			put_sample(out, f->name, "_bucket", s->labels, le, (double)s->cum[i]);
		}
		put_sample(out, f->name, "_bucket", s->labels, "+Inf", (double)s->count);
		put_sample(out, f->name, "_sum", s->labels, NULL, s->sum);
		put_sample(out, f->name, "_count", s->labels, NULL, (double)s->count);
	}
}

int prom_from_otlp_metrics(const char *otlp_json, size_t len, struct jbuf *out)
{
	struct json_tokener *tok = NULL;
	struct json_object *root = NULL, *rms;
	struct labels *ls = NULL;
	struct conv c = { 0 };
	int err;

	if (len > INT32_MAX)
		return -EINVAL;
	tok = json_tokener_new();
	ls = calloc(1, sizeof(*ls));
	if (!tok || !ls || htable_init(&c.families, 64) || htable_init(&c.series, 256)) {
		err = -ENOMEM;
		goto out;
	}
	root = json_tokener_parse_ex(tok, otlp_json, (int)len);
	rms = get(root, "resourceMetrics");
	if (!root || json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(root, json_type_object) ||
	    (rms && !json_object_is_type(rms, json_type_array))) {
		err = -EINVAL;
		goto out;
	}
	for (size_t i = 0; i < arr_len(rms) && !c.err; i++)
		convert_resource(&c, json_object_array_get_idx(rms, i), ls);
	err = c.err;
	if (err)
		goto out;
	if (c.dropped)
		log_ratelimited(LOG_WARN, 60000,
				"prometheus: %" PRIu64 " metric points left out (type conflicts)",
				c.dropped);
	if (c.n)
		qsort(c.list, c.n, sizeof(*c.list), family_cmp);
	for (size_t i = 0; i < c.n; i++)
		write_family(out, c.list[i]);
	err = out->failed ? -ENOMEM : 0;
out:
	if (ls)
		labels_clear(ls);
	free(ls);
	conv_free(&c);
	json_object_put(root);
	if (tok)
		json_tokener_free(tok);
	return err;
}
