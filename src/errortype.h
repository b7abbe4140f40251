/* SPDX-License-Identifier: Apache-2.0 */
/*
 * error.type of a failed connection attempt or exchange (enum tcpotel_error,
 * bpf/tcpotel.h), as spans, metrics and the live map name it.
 */
#ifndef TCPOTEL_ERRORTYPE_H
#define TCPOTEL_ERRORTYPE_H

#include <stdbool.h>

#include "abi.h"

/* The error.type value; "_OTHER" (the semantic conventions' fallback) for an
 * attempt that failed otherwise; NULL for TCPOTEL_ERR_NONE. */
static inline const char *error_type_name(unsigned err)
{
	static const char *const names[TCPOTEL_ERR__COUNT] = {
		[TCPOTEL_ERR_NONE] = NULL,
		[TCPOTEL_ERR_CONNECTION_REFUSED] = "connection_refused",
		[TCPOTEL_ERR_TIMEOUT] = "timeout",
		[TCPOTEL_ERR_HOST_UNREACHABLE] = "host_unreachable",
		[TCPOTEL_ERR_NETWORK_UNREACHABLE] = "network_unreachable",
		[TCPOTEL_ERR_CONNECT_OTHER] = "_OTHER",
		[TCPOTEL_ERR_RESET] = "reset",
		[TCPOTEL_ERR_CLOSED_BY_PEER] = "closed_by_peer",
		[TCPOTEL_ERR_NO_RESPONSE] = "no_response",
	};

	return err < TCPOTEL_ERR__COUNT ? names[err] : "_OTHER";
}

#endif
