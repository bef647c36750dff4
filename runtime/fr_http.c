/*
 * fr_http.c: the HTTP side of the provider seam (placeholder).
 *
 * This first version only defines the seam so the rest of the runtime links;
 * the real client (shared curl connection cache, per-endpoint limiter, key
 * checks) replaces it.
 */
#include "fr_internal.h"

#include <stdlib.h>
#include <string.h>

struct fr_http {
    int unused;                    /* placeholder until the real client lands */
};

fr_http *fr_http_new(const fr_program *prog, bool mock_all, fr_buf *err)
{
    fr_http *h = calloc(1, sizeof *h);
    if (!h)
        fr_buf_puts(err, "out of memory");
    return h;
}

void fr_http_free(fr_http *h)
{
    free(h);
}

void fr_http_call(fr_http *h, const fr_request *req, fr_response *resp)
{
    resp->outcome = FR_FATAL;
    resp->error = strdup("HTTP providers are not built yet");
    resp->retry_after_ms = -1;
}
