/* eventstream: event stream message encoding (see eventstream.h). */
#include "server/eventstream.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define PRELUDE 12
#define MAX_MESSAGE (32u << 20)

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Appends a string header; returns the new offset. */
static size_t put_header(unsigned char *p, size_t o, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    p[o++] = (unsigned char)nl;
    memcpy(p + o, name, nl);
    o += nl;
    p[o++] = 7; /* string */
    p[o++] = (unsigned char)(vl >> 8);
    p[o++] = (unsigned char)vl;
    memcpy(p + o, value, vl);
    return o + vl;
}

int eventstream_encode(const char *event_type, const char *content_type, const void *payload,
                       size_t payload_len, unsigned char **out, size_t *outlen)
{
    const char *names[3] = {":event-type", ":content-type", ":message-type"};
    const char *values[3] = {event_type, content_type, "event"};
    size_t hlen = 0;
    for (int i = 0; i < 3; i++) {
        if (strlen(values[i]) > 0xffff)
            return -1;
        hlen += 1 + strlen(names[i]) + 1 + 2 + strlen(values[i]);
    }
    size_t total = PRELUDE + hlen + payload_len + 4;
    if (total > MAX_MESSAGE)
        return -1;
    unsigned char *m = malloc(total);
    if (!m)
        return -1;
    put32(m, (uint32_t)total);
    put32(m + 4, (uint32_t)hlen);
    put32(m + 8, (uint32_t)crc32(0, m, 8));
    size_t o = PRELUDE;
    for (int i = 0; i < 3; i++)
        o = put_header(m, o, names[i], values[i]);
    if (payload_len)
        memcpy(m + o, payload, payload_len);
    o += payload_len;
    put32(m + o, (uint32_t)crc32(0, m, (uInt)o));
    *out = m;
    *outlen = total;
    return 0;
}
