// SPDX-License-Identifier: Apache-2.0
/*
 * Container and pod ids in cgroup paths. What the runtimes and the kubelet
 * write, per cgroup driver:
 *
 *   systemd driver (cgroup v2, or each v1 hierarchy):
 *     /kubepods.slice/kubepods-burstable.slice/
 *       kubepods-burstable-pod1a2b3c4d_5e6f_7081_92a3_b4c5d6e7f809.slice/
 *       cri-containerd-<64 hex>.scope        (containerd)
 *       crio-<64 hex>.scope                  (CRI-O; crio-conmon-<id>.scope is its monitor)
 *       docker-<64 hex>.scope                (Docker through cri-dockerd)
 *     The Guaranteed class has no QoS level: kubepods-pod<uid>.slice.
 *     The pod UID's dashes are written as underscores (systemd unit names
 *     reserve '-' as the hierarchy separator).
 *   cgroupfs driver:
 *     /kubepods/burstable/pod1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809/<64 hex>
 *     /kubepods/burstable/pod<uid>/crio-<64 hex>
 *     /kubepods/pod<uid>/<64 hex>            (Guaranteed)
 *   outside Kubernetes: /system.slice/docker-<id>.scope, /docker/<id>,
 *     /machine.slice/libpod-<id>.scope/container (podman).
 *
 * Inside a cgroup namespace (a container with the host's PID namespace but
 * its own cgroup namespace) the same paths appear relative to the
 * namespace's root: /../../kubepods-besteffort-pod<uid>.slice/... The
 * patterns below do not depend on where the path starts.
 */
#include "cgroup.h"

#include <stdbool.h>
#include <string.h>

#include "util.h"

static bool is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool ends_component(const char *s, size_t len, size_t at, const char *suffix)
{
	size_t n = strlen(suffix);

	return at == len || s[at] == '/' || (len - at >= n && memcmp(s + at, suffix, n) == 0);
}

/*
 * A container id: 64 hex digits right after one of the runtimes' prefixes or
 * a '/', and before ".scope", '/' or the end. The innermost (last) one wins.
 */
static bool path_container_id(const char *s, size_t len, char out[CGROUP_CONTAINER_ID_LEN + 1])
{
	static const char *const prefixes[] = { "docker-", "cri-containerd-", "crio-", "libpod-",
						"/" };
	bool found = false;
	size_t run = 0;

	for (size_t i = 0; i < len; i++) {
		size_t start, end = i + 1;

		run = is_lower_hex(s[i]) ? run + 1 : 0;
		if (run < CGROUP_CONTAINER_ID_LEN || !ends_component(s, len, end, ".scope"))
			continue;
		/* A longer run of hex is not an id (and its tail is no id either). */
		if (run > CGROUP_CONTAINER_ID_LEN)
			continue;
		start = end - CGROUP_CONTAINER_ID_LEN;
		for (size_t k = 0; k < ARRAY_SIZE(prefixes); k++) {
			size_t plen = strlen(prefixes[k]);

			if (start >= plen && memcmp(s + start - plen, prefixes[k], plen) == 0) {
				memcpy(out, s + start, CGROUP_CONTAINER_ID_LEN);
				out[CGROUP_CONTAINER_ID_LEN] = '\0';
				found = true;
				break;
			}
		}
	}
	return found;
}

/* 8-4-4-4-12 lower-case hex digits, every separator `sep`. */
static bool uid_at(const char *p, char sep)
{
	for (int k = 0; k < CGROUP_POD_UID_LEN; k++) {
		bool at_sep = k == 8 || k == 13 || k == 18 || k == 23;

		if (at_sep ? p[k] != sep : !is_lower_hex(p[k]))
			return false;
	}
	return true;
}

/*
 * A pod UID: "pod" right after '/' (cgroupfs) or '-' (systemd), then the
 * UID with dashes (cgroupfs) or underscores (systemd), then '/', ".slice" or
 * the end, in a path under the kubelet's "kubepods". The last one wins.
 */
static bool path_pod_uid(const char *s, size_t len, char out[CGROUP_POD_UID_LEN + 1])
{
	static const char pod[] = "pod";
	const size_t plen = sizeof(pod) - 1;
	bool found = false;

	if (!memmem(s, len, "kubepods", 8))
		return false;
	for (size_t i = 1; i + plen + CGROUP_POD_UID_LEN <= len; i++) {
		const char *u = s + i + plen;
		size_t end = i + plen + CGROUP_POD_UID_LEN;

		if ((s[i - 1] != '/' && s[i - 1] != '-') || memcmp(s + i, pod, plen) ||
		    !(uid_at(u, '-') || uid_at(u, '_')) || !ends_component(s, len, end, ".slice"))
			continue;
		for (int k = 0; k < CGROUP_POD_UID_LEN; k++)
			out[k] = u[k] == '_' ? '-' : u[k];
		out[CGROUP_POD_UID_LEN] = '\0';
		found = true;
	}
	return found;
}

void cgroup_parse(const char *text, size_t len, struct cgroup_ids *out)
{
	const char *line, *end = text + len, *eol, *p;
	char uid[CGROUP_POD_UID_LEN + 1];

	memset(out, 0, sizeof(*out));
	for (line = text; line < end; line = eol + 1) {
		size_t n;

		eol = memchr(line, '\n', (size_t)(end - line));
		if (!eol)
			eol = end;
		/* The path is what follows the second ':'. */
		p = memchr(line, ':', (size_t)(eol - line));
		if (p)
			p = memchr(p + 1, ':', (size_t)(eol - p - 1));
		if (!p)
			continue;
		p++;
		n = (size_t)(eol - p);
		if (path_container_id(p, n, out->container_id)) {
			/* Both from this line: a pod UID seen on an earlier one is another cgroup's. */
			if (!path_pod_uid(p, n, out->pod_uid))
				out->pod_uid[0] = '\0';
			return;
		}
		if (!out->pod_uid[0] && path_pod_uid(p, n, uid))
			memcpy(out->pod_uid, uid, sizeof(uid));
	}
}
