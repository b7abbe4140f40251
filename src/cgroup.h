/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a process's cgroup says about where it runs: the container runtime's
 * id of its container (container.id) and, under Kubernetes, the UID of its
 * pod (k8s.pod.uid). Pure parsing of /proc/PID/cgroup's text: cgroup v1 and
 * v2, the kubelet's cgroupfs and systemd drivers, containerd, CRI-O, Docker
 * and podman layouts; paths relative to a cgroup namespace ("/../..") too.
 */
#ifndef TCPOTEL_CGROUP_H
#define TCPOTEL_CGROUP_H

#include <stddef.h>

#define CGROUP_CONTAINER_ID_LEN 64
#define CGROUP_POD_UID_LEN	36

struct cgroup_ids {
	char container_id[CGROUP_CONTAINER_ID_LEN + 1]; /* 64 lower-case hex digits, "" if none */
	/* 8-4-4-4-12 lower-case hex with dashes (the systemd driver's underscores
	 * put back), "" if none. */
	char pod_uid[CGROUP_POD_UID_LEN + 1];
};

/*
 * Parses the text of /proc/PID/cgroup ("hierarchy-id:controllers:path" lines).
 * The first line whose path names a container gives both ids; without one,
 * the first path that names a pod gives the pod's UID alone.
 */
void cgroup_parse(const char *text, size_t len, struct cgroup_ids *out);

#endif
