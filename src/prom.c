// SPDX-License-Identifier: Apache-2.0
/*
 * Prometheus text from the metric store, through the OTLP metrics emitter
 * (otlp.h). The points of a body are gathered as series of families (name,
 * type, help) as they come, resource by resource, and the families are
 * written at the end, so that one family is never split even when several
 * resources carry it. This runs on the drain thread once per metrics
 * interval, when the live map's listener is on.
 */
#include "prom.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "htable.h"
#include "log.h"
#include "otlp.h"
#include "util.h"

#define PROM_TARGET_INFO      "target_info"
#define PROM_TARGET_INFO_HELP "Target metadata"
/* Labels of one series beyond which the rest are left out (OTLP has no limit). */
#define PROM_MAX_LABELS 128
/* Longest value prom_format_double writes ("-1.2345678901234567e-308"), NUL included. */
#define PROM_NUM_MAX 32

/* ---- numbers ------------------------------------------------------------- */

/*
 * Integers below 2^53 (counts, mostly) in Go's shortest 'g' form without
 * searching for it: their own digits, in exponent form from 1e+06 on with the
 * trailing zeros dropped. False when v is not one (or buf is too small).
 */
static bool format_integer(char *buf, size_t size, double v)
{
	char d[20], *p = d + sizeof(d);
	size_t o = 0, nd;
	uint64_t m;

	if (size < PROM_NUM_MAX || !(fabs(v) < 0x1p53) || v != trunc(v))
		return false;
	m = (uint64_t)fabs(v);
	do {
		*--p = (char)('0' + m % 10);
		m /= 10;
	} while (m);
	nd = (size_t)(d + sizeof(d) - p);
	if (v < 0)
		buf[o++] = '-';
	if (nd <= 6) {
		memcpy(buf + o, p, nd);
		buf[o + nd] = '\0';
		return true;
	}
	buf[o++] = p[0];
	while (nd > 1 && p[nd - 1] == '0')
		nd--;
	if (nd > 1) {
		buf[o++] = '.';
		memcpy(buf + o, p + 1, nd - 1);
		o += nd - 1;
	}
	/* The exponent is 6..15 here. */
	nd = (size_t)(d + sizeof(d) - p) - 1;
	buf[o++] = 'e';
	buf[o++] = '+';
	buf[o++] = (char)('0' + nd / 10);
	buf[o++] = (char)('0' + nd % 10);
	buf[o] = '\0';
	return true;
}

/* An integer in decimal, as Go's strconv.FormatInt; buf holds PROM_NUM_MAX. */
static void format_i64(char *buf, int64_t v)
{
	char d[20], *p = d + sizeof(d);
	uint64_t m = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	size_t o = 0;

	do {
		*--p = (char)('0' + m % 10);
		m /= 10;
	} while (m);
	if (v < 0)
		buf[o++] = '-';
	memcpy(buf + o, p, (size_t)(d + sizeof(d) - p));
	buf[o + (size_t)(d + sizeof(d) - p)] = '\0';
}

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
	if (format_integer(buf, size, v))
		return;
	/*
	 * The shortest decimal that reads back as v, as Go's 'g' with precision
	 * -1. When that has k <= 15 digits, a normal v is within half an ulp of
	 * it, which is less than half a step of 15 digits: rounding to 15 digits
	 * gives the same digits and zeros, dropped below. So the search starts at
	 * 15 (subnormals have fewer bits: from 1).
	 */
	for (p = isnormal(v) ? 15 : 1; p <= 17; p++) {
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
	size_t n = strlen(key);
	char *o;

	if (!n) {
		jbuf_putc(out, '_');
		return;
	}
	if (key[0] >= '0' && key[0] <= '9')
		jbuf_puts(out, "key_");
	else if (key[0] == '_')
		jbuf_puts(out, "key"); /* "_x" -> "key_x"; "__x" is reserved to Prometheus */
	if (!jbuf_reserve(out, n))
		return;
	o = out->data + out->len;
	for (size_t i = 0; i < n; i++)
		o[i] = is_alnum(key[i]) || key[i] == '_' ? key[i] : '_';
	out->len += n;
}

/* ---- label values ---------------------------------------------------------- */

enum escape {
	ESC_NONE, /* UTF-8 repaired only */
	ESC_HELP, /* and '\\' and newline escaped */
	ESC_LABEL, /* and '"' too */
};

/*
 * Untrusted text as a label value or HELP text: ill-formed UTF-8 replaced by
 * U+FFFD the way jbuf_json_string does, a sequence cut short by the caller's
 * limit (cut) dropped, and escaped as `esc` says.
 */
static void put_escaped(struct jbuf *out, const char *s, size_t n, bool cut, enum escape esc)
{
	size_t i = 0, run = 0;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t len, sub;
		bool truncated;

		if (c < 0x80 && (esc == ESC_NONE ||
				 (c != '\\' && c != '\n' && (c != '"' || esc != ESC_LABEL)))) {
			i++;
			continue;
		}
		jbuf_put(out, s + run, i - run);
		if (c == '\\') {
			jbuf_put(out, "\\\\", 2);
			i++;
		} else if (c == '\n') {
			jbuf_put(out, "\\n", 2);
			i++;
		} else if (c == '"') {
			jbuf_put(out, "\\\"", 2);
			i++;
		} else if ((len = jbuf_utf8_seq(s + i, n - i, &sub, &truncated))) {
			jbuf_put(out, s + i, len);
			i += len;
		} else if (truncated && cut) {
			i = n;
		} else {
			jbuf_put(out, "\xef\xbf\xbd", 3);
			i += sub;
		}
		run = i;
	}
	jbuf_put(out, s + run, n - run);
}

/* ---- families and series ---------------------------------------------------- */

/* The explicit bounds of a histogram, each with its le="..." text, formatted once. */
struct bounds {
	struct bounds *next;
	size_t n;
	double *v;
	char (*le)[PROM_NUM_MAX];
};

struct series {
	struct hnode node;
	struct family *fam;
	struct series *next; /* in the family, in the order of arrival */
	size_t labels, labels_len; /* in w->arena: name="value",... sorted by name */
	double value;
	/* histograms */
	const struct bounds *bounds; /* NULL: no buckets but +Inf */
	uint64_t *cum; /* cumulative count at each bound */
	uint64_t count;
	double sum;
};

struct family {
	struct hnode node; /* by name */
	char *name;
	size_t name_len;
	char *help;
	enum prom_source src;
	struct series *head, *tail;
};

/*
 * An OTLP metric description and its Prometheus name. Its family is made at
 * its first point: a metric with no point adds no family.
 */
struct desc_entry {
	struct hnode node;
	char *name, *unit;
	enum otlp_metric_kind kind;
	char *prom_name, *help;
	bool resolved;
	struct family *fam; /* NULL: left out (another type has the name) */
};

/* One label of the point being written; names and numbers are in w->scratch. */
struct label {
	uint64_t key; /* the name's first 8 bytes, big-endian: orders as strcmp does */
	size_t name; /* offset in w->scratch, NUL-terminated */
	const char *value; /* borrowed, or NULL: value_off in w->scratch */
	size_t value_off, value_len;
	bool cut; /* the value was cut at OTLP_MAX_VALUE_BYTES */
};

struct prom_writer {
	struct otlp_metrics_emitter emitter;
	struct htable families; /* by name */
	struct htable descs; /* by OTLP name, unit and kind */
	struct htable series; /* by family and labels */
	struct family **list;
	size_t n_families, cap_families;
	struct bounds *bounds;
	struct jbuf arena; /* the labels of every series */
	struct jbuf scratch; /* the point being written */
	struct jbuf lbuf;
	struct label labels[PROM_MAX_LABELS];
	size_t n_labels;
	/* the resource being written */
	struct jbuf job, instance;
	bool has_job, has_instance;
	struct desc_entry *cur; /* the metric being written; NULL: left out */
	uint64_t dropped; /* points left out: type conflicts */
	bool failed;
	struct jbuf out;
	bool out_valid;
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

static enum prom_source source_of(enum otlp_metric_kind kind)
{
	switch (kind) {
	case OTLP_SUM_MONOTONIC:
		return PROM_SRC_MONOTONIC_SUM;
	case OTLP_SUM_NONMONOTONIC:
		return PROM_SRC_SUM;
	case OTLP_HISTOGRAM:
		return PROM_SRC_HISTOGRAM;
	case OTLP_GAUGE:
	default:
		return PROM_SRC_GAUGE;
	}
}

static void nomem(struct prom_writer *w)
{
	w->failed = true;
}

/* The family named `name`; NULL when it has another type, or out of memory. */
static struct family *family_get(struct prom_writer *w, const char *name, const char *help,
				 enum prom_source src)
{
	uint64_t h = hash_bytes(name, strlen(name), 0);
	struct family *f, **list;
	struct hnode *n;

	for (n = htable_first(&w->families, h); n; n = htable_next_same(n, h)) {
		f = container_of(n, struct family, node);
		if (strcmp(f->name, name))
			continue;
		/* Sums of both kinds and gauges of one name: the first type stays. */
		return strcmp(family_type(f->src), family_type(src)) ? NULL : f;
	}
	if (w->n_families == w->cap_families) {
		size_t cap = w->cap_families ? w->cap_families * 2 : 32;

		list = realloc(w->list, cap * sizeof(*list));
		if (!list)
			goto fail;
		w->list = list;
		w->cap_families = cap;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		goto fail;
	f->name = strdup(name);
	f->name_len = strlen(name);
	f->help = strdup(help ? help : "");
	f->src = src;
	if (!f->name || !f->help) {
		free(f->name);
		free(f->help);
		free(f);
		goto fail;
	}
	htable_insert(&w->families, &f->node, h);
	w->list[w->n_families++] = f;
	return f;
fail:
	nomem(w);
	return NULL;
}

static uint64_t desc_hash(const char *name, const char *unit, enum otlp_metric_kind kind)
{
	return hash_bytes(unit, strlen(unit), hash_bytes(name, strlen(name), (uint64_t)kind));
}

static void desc_free(struct desc_entry *d)
{
	if (!d)
		return;
	free(d->name);
	free(d->unit);
	free(d->prom_name);
	free(d->help);
	free(d);
}

/* The entry of a metric description, its Prometheus name worked out once per body. */
static struct desc_entry *desc_get(struct prom_writer *w, const struct otlp_metric_desc *desc)
{
	const char *unit = desc->unit ? desc->unit : "", *mname = desc->name ? desc->name : "";
	uint64_t h = desc_hash(mname, unit, desc->kind);
	struct desc_entry *d;
	struct hnode *n;
	struct jbuf name;

	for (n = htable_first(&w->descs, h); n; n = htable_next_same(n, h)) {
		d = container_of(n, struct desc_entry, node);
		if (d->kind == desc->kind && !strcmp(d->name, mname) && !strcmp(d->unit, unit))
			return d;
	}
	jbuf_init(&name);
	prom_metric_name(&name, mname, unit, source_of(desc->kind));
	d = calloc(1, sizeof(*d));
	if (!d || !jbuf_cstr(&name) || !(d->name = strdup(mname)) || !(d->unit = strdup(unit)) ||
	    !(d->prom_name = strdup(name.data)) ||
	    !(d->help = strdup(desc->description ? desc->description : ""))) {
		desc_free(d);
		jbuf_free(&name);
		nomem(w);
		return NULL;
	}
	jbuf_free(&name);
	d->kind = desc->kind;
	htable_insert(&w->descs, &d->node, h);
	return d;
}

/* The family of the metric being written, made at its first point. */
static struct family *current_family(struct prom_writer *w)
{
	struct desc_entry *d = w->cur;

	if (!d)
		return NULL;
	if (!d->resolved) {
		d->fam = family_get(w, d->prom_name, d->help, source_of(d->kind));
		d->resolved = true;
	}
	return d->fam;
}

/* Labels are a few hundred bytes: hashed eight at a time. */
static uint64_t series_hash(const struct family *f, const char *labels, size_t len)
{
	uint64_t h = (uint64_t)(uintptr_t)f ^ len, x;
	size_t i = 0;

	for (; len - i >= 8; i += 8) {
		memcpy(&x, labels + i, 8);
		h = (h ^ hash_u64(x)) * 0x9e3779b97f4a7c15ULL;
	}
	x = 0;
	memcpy(&x, labels + i, len - i);
	return hash_u64(h ^ x);
}

static const char *arena_at(const struct prom_writer *w, size_t off)
{
	return w->arena.data ? w->arena.data + off : "";
}

/* The series of f with the labels in w->lbuf; *created tells whether it is new. */
static struct series *series_get(struct prom_writer *w, struct family *f, bool *created)
{
	const char *labels = w->lbuf.data ? w->lbuf.data : "";
	size_t len = w->lbuf.len;
	uint64_t h = series_hash(f, labels, len);
	struct series *s;
	struct hnode *n;

	*created = false;
	for (n = htable_first(&w->series, h); n; n = htable_next_same(n, h)) {
		s = container_of(n, struct series, node);
		if (s->fam == f && s->labels_len == len &&
		    !memcmp(arena_at(w, s->labels), labels, len))
			return s;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		nomem(w);
		return NULL;
	}
	s->fam = f;
	s->labels = w->arena.len;
	s->labels_len = len;
	jbuf_put(&w->arena, labels, len);
	htable_insert(&w->series, &s->node, h);
	if (f->tail)
		f->tail->next = s;
	else
		f->head = s;
	f->tail = s;
	*created = true;
	return s;
}

/* The bounds `v` interned: equal bounds share one entry (and their le text). */
static const struct bounds *bounds_get(struct prom_writer *w, const double *v, size_t n)
{
	struct bounds *b;

	for (b = w->bounds; b; b = b->next)
		if (b->n == n && !memcmp(b->v, v, n * sizeof(*v)))
			return b;
	b = calloc(1, sizeof(*b));
	if (!b)
		goto fail;
	b->n = n;
	b->v = malloc(n * sizeof(*b->v));
	b->le = malloc(n * sizeof(*b->le));
	if (!b->v || !b->le) {
		free(b->v);
		free(b->le);
		free(b);
		goto fail;
	}
	memcpy(b->v, v, n * sizeof(*v));
	for (size_t i = 0; i < n; i++)
		prom_format_double(b->le[i], sizeof(b->le[i]), v[i]);
	b->next = w->bounds;
	w->bounds = b;
	return b;
fail:
	nomem(w);
	return NULL;
}

/* Forgets the last body's families and series (keeping the memory of the tables). */
static void clear(struct prom_writer *w)
{
	struct hnode *n, *tmp;
	size_t i;

	for (i = 0; i < w->n_families; i++) {
		struct family *f = w->list[i];
		struct series *s, *next;

		for (s = f->head; s; s = next) {
			next = s->next;
			free(s->cum);
			free(s);
		}
		free(f->name);
		free(f->help);
		free(f);
	}
	w->n_families = 0;
	if (w->descs.buckets) {
		htable_for_each_safe(&w->descs, i, n, tmp)
			desc_free(container_of(n, struct desc_entry, node));
	}
	while (w->bounds) {
		struct bounds *b = w->bounds;

		w->bounds = b->next;
		free(b->v);
		free(b->le);
		free(b);
	}
	htable_free(&w->families);
	htable_free(&w->descs);
	htable_free(&w->series);
	jbuf_reset(&w->arena);
	w->cur = NULL;
	w->dropped = 0;
	w->failed = false;
}

/* ---- labels -------------------------------------------------------------- */

static void labels_clear(struct prom_writer *w)
{
	w->n_labels = 0;
	jbuf_reset(&w->scratch);
}

/*
 * Adds name=value (both by offset in w->scratch, or value borrowed). Empty
 * values are left out: Prometheus treats them as absent. A second value for
 * a name is joined to the first with ';' when the labels are written.
 */
static void label_add(struct prom_writer *w, size_t name_off, const char *value, size_t value_off,
		      size_t len, bool cut)
{
	struct label *l;

	if (!len || w->n_labels >= ARRAY_SIZE(w->labels))
		return;
	l = &w->labels[w->n_labels++];
	l->key = 0;
	for (size_t i = 0; i < 8 && w->scratch.data[name_off + i]; i++)
		l->key |= (uint64_t)(unsigned char)w->scratch.data[name_off + i] << (56 - 8 * i);
	l->name = name_off;
	l->value = value;
	l->value_off = value_off;
	l->value_len = len;
	l->cut = cut;
}

/* A name made valid into w->scratch; returns its offset (SIZE_MAX: out of memory). */
static size_t scratch_name(struct prom_writer *w, const char *key, bool sanitize)
{
	size_t off = w->scratch.len;

	if (sanitize)
		prom_label_name(&w->scratch, key);
	else
		jbuf_puts(&w->scratch, key);
	jbuf_putc(&w->scratch, '\0');
	return w->scratch.failed ? SIZE_MAX : off;
}

/* An AnyValue as a label value (the Collector's AsString), borrowed or in w->scratch. */
static void label_add_attr(struct prom_writer *w, size_t name, const struct otlp_attr *a)
{
	char num[PROM_NUM_MAX];
	size_t off, len;

	switch (a->type) {
	case OTLP_STRING:
		if (!a->s)
			return;
		len = strnlen(a->s, OTLP_MAX_VALUE_BYTES);
		label_add(w, name, a->s, 0, len, len == OTLP_MAX_VALUE_BYTES);
		return;
	case OTLP_INT:
		format_i64(num, a->i);
		break;
	case OTLP_DOUBLE:
		prom_format_double(num, sizeof(num), a->d);
		break;
	case OTLP_BOOL:
		snprintf(num, sizeof(num), "%s", a->b ? "true" : "false");
		break;
	default:
		return;
	}
	off = w->scratch.len;
	len = strlen(num);
	jbuf_put(&w->scratch, num, len);
	label_add(w, name, NULL, off, len, false);
}

/* Attributes under their Prometheus names (skip_service: but job's and instance's). */
static void labels_add_attrs(struct prom_writer *w, const struct otlp_attr *attrs, size_t n,
			     bool skip_service)
{
	for (size_t i = 0; i < n; i++) {
		const struct otlp_attr *a = &attrs[i];
		const char *key = a->key ? a->key : ""; /* as the JSON writer has it */
		size_t name;

		if (skip_service &&
		    (!strcmp(key, "service.name") || !strcmp(key, "service.namespace") ||
		     !strcmp(key, "service.instance.id")))
			continue;
		name = scratch_name(w, key, true);
		if (name == SIZE_MAX)
			return;
		label_add_attr(w, name, a);
	}
}

static void label_add_str(struct prom_writer *w, const char *name, const char *value, size_t len)
{
	size_t off = scratch_name(w, name, false);

	if (off != SIZE_MAX)
		label_add(w, off, value, 0, len, false);
}

static void labels_add_resource(struct prom_writer *w, bool scope)
{
	if (scope) {
		label_add_str(w, "otel_scope_name", OTLP_SCOPE_NAME, strlen(OTLP_SCOPE_NAME));
		label_add_str(w, "otel_scope_version", OTLP_SCOPE_VERSION,
			      strlen(OTLP_SCOPE_VERSION));
	}
	if (w->has_job)
		label_add_str(w, "job", w->job.data, w->job.len);
	if (w->has_instance)
		label_add_str(w, "instance", w->instance.data, w->instance.len);
}

static const char *label_name(const struct prom_writer *w, const struct label *l)
{
	return w->scratch.data + l->name;
}

static int label_cmp(const struct prom_writer *w, const struct label *a, const struct label *b)
{
	if (a->key != b->key)
		return a->key < b->key ? -1 : 1;
	return strcmp(label_name(w, a), label_name(w, b));
}

/* name="value",... into w->lbuf, sorted by name (stable: joined values keep their order). */
static void labels_render(struct prom_writer *w)
{
	struct label *ls = w->labels;
	size_t n = w->n_labels;

	jbuf_reset(&w->lbuf);
	if (w->scratch.failed) {
		nomem(w);
		return;
	}
	for (size_t i = 1; i < n; i++) {
		struct label t = ls[i];
		size_t j = i;

		for (; j > 0 && label_cmp(w, &ls[j - 1], &t) > 0; j--)
			ls[j] = ls[j - 1];
		ls[j] = t;
	}
	for (size_t i = 0; i < n; i++) {
		const struct label *l = &ls[i];
		const char *v = l->value ? l->value : w->scratch.data + l->value_off;
		bool joined = i && !label_cmp(w, &ls[i - 1], l);

		if (joined) {
			w->lbuf.len--; /* the closing quote */
			jbuf_putc(&w->lbuf, ';');
		} else {
			if (i)
				jbuf_putc(&w->lbuf, ',');
			jbuf_puts(&w->lbuf, label_name(w, l));
			jbuf_put(&w->lbuf, "=\"", 2);
		}
		put_escaped(&w->lbuf, v, l->value_len, l->cut, ESC_LABEL);
		jbuf_putc(&w->lbuf, '"');
	}
	if (w->lbuf.failed)
		nomem(w);
}

/* ---- the emitter ---------------------------------------------------------------- */

static struct prom_writer *writer_of(struct otlp_metrics_emitter *e)
{
	return container_of(e, struct prom_writer, emitter);
}

static void pw_begin(struct otlp_metrics_emitter *e)
{
	struct prom_writer *w = writer_of(e);

	clear(w);
	w->out_valid = false;
	jbuf_reset(&w->out);
	if (htable_init(&w->families, 64) || htable_init(&w->descs, 64) ||
	    htable_init(&w->series, 1024))
		nomem(w);
}

/* A resource attribute's value as text into dst (reset first), UTF-8 repaired. */
static void attr_text(struct jbuf *dst, const struct otlp_attr *a)
{
	char num[PROM_NUM_MAX];
	size_t n;

	jbuf_reset(dst);
	switch (a->type) {
	case OTLP_STRING:
		if (!a->s)
			return;
		n = strnlen(a->s, OTLP_MAX_VALUE_BYTES);
		put_escaped(dst, a->s, n, n == OTLP_MAX_VALUE_BYTES, ESC_NONE);
		return;
	case OTLP_INT:
		format_i64(num, a->i);
		break;
	case OTLP_DOUBLE:
		prom_format_double(num, sizeof(num), a->d);
		break;
	case OTLP_BOOL:
		snprintf(num, sizeof(num), "%s", a->b ? "true" : "false");
		break;
	default:
		return;
	}
	jbuf_puts(dst, num);
}

/* One target_info series per resource: the attributes that are not job and instance. */
static void target_info(struct prom_writer *w, const struct otlp_resource *res)
{
	struct family *f;
	struct series *s;
	bool created;

	labels_clear(w);
	labels_add_attrs(w, res->attrs, res->n_attrs, true);
	if (!w->n_labels)
		return;
	labels_add_resource(w, false);
	f = family_get(w, PROM_TARGET_INFO, PROM_TARGET_INFO_HELP, PROM_SRC_GAUGE);
	if (!f)
		return;
	labels_render(w);
	s = w->failed ? NULL : series_get(w, f, &created);
	if (s)
		s->value = 1; /* the same resource twice is one target */
}

static void pw_resource_begin(struct otlp_metrics_emitter *e, const struct otlp_resource *res)
{
	struct prom_writer *w = writer_of(e);
	const struct otlp_attr *ns = NULL;

	w->has_job = w->has_instance = false;
	for (size_t i = 0; i < res->n_attrs; i++) {
		const struct otlp_attr *a = &res->attrs[i];

		if (!a->key)
			continue;
		if (!strcmp(a->key, "service.name")) {
			attr_text(&w->job, a);
			w->has_job = true;
		} else if (!strcmp(a->key, "service.namespace")) {
			ns = a;
		} else if (!strcmp(a->key, "service.instance.id")) {
			attr_text(&w->instance, a);
			w->has_instance = true;
		}
	}
	if (w->has_job && ns) {
		struct jbuf job;

		jbuf_init(&job);
		attr_text(&job, ns);
		if (job.len) {
			jbuf_putc(&job, '/');
			if (w->job.len)
				jbuf_put(&job, w->job.data, w->job.len);
			jbuf_free(&w->job);
			w->job = job;
		} else {
			jbuf_free(&job);
		}
	}
	if (w->job.failed || w->instance.failed)
		nomem(w);
	if (w->has_job)
		target_info(w, res);
}

static void pw_metric_begin(struct otlp_metrics_emitter *e, const struct otlp_metric_desc *desc)
{
	struct prom_writer *w = writer_of(e);

	w->cur = w->failed ? NULL : desc_get(w, desc);
}

/*
 * The series of the current metric for a point with these attributes, of a
 * histogram or not; NULL when it is left out.
 */
static struct series *point_series(struct prom_writer *w, const struct otlp_attr *attrs,
				   size_t n_attrs, bool histogram, bool *created)
{
	struct family *f = current_family(w);

	if (!f || (f->src == PROM_SRC_HISTOGRAM) != histogram) {
		if (!w->failed)
			w->dropped++;
		return NULL;
	}
	labels_clear(w);
	labels_add_attrs(w, attrs, n_attrs, false);
	labels_add_resource(w, true);
	labels_render(w);
	return w->failed ? NULL : series_get(w, f, created);
}

static void pw_point_double(struct otlp_metrics_emitter *e, const struct otlp_attr *attrs,
			    size_t n_attrs, uint64_t start_unix_nano, uint64_t time_unix_nano,
			    double value)
{
	struct prom_writer *w = writer_of(e);
	struct series *s;
	bool created;

	s = point_series(w, attrs, n_attrs, false, &created);
	if (s)
		s->value += value;
}

static void pw_point_int(struct otlp_metrics_emitter *e, const struct otlp_attr *attrs,
			 size_t n_attrs, uint64_t start_unix_nano, uint64_t time_unix_nano,
			 int64_t value)
{
	pw_point_double(e, attrs, n_attrs, start_unix_nano, time_unix_nano, (double)value);
}

/* Cumulative bucket counts at each bound (OTLP's bounds are strictly increasing). */
static void histogram_add(struct series *s, const struct otlp_histogram_point *h)
{
	uint64_t cum = 0;

	for (size_t i = 0; s->bounds && i < s->bounds->n; i++) {
		cum += h->counts[i];
		s->cum[i] += cum;
	}
	s->count += h->count;
	s->sum += h->sum;
}

static void pw_point_histogram(struct otlp_metrics_emitter *e, const struct otlp_attr *attrs,
			       size_t n_attrs, uint64_t start_unix_nano, uint64_t time_unix_nano,
			       const struct otlp_histogram_point *h)
{
	struct prom_writer *w = writer_of(e);
	const struct bounds *b = NULL;
	struct series *s;
	bool created;

	s = point_series(w, attrs, n_attrs, true, &created);
	if (!s)
		return;
	if (h->counts && h->n_bounds) {
		b = bounds_get(w, h->bounds, h->n_bounds);
		if (!b)
			return;
	}
	if (created) {
		s->bounds = b;
		if (b && !(s->cum = calloc(b->n, sizeof(*s->cum)))) {
			s->bounds = NULL;
			nomem(w);
			return;
		}
	} else if (s->bounds != b) {
		w->dropped++; /* the same series with other buckets */
		return;
	}
	histogram_add(s, h);
}

static void pw_metric_end(struct otlp_metrics_emitter *e)
{
	writer_of(e)->cur = NULL;
}

static void pw_resource_end(struct otlp_metrics_emitter *e)
{
	struct prom_writer *w = writer_of(e);

	w->has_job = w->has_instance = false;
}

static int family_cmp(const void *a, const void *b)
{
	return strcmp((*(struct family *const *)a)->name, (*(struct family *const *)b)->name);
}

/* One sample line: name{labels,le="..."} value. Reserved once: there are many. */
static void put_sample(struct jbuf *out, const struct family *f, const char *suffix,
		       const char *labels, size_t labels_len, const char *le, double v)
{
	size_t sl = strlen(suffix), ll = le ? strlen(le) : 0, nl = f->name_len;
	char num[PROM_NUM_MAX], *o;
	size_t vl;

	prom_format_double(num, sizeof(num), v);
	vl = strlen(num);
	if (!jbuf_reserve(out, nl + sl + labels_len + ll + vl + 16))
		return;
	o = out->data + out->len;
	memcpy(o, f->name, nl);
	o += nl;
	memcpy(o, suffix, sl);
	o += sl;
	if (labels_len || le) {
		*o++ = '{';
		memcpy(o, labels, labels_len);
		o += labels_len;
		if (le) {
			if (labels_len)
				*o++ = ',';
			memcpy(o, "le=\"", 4);
			o += 4;
			memcpy(o, le, ll);
			o += ll;
			*o++ = '"';
		}
		*o++ = '}';
	}
	*o++ = ' ';
	memcpy(o, num, vl);
	o += vl;
	*o++ = '\n';
	out->len = (size_t)(o - out->data);
}

static void write_family(struct prom_writer *w, const struct family *f)
{
	struct jbuf *out = &w->out;

	if (*f->help) {
		jbuf_puts(out, "# HELP ");
		jbuf_puts(out, f->name);
		jbuf_putc(out, ' ');
		put_escaped(out, f->help, strlen(f->help), false, ESC_HELP);
		jbuf_putc(out, '\n');
	}
	jbuf_puts(out, "# TYPE ");
	jbuf_puts(out, f->name);
	jbuf_putc(out, ' ');
	jbuf_puts(out, family_type(f->src));
	jbuf_putc(out, '\n');
	for (const struct series *s = f->head; s; s = s->next) {
		const char *labels = arena_at(w, s->labels);

		if (f->src != PROM_SRC_HISTOGRAM) {
			put_sample(out, f, "", labels, s->labels_len, NULL, s->value);
			continue;
		}
		for (size_t i = 0; s->bounds && i < s->bounds->n; i++)
			put_sample(out, f, "_bucket", labels, s->labels_len, s->bounds->le[i],
				   (double)s->cum[i]);
		put_sample(out, f, "_bucket", labels, s->labels_len, "+Inf", (double)s->count);
		put_sample(out, f, "_sum", labels, s->labels_len, NULL, s->sum);
		put_sample(out, f, "_count", labels, s->labels_len, NULL, (double)s->count);
	}
}

static void pw_end(struct otlp_metrics_emitter *e)
{
	struct prom_writer *w = writer_of(e);

	if (w->failed || w->arena.failed) {
		log_ratelimited(LOG_WARN, 60000, "prometheus: out of memory writing /metrics");
		clear(w);
		return;
	}
	if (w->dropped)
		log_ratelimited(LOG_WARN, 60000,
				"prometheus: %" PRIu64 " metric points left out (type conflicts)",
				w->dropped);
	if (w->n_families)
		qsort(w->list, w->n_families, sizeof(*w->list), family_cmp);
	for (size_t i = 0; i < w->n_families; i++)
		write_family(w, w->list[i]);
	w->out_valid = jbuf_cstr(&w->out) != NULL;
	clear(w);
}

static const struct otlp_metrics_emitter_ops prom_ops = {
	.begin = pw_begin,
	.resource_begin = pw_resource_begin,
	.metric_begin = pw_metric_begin,
	.point_int = pw_point_int,
	.point_double = pw_point_double,
	.point_histogram = pw_point_histogram,
	.metric_end = pw_metric_end,
	.resource_end = pw_resource_end,
	.end = pw_end,
};

struct prom_writer *prom_writer__new(void)
{
	struct prom_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->emitter.ops = &prom_ops;
	jbuf_init(&w->arena);
	jbuf_init(&w->scratch);
	jbuf_init(&w->lbuf);
	jbuf_init(&w->job);
	jbuf_init(&w->instance);
	jbuf_init(&w->out);
	return w;
}

void prom_writer__free(struct prom_writer *w)
{
	if (!w)
		return;
	clear(w);
	free(w->list);
	jbuf_free(&w->arena);
	jbuf_free(&w->scratch);
	jbuf_free(&w->lbuf);
	jbuf_free(&w->job);
	jbuf_free(&w->instance);
	jbuf_free(&w->out);
	free(w);
}

struct otlp_metrics_emitter *prom_writer__emitter(struct prom_writer *w)
{
	return &w->emitter;
}

const char *prom_writer__text(struct prom_writer *w, size_t *len)
{
	if (!w->out_valid)
		return NULL;
	*len = w->out.len;
	return jbuf_cstr(&w->out);
}
