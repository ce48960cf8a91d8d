/* wire.c - frames between bayeux-fcgi and bayeuxd (layout in wire.h). */
#include "wire.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* Identity + header + the most frames any type carries. Longer messages are
 * drained and dropped. */
#define WIRE_MAX_TOTAL (BX_WIRE_MAX_FRAMES + 2)

void bx_wire_hdr_encode(const bx_wire_hdr_t *h, uint8_t out[BX_WIRE_HDR_LEN])
{
    out[0] = BX_WIRE_VERSION;
    out[1] = h->type;
    out[2] = h->transport;
    out[3] = h->flags;
    for (int i = 0; i < 4; i++)
        out[4 + i] = (uint8_t)(h->status >> (8 * i));
    for (int i = 0; i < 8; i++)
        out[8 + i] = (uint8_t)(h->reqid >> (8 * i));
}

int bx_wire_frames_for(uint8_t type)
{
    switch (type) {
    case BX_WIRE_REQUEST: return BX_WIRE_REQUEST_FRAMES;
    case BX_WIRE_CANCEL: return BX_WIRE_CANCEL_FRAMES;
    case BX_WIRE_REPLY: return BX_WIRE_REPLY_FRAMES;
    case BX_WIRE_HELLO: return BX_WIRE_HELLO_FRAMES;
    case BX_WIRE_NOTE: return BX_WIRE_NOTE_FRAMES;
    default: return -1;
    }
}

int bx_wire_hdr_decode(const void *buf, size_t len, bx_wire_hdr_t *h)
{
    const uint8_t *p = buf;
    if (!p || len != BX_WIRE_HDR_LEN || p[0] != BX_WIRE_VERSION ||
        bx_wire_frames_for(p[1]) < 0)
        return -1;
    h->version = p[0];
    h->type = p[1];
    h->transport = p[2];
    h->flags = p[3];
    h->status = 0;
    for (int i = 0; i < 4; i++)
        h->status |= (uint32_t)p[4 + i] << (8 * i);
    h->reqid = 0;
    for (int i = 0; i < 8; i++)
        h->reqid |= (uint64_t)p[8 + i] << (8 * i);
    return 0;
}

int bx_wire_send(void *sock, const void *identity, size_t idlen,
                 const bx_wire_hdr_t *h, const bx_wire_part_t *parts, int nparts,
                 int flags)
{
    uint8_t hdr[BX_WIRE_HDR_LEN];
    int total = (identity ? 1 : 0) + 1 + (nparts > 0 ? nparts : 0);
    int sent = 0;

    bx_wire_hdr_encode(h, hdr);
    for (int i = 0; i < total; i++) {
        const void *data;
        size_t len;
        if (identity && i == 0) {
            data = identity;
            len = idlen;
        } else if (i == (identity ? 1 : 0)) {
            data = hdr;
            len = sizeof hdr;
        } else {
            const bx_wire_part_t *pt = &parts[i - (identity ? 2 : 1)];
            data = pt->data ? pt->data : "";
            len = pt->data ? pt->len : 0;
        }
        int more = i < total - 1 ? ZMQ_SNDMORE : 0;
        if (zmq_send(sock, data, len, flags | more) < 0)
            return -1;
        sent++;
    }
    return sent == total ? 0 : -1;
}

static void s_close_frames(zmq_msg_t *fr, int n)
{
    for (int i = 0; i < n; i++)
        zmq_msg_close(&fr[i]);
    free(fr);
}

int bx_wire_recv(void *sock, int has_identity, bx_wire_msg_t *m)
{
    zmq_msg_t first;
    zmq_msg_t *fr;
    int n = 0;          /* frames kept in fr */
    int extra = 0;      /* frames beyond WIRE_MAX_TOTAL, read and dropped */
    int more;
    int hi = has_identity ? 1 : 0;   /* index of the header frame */

    memset(m, 0, sizeof *m);
    /* The first frame on the stack: the last call of a busy loop finds
     * nothing (EAGAIN) and allocates nothing. Every slot of fr is
     * initialised before use, so it needs no zeroing. */
    zmq_msg_init(&first);
    if (zmq_msg_recv(&first, sock, ZMQ_DONTWAIT) < 0) {
        int e = errno;
        zmq_msg_close(&first);
        errno = e;
        return e == EAGAIN ? 1 : -1;
    }
    fr = bx_malloc(WIRE_MAX_TOTAL * sizeof *fr);
    zmq_msg_init(&fr[0]);
    zmq_msg_move(&fr[0], &first);
    zmq_msg_close(&first);
    n = 1;
    more = zmq_msg_more(&fr[0]);
    /* The rest of a multipart message arrives with its first frame, so
     * these reads never wait. */
    while (more) {
        zmq_msg_t scratch;
        zmq_msg_t *slot = n < WIRE_MAX_TOTAL ? &fr[n] : &scratch;
        zmq_msg_init(slot);
        if (zmq_msg_recv(slot, sock, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(slot);
            s_close_frames(fr, n);
            errno = e;
            return -1;
        }
        more = zmq_msg_more(slot);
        if (slot == &scratch) {
            zmq_msg_close(slot);
            extra++;
        } else {
            n++;
        }
    }

    if (extra || n <= hi)
        goto error;
    if (bx_wire_hdr_decode(zmq_msg_data(&fr[hi]), zmq_msg_size(&fr[hi]), &m->hdr) < 0)
        goto error;
    int nparts = bx_wire_frames_for(m->hdr.type);
    if (n != hi + 1 + nparts)
        goto error;

    if (has_identity) {
        m->identity = zmq_msg_data(&fr[0]);
        m->idlen = zmq_msg_size(&fr[0]);
    }
    m->nparts = nparts;
    for (int i = 0; i < nparts; i++) {
        m->part[i] = zmq_msg_data(&fr[hi + 1 + i]);
        m->part_len[i] = zmq_msg_size(&fr[hi + 1 + i]);
    }
    m->frames_ = fr;
    m->nframes_ = n;
    return 0;

error:
    s_close_frames(fr, n);
    memset(m, 0, sizeof *m);
    errno = EPROTO;
    return -1;
}

void bx_wire_msg_close(bx_wire_msg_t *m)
{
    if (!m)
        return;
    if (m->frames_)
        s_close_frames(m->frames_, m->nframes_);
    memset(m, 0, sizeof *m);
}
