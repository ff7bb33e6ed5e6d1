/* docker_frames: an incremental parser of Docker's multiplexed stream
 * format (the body of attach/logs for non-TTY containers, and what lambdad's
 * command runner sends): frames of an 8-byte header {stream, 0, 0, 0,
 * big-endian 32-bit length} followed by that many payload bytes.
 *
 * DESIGN: the parser holds only the partial header and the payload bytes
 * still owed, so input may be split anywhere (one byte at a time); payload
 * is handed to the caller as it arrives, never copied or buffered.
 *
 * Thread rules: a parser belongs to one thread (one connection). */
#ifndef LAMBDAD_SERVER_DOCKER_FRAMES_H
#define LAMBDAD_SERVER_DOCKER_FRAMES_H

#include <stdbool.h>

struct docker_frame_parser {
    unsigned char hdr[8];
    unsigned hdr_len;   /* header bytes held */
    unsigned stream;    /* of the current frame */
    unsigned long left; /* payload bytes left in the current frame */
    bool bad;           /* a bad header was seen: everything after is refused */
};

/* Feeds len bytes (zero-initialise the parser first). Calls emit for each
 * payload piece with the frame's stream number (0 stdin, 1 stdout, 2
 * stderr; a piece is never empty). Returns 0, or -1 once a header has an
 * unknown stream number or non-zero padding (sticky: later calls return -1
 * and emit nothing). */
int docker_frames_feed(struct docker_frame_parser *p, const char *data, unsigned long len,
                       void (*emit)(void *ud, int stream, const char *data, unsigned long len),
                       void *ud);

/* How many bytes the parser needs to finish its current header or frame
 * (at least 1): a reader that must not over-read can ask for exactly this. */
unsigned long docker_frames_want(const struct docker_frame_parser *p);

#endif
