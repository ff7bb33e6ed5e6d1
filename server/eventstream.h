/* eventstream: the application/vnd.amazon.eventstream message encoding
 * (InvokeWithResponseStream's response framing).
 *
 * DESIGN: a message is a 12-byte prelude (total length, headers length,
 * CRC32 of those 8 bytes; big-endian), the headers (1-byte name length,
 * name, value type 7 = string, 2-byte value length, value), the payload and
 * a CRC32 of everything before it. zlib's crc32 is the checksum AWS uses.
 * Only what Lambda sends is encoded: event messages with string headers
 * :event-type, :content-type and :message-type.
 *
 * Thread rules: pure functions, any thread. */
#ifndef LAMBDAD_SERVER_EVENTSTREAM_H
#define LAMBDAD_SERVER_EVENTSTREAM_H

#include <stddef.h>

/* Encodes one event message into a malloc'd buffer (*out, *outlen).
 * Returns 0, or -1 when out of memory or a field is too long. */
int eventstream_encode(const char *event_type, const char *content_type, const void *payload,
                       size_t payload_len, unsigned char **out, size_t *outlen);

#endif
