/* docker_frames: Docker stream frame parser (see docker_frames.h). */
#include "server/docker_frames.h"

#include <string.h>

int docker_frames_feed(struct docker_frame_parser *p, const char *data, unsigned long len,
                       void (*emit)(void *ud, int stream, const char *data, unsigned long len),
                       void *ud)
{
    while (len > 0 && !p->bad) {
        if (p->left == 0) {
            unsigned long take = 8 - p->hdr_len < len ? 8 - p->hdr_len : len;
            memcpy(p->hdr + p->hdr_len, data, take);
            p->hdr_len += (unsigned)take;
            data += take;
            len -= take;
            if (p->hdr_len < 8)
                break;
            p->hdr_len = 0;
            if (p->hdr[0] > 2 || p->hdr[1] || p->hdr[2] || p->hdr[3]) {
                p->bad = true;
                break;
            }
            p->stream = p->hdr[0];
            p->left = (unsigned long)p->hdr[4] << 24 | (unsigned long)p->hdr[5] << 16 |
                      (unsigned long)p->hdr[6] << 8 | p->hdr[7];
            continue;
        }
        unsigned long take = p->left < len ? p->left : len;
        emit(ud, (int)p->stream, data, take);
        p->left -= take;
        data += take;
        len -= take;
    }
    return p->bad ? -1 : 0;
}

unsigned long docker_frames_want(const struct docker_frame_parser *p)
{
    return p->left ? p->left : 8 - p->hdr_len;
}
