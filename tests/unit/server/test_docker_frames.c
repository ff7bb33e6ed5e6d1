/* docker_frames: Docker stream frames split anywhere, zero-length frames,
 * bad headers (sticky), and docker_frames_want. */
#include <stdlib.h>
#include <string.h>

#include "server/docker_frames.h"
#include "testing.h"

struct sink {
    char out[3][256];
    size_t n[3];
    int calls;
    bool empty_piece;
};

static void emit(void *ud, int stream, const char *data, unsigned long len)
{
    struct sink *s = ud;
    s->calls++;
    if (len == 0)
        s->empty_piece = true;
    if (stream < 0 || stream > 2 || s->n[stream] + len > sizeof s->out[0])
        return;
    memcpy(s->out[stream] + s->n[stream], data, len);
    s->n[stream] += len;
}

static size_t frame(char *buf, int stream, const char *payload, size_t len)
{
    buf[0] = (char)stream;
    buf[1] = buf[2] = buf[3] = 0;
    buf[4] = (char)(len >> 24);
    buf[5] = (char)(len >> 16);
    buf[6] = (char)(len >> 8);
    buf[7] = (char)len;
    memcpy(buf + 8, payload, len);
    return 8 + len;
}

int main(void)
{
    char in[512];
    size_t n = 0;
    n += frame(in + n, 1, "out\n", 4);
    n += frame(in + n, 2, "err\n", 4);
    n += frame(in + n, 1, "", 0); /* zero-length frame */
    n += frame(in + n, 1, "more", 4);

    /* Whole, then one byte at a time: the same streams. */
    for (size_t step = 1; step <= n; step = step == 1 ? n : n + 1) {
        struct docker_frame_parser p = {0};
        struct sink s = {0};
        for (size_t off = 0; off < n; off += step) {
            size_t len = off + step > n ? n - off : step;
            CHECK(docker_frames_feed(&p, in + off, len, emit, &s) == 0);
        }
        CHECK(s.n[1] == 8 && memcmp(s.out[1], "out\nmore", 8) == 0);
        CHECK(s.n[2] == 4 && memcmp(s.out[2], "err\n", 4) == 0);
        CHECK(!s.empty_piece);
        CHECK(p.left == 0 && p.hdr_len == 0);
        CHECK(docker_frames_want(&p) == 8);
    }

    /* want: header bytes still missing, then the payload owed. */
    struct docker_frame_parser p = {0};
    struct sink s = {0};
    CHECK(docker_frames_feed(&p, in, 3, emit, &s) == 0 && docker_frames_want(&p) == 5);
    CHECK(docker_frames_feed(&p, in + 3, 6, emit, &s) == 0 && docker_frames_want(&p) == 3);

    /* Unknown stream number and non-zero padding are refused, stickily. */
    char bad[16];
    frame(bad, 3, "x", 1);
    struct docker_frame_parser q = {0};
    CHECK(docker_frames_feed(&q, bad, 9, emit, &s) == -1);
    CHECK(docker_frames_feed(&q, in, n, emit, &s) == -1);
    frame(bad, 1, "x", 1);
    bad[2] = 1;
    struct docker_frame_parser r = {0};
    int calls = s.calls;
    CHECK(docker_frames_feed(&r, bad, 9, emit, &s) == -1 && s.calls == calls);

    /* A huge declared length just waits for more payload. */
    char big[8] = {1, 0, 0, 0, (char)0xff, (char)0xff, (char)0xff, (char)0xff};
    struct docker_frame_parser b = {0};
    CHECK(docker_frames_feed(&b, big, 8, emit, &s) == 0 && docker_frames_want(&b) == 0xffffffffUL);
    return TEST_DONE();
}
