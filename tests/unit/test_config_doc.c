// SPDX-License-Identifier: Apache-2.0
/*
 * The shipped config/tcpotel.yaml and docs/configuration.md stay in step with
 * the key table: the file sets every key to exactly its built-in default, and
 * the reference page documents every key.
 */
#include <stdlib.h>
#include <yaml.h>

#include "config.h"
#include "test.h"

static struct config *load_shipped(char *path, size_t size)
{
	char *const empty_env[] = { NULL };
	struct config *cfg;

	snprintf(path, size, "%s/config/tcpotel.yaml", test_srcdir());
	cfg = config__load(path, empty_env, NULL, stdout);
	ASSERT_NOT_NULL(cfg);
	return cfg;
}

static bool kv_equal(const struct kv_list *a, const struct kv_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->items[i].key, b->items[i].key) ||
		    strcmp(a->items[i].value, b->items[i].value))
			return false;
	return true;
}

TEST(config_doc_file_is_defaults)
{
	struct config *def = config__defaults(), *cfg;
	char path[4096];

	cfg = load_shipped(path, sizeof(path));
	if (!cfg || !ASSERT_NOT_NULL(def))
		goto out;
	ASSERT_EQ(cfg->capture.backend, def->capture.backend);
	ASSERT_EQ(cfg->capture.n_netns, def->capture.n_netns);
	ASSERT_EQ(cfg->capture.n_exclude_ports, def->capture.n_exclude_ports);
	ASSERT_EQ(cfg->capture.max_sockets, def->capture.max_sockets);
	ASSERT_EQ(cfg->spans.enabled, def->spans.enabled);
	ASSERT_DOUBLE_NEAR(cfg->spans.sampling_ratio, def->spans.sampling_ratio, 0);
	ASSERT_U64_EQ(cfg->spans.idle_timeout_ms, def->spans.idle_timeout_ms);
	ASSERT_EQ(cfg->spans.external_clients.n, def->spans.external_clients.n);
	ASSERT_EQ(cfg->spans.internal_networks.n, def->spans.internal_networks.n);
	ASSERT_EQ(cfg->metrics.enabled, def->metrics.enabled);
	ASSERT_U64_EQ(cfg->metrics.interval_ms, def->metrics.interval_ms);
	ASSERT_EQ(cfg->metrics.per_process, def->metrics.per_process);
	ASSERT_EQ(cfg->service.n_rules, def->service.n_rules);
	ASSERT_EQ(cfg->service.command_line, def->service.command_line);
	ASSERT_TRUE(kv_equal(&cfg->resource.attributes, &def->resource.attributes));
	ASSERT_STREQ(cfg->exporter.otlp.endpoint, def->exporter.otlp.endpoint);
	ASSERT_STREQ(cfg->exporter.otlp.traces_endpoint, def->exporter.otlp.traces_endpoint);
	ASSERT_STREQ(cfg->exporter.otlp.metrics_endpoint, def->exporter.otlp.metrics_endpoint);
	ASSERT_TRUE(kv_equal(&cfg->exporter.otlp.headers, &def->exporter.otlp.headers));
	ASSERT_TRUE(
		kv_equal(&cfg->exporter.otlp.traces_headers, &def->exporter.otlp.traces_headers));
	ASSERT_TRUE(
		kv_equal(&cfg->exporter.otlp.metrics_headers, &def->exporter.otlp.metrics_headers));
	ASSERT_EQ(cfg->exporter.otlp.compression, def->exporter.otlp.compression);
	ASSERT_U64_EQ(cfg->exporter.otlp.timeout_ms, def->exporter.otlp.timeout_ms);
	ASSERT_STREQ(cfg->exporter.otlp.tls.ca_file, def->exporter.otlp.tls.ca_file);
	ASSERT_STREQ(cfg->exporter.otlp.tls.cert_file, def->exporter.otlp.tls.cert_file);
	ASSERT_STREQ(cfg->exporter.otlp.tls.key_file, def->exporter.otlp.tls.key_file);
	ASSERT_EQ(cfg->exporter.otlp.tls.insecure_skip_verify,
		  def->exporter.otlp.tls.insecure_skip_verify);
	ASSERT_U64_EQ(cfg->exporter.otlp.retry.initial_interval_ms,
		      def->exporter.otlp.retry.initial_interval_ms);
	ASSERT_U64_EQ(cfg->exporter.otlp.retry.max_interval_ms,
		      def->exporter.otlp.retry.max_interval_ms);
	ASSERT_U64_EQ(cfg->exporter.otlp.retry.max_elapsed_time_ms,
		      def->exporter.otlp.retry.max_elapsed_time_ms);
	ASSERT_EQ(cfg->exporter.otlp.queue_size, def->exporter.otlp.queue_size);
	ASSERT_EQ(cfg->exporter.stdout, def->exporter.stdout);
	ASSERT_STREQ(cfg->ui.listen, def->ui.listen);
	ASSERT_EQ(cfg->log.level, def->log.level);
	ASSERT_STREQ(cfg->self.service_name, def->self.service_name);
	ASSERT_TRUE(kv_equal(&cfg->self.attributes, &def->self.attributes));
	/* The shipped file holds no secret, so installing it 0644 is fine. */
	ASSERT_FALSE(config__world_readable_secrets(cfg));
out:
	config__free(cfg);
	config__free(def);
}

/* Collects the dotted path of every key the document sets, not descending into table keys. */
static void collect(yaml_document_t *doc, yaml_node_t *map, const char *prefix, char **found,
		    size_t *n, size_t max)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *key = yaml_document_get_node(doc, p->key);
		yaml_node_t *val = yaml_document_get_node(doc, p->value);
		char path[256];
		bool is_key = false;

		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "",
			 (const char *)key->data.scalar.value);
		for (size_t i = 0; i < config_key_count(); i++)
			is_key |= strcmp(config_key_path(i), path) == 0;
		if (*n < max)
			found[(*n)++] = strdup(path);
		if (!is_key && val->type == YAML_MAPPING_NODE)
			collect(doc, val, path, found, n, max);
	}
}

/* Every key of the table is set in the shipped file, in the table's order. */
TEST(config_doc_file_sets_every_key)
{
	char path[4096], *found[128], *text = NULL;
	size_t n = 0, len, next = 0;
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	FILE *f;

	snprintf(path, sizeof(path), "%s/config/tcpotel.yaml", test_srcdir());
	f = fopen(path, "rb");
	if (!ASSERT_NOT_NULL(f))
		return;
	text = malloc(1 << 20);
	len = fread(text, 1, (1 << 20) - 1, f);
	fclose(f);
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!ASSERT_TRUE(yaml_parser_load(&parser, &doc))) {
		yaml_parser_delete(&parser);
		free(text);
		return;
	}
	root = yaml_document_get_root_node(&doc);
	if (ASSERT_NOT_NULL(root) && ASSERT_EQ(root->type, YAML_MAPPING_NODE))
		collect(&doc, root, "", found, &n, ARRAY_SIZE(found));
	for (size_t i = 0; i < config_key_count(); i++) {
		const char *key = config_key_path(i);
		size_t at = n;

		for (size_t j = 0; j < n; j++)
			if (!strcmp(found[j], key))
				at = j;
		if (!ASSERT_TRUE(at < n))
			printf("    %s is not set in %s\n", key, path);
		else if (!ASSERT_GE(at, next))
			printf("    %s is out of the table's order in %s\n", key, path);
		else
			next = at;
	}
	for (size_t j = 0; j < n; j++)
		free(found[j]);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	free(text);
}

/* docs/configuration.md documents every key and every environment variable read. */
TEST(config_doc_reference_page)
{
	static const char *const vars[] = {
		"OTEL_EXPORTER_OTLP_ENDPOINT",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
		"OTEL_EXPORTER_OTLP_HEADERS",
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS",
		"OTEL_EXPORTER_OTLP_METRICS_HEADERS",
		"OTEL_EXPORTER_OTLP_TIMEOUT",
		"OTEL_EXPORTER_OTLP_COMPRESSION",
		"OTEL_EXPORTER_OTLP_CERTIFICATE",
		"OTEL_EXPORTER_OTLP_CLIENT_KEY",
		"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
		"OTEL_SERVICE_NAME",
		"OTEL_RESOURCE_ATTRIBUTES",
		"OTEL_METRIC_EXPORT_INTERVAL",
	};
	char path[4096], needle[300], *text;
	size_t len;
	FILE *f;

	snprintf(path, sizeof(path), "%s/docs/configuration.md", test_srcdir());
	f = fopen(path, "rb");
	if (!ASSERT_NOT_NULL(f))
		return;
	text = calloc(1, 1 << 20);
	len = fread(text, 1, (1 << 20) - 1, f);
	fclose(f);
	ASSERT_GT(len, 0);
	for (size_t i = 0; i < config_key_count(); i++) {
		snprintf(needle, sizeof(needle), "`%s`", config_key_path(i));
		if (!ASSERT_TRUE(strstr(text, needle) != NULL))
			printf("    %s does not document %s\n", path, needle);
	}
	for (size_t i = 0; i < ARRAY_SIZE(vars); i++) {
		snprintf(needle, sizeof(needle), "`%s`", vars[i]);
		if (!ASSERT_TRUE(strstr(text, needle) != NULL))
			printf("    %s does not document %s\n", path, needle);
	}
	free(text);
}
