// SPDX-License-Identifier: Apache-2.0
#include "listeners.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define MAX_NETNS	 4096
#define TCP_LISTEN_STATE 0x0A

static int scan_file(const char *path, uint32_t netns, struct listener *out, size_t max, size_t *n)
{
	char line[512];
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	/* "  0: 0100007F:1F90 00000000:0000 0A ..." after a header line. */
	while (fgets(line, sizeof(line), f)) {
		char local[64];
		unsigned int port, state;
		char *colon;

		if (sscanf(line, " %*u: %63s %*s %x", local, &state) != 2 ||
		    state != TCP_LISTEN_STATE)
			continue;
		colon = strrchr(local, ':');
		if (!colon || sscanf(colon + 1, "%x", &port) != 1)
			continue;
		if (*n < max) {
			out[*n].netns = netns;
			out[*n].port = (uint16_t)port;
			(*n)++;
		}
	}
	fclose(f);
	return 0;
}

static int seen_before(const uint32_t *seen, size_t n, uint32_t ino)
{
	for (size_t i = 0; i < n; i++)
		if (seen[i] == ino)
			return 1;
	return 0;
}

int listeners_scan(const char *proc_root, struct listener *out, size_t max)
{
	uint32_t *seen = calloc(MAX_NETNS, sizeof(*seen));
	size_t n_seen = 0, n = 0;
	struct dirent *de;
	DIR *dir;

	if (!seen)
		return -ENOMEM;
	dir = opendir(proc_root);
	if (!dir) {
		int err = -errno;

		free(seen);
		return err;
	}
	while ((de = readdir(dir)) && n_seen < MAX_NETNS) {
		char path[PATH_MAX], link[64];
		unsigned long ino;
		ssize_t len;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "%s/%s/ns/net", proc_root, de->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		if (sscanf(link, "net:[%lu]", &ino) != 1 ||
		    seen_before(seen, n_seen, (uint32_t)ino))
			continue;
		seen[n_seen++] = (uint32_t)ino;
		snprintf(path, sizeof(path), "%s/%s/net/tcp", proc_root, de->d_name);
		scan_file(path, (uint32_t)ino, out, max, &n);
		snprintf(path, sizeof(path), "%s/%s/net/tcp6", proc_root, de->d_name);
		scan_file(path, (uint32_t)ino, out, max, &n);
	}
	closedir(dir);
	free(seen);
	return (int)n;
}
