/* SPDX-License-Identifier: Apache-2.0 */
/* The kernel <-> user-space ABI (bpf/tcpotel.h) with the __u* types it needs. */
#ifndef TCPOTEL_ABI_USER_H
#define TCPOTEL_ABI_USER_H

#include <linux/types.h>

#include "tcpotel.h"

#endif
