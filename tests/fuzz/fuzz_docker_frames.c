/* libFuzzer target for server/docker_frames (the stream frames lambdad's
 * Docker API accepts from command runners).
 *
 * Input: 1 control byte (seed of the piece sizes), then a byte stream. It
 * is parsed twice: whole, and in pseudo-random pieces (down to one byte).
 * Both passes must emit the same bytes per stream and end in the same
 * state (error or not); no piece may be empty or name a stream above 2;
 * the payload emitted never exceeds the input. Violations trap.
 *
 * The parser source is compiled into this target so that coverage
 * instrumentation applies to it. */
#include "../../server/docker_frames.c"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
    return "halt_on_error=1:print_stacktrace=1";
}

struct acc {
    unsigned char *buf[3];
    size_t n[3], cap;
};

static void emit(void *ud, int stream, const char *data, unsigned long len)
{
    struct acc *a = ud;
    if (stream < 0 || stream > 2 || len == 0 || a->n[stream] + len > a->cap)
        __builtin_trap();
    memcpy(a->buf[stream] + a->n[stream], data, len);
    a->n[stream] += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned seed = data[0];
    data++;
    size--;
    struct acc a = {.cap = size}, b = {.cap = size};
    for (int i = 0; i < 3; i++) {
        a.buf[i] = malloc(size + 1);
        b.buf[i] = malloc(size + 1);
    }
    struct docker_frame_parser p = {0}, q = {0};
    int ra = docker_frames_feed(&p, (const char *)data, size, emit, &a);
    int rb = 0;
    for (size_t off = 0; off < size;) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % 13;
        if (piece > size - off)
            piece = size - off;
        rb = docker_frames_feed(&q, (const char *)data + off, piece, emit, &b);
        off += piece;
    }
    if (ra != rb || p.bad != q.bad || p.left != q.left || p.hdr_len != q.hdr_len)
        __builtin_trap();
    for (int i = 0; i < 3; i++)
        if (a.n[i] != b.n[i] || memcmp(a.buf[i], b.buf[i], a.n[i]) != 0)
            __builtin_trap();
    for (int i = 0; i < 3; i++) {
        free(a.buf[i]);
        free(b.buf[i]);
    }
    return 0;
}
