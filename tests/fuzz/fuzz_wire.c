/* fuzz_wire.c - the responder <-> dispatcher frames: bx_wire_hdr_decode and
 * bx_wire_recv.
 *
 * Input: byte 0 holds flags (bit 0: the receiving side expects an identity
 * frame, as the dispatcher's ROUTER does); the rest is a list of frames,
 * each a length byte and that many bytes (cut short at the end of input).
 *
 * Checked: bx_wire_hdr_decode accepts exactly the 16-byte headers with
 * version 1 and a known type, and bx_wire_hdr_encode gives the same bytes
 * back; the frames, sent as one multipart message over an inproc PAIR
 * socket, are accepted by bx_wire_recv exactly when their count matches the
 * header's type (identity and parts handed back unchanged), otherwise
 * refused with EPROTO and drained completely, so the next receive finds
 * nothing; bx_wire_msg_close is safe twice.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "wire.h"
#include "fuzz.h"

#define MAX_FRAMES 24
#define MAX_TOTAL (BX_WIRE_MAX_FRAMES + 2)   /* identity + header + parts */

/* One socket pair for the whole process: fuzzers call the target millions
 * of times, and sockets are expensive to make. */
static void *g_ctx, *g_tx, *g_rx;

static void s_sockets(void)
{
    if (g_ctx)
        return;
    g_ctx = zmq_ctx_new();
    g_tx = zmq_socket(g_ctx, ZMQ_PAIR);
    g_rx = zmq_socket(g_ctx, ZMQ_PAIR);
    if (!g_ctx || !g_tx || !g_rx || zmq_bind(g_rx, "inproc://fuzz-wire") < 0 ||
        zmq_connect(g_tx, "inproc://fuzz-wire") < 0) {
        fprintf(stderr, "fuzz_wire: zmq setup: %s\n", zmq_strerror(zmq_errno()));
        abort();
    }
}

/* Throws away whatever is waiting. */
static void s_drain(void)
{
    for (;;) {
        zmq_msg_t fr;
        zmq_msg_init(&fr);
        int rc = zmq_msg_recv(&fr, g_rx, ZMQ_DONTWAIT);
        zmq_msg_close(&fr);
        if (rc < 0 && errno != EINTR)
            return;
    }
}

static int s_known_type(uint8_t t)
{
    return t == 'Q' || t == 'C' || t == 'R' || t == 'H' || t == 'N';
}

static void s_check_header(const uint8_t *p, size_t n)
{
    bx_wire_hdr_t h;
    uint8_t out[BX_WIRE_HDR_LEN];
    int rc = bx_wire_hdr_decode(p, n, &h);
    int want = n == BX_WIRE_HDR_LEN && p[0] == BX_WIRE_VERSION && s_known_type(p[1]);
    CHECK((rc == 0) == want);
    CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        CHECK(bx_wire_frames_for(h.type) >= 0);
        bx_wire_hdr_encode(&h, out);
        CHECK(memcmp(out, p, BX_WIRE_HDR_LEN) == 0);
    }
    /* Encoding any header and decoding it gives the fields back. */
    if (n >= BX_WIRE_HDR_LEN) {
        bx_wire_hdr_t in, back;
        memcpy(&in.status, p + 4, 4);
        memcpy(&in.reqid, p + 8, 8);
        in.version = p[0];
        in.type = "QCRHN"[p[1] % 5];
        in.transport = p[2];
        in.flags = p[3];
        bx_wire_hdr_encode(&in, out);
        CHECK(bx_wire_hdr_decode(out, sizeof out, &back) == 0);
        CHECK(back.version == BX_WIRE_VERSION && back.type == in.type &&
              back.transport == in.transport && back.flags == in.flags &&
              back.status == in.status && back.reqid == in.reqid);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *fr[MAX_FRAMES];
    size_t len[MAX_FRAMES];
    int n = 0;

    s_check_header(data, size);
    if (size < 1)
        return 0;
    int has_id = data[0] & 1;
    size_t i = 1;
    while (n < MAX_FRAMES && (i < size || n == 0)) {
        size_t l = i < size ? data[i++] : 0;
        if (l > size - i)
            l = size - i;
        fr[n] = data + i;
        len[n] = l;
        s_check_header(fr[n], l);
        n++;
        i += l;
    }

    s_sockets();
    for (int k = 0; k < n; k++)
        CHECK(zmq_send(g_tx, fr[k], len[k], k < n - 1 ? ZMQ_SNDMORE : 0) == (int)len[k]);

    bx_wire_msg_t m;
    memset(&m, 0xa5, sizeof m);
    errno = 0;
    int rc = bx_wire_recv(g_rx, has_id, &m);
    if (rc < 0 && errno == EINTR) {
        /* libFuzzer's timeout alarm interrupted ZeroMQ: not the input's
         * doing. (The programs take signals through signalfd with the
         * signals blocked, so they never see this.) */
        s_drain();
        return 0;
    }

    bx_wire_hdr_t h;
    int hi = has_id;
    int valid = n <= MAX_TOTAL && n > hi && bx_wire_hdr_decode(fr[hi], len[hi], &h) == 0 &&
                n == hi + 1 + bx_wire_frames_for(h.type);
    if (valid) {
        CHECK(rc == 0);
        CHECK(m.hdr.type == h.type && m.hdr.reqid == h.reqid && m.hdr.status == h.status);
        CHECK(m.nparts == n - hi - 1);
        if (has_id)
            CHECK(m.idlen == len[0] && memcmp(m.identity, fr[0], len[0]) == 0);
        else
            CHECK(m.identity == NULL);
        for (int k = 0; k < m.nparts; k++)
            CHECK(m.part_len[k] == len[hi + 1 + k] &&
                  memcmp(m.part[k], fr[hi + 1 + k], len[hi + 1 + k]) == 0);
    } else {
        CHECK(rc == -1 && errno == EPROTO);
        CHECK(m.nparts == 0 && m.frames_ == NULL && m.identity == NULL);
    }
    bx_wire_msg_close(&m);
    bx_wire_msg_close(&m);

    /* Every frame of the message was consumed, valid or not. */
    do
        rc = bx_wire_recv(g_rx, has_id, &m);
    while (rc < 0 && errno == EINTR);
    CHECK(rc == 1 && errno == EAGAIN);
    bx_wire_msg_close(&m);
    return 0;
}
