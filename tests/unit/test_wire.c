/* test_wire.c - header encoding and whole messages over a ROUTER/DEALER pair
 * on inproc://, including malformed messages that must be dropped cleanly. */
#include "wire.h"
#include "tap.h"

#include <errno.h>
#include <string.h>
#include <zmq.h>

static void *s_router, *s_dealer;

/* Waits (up to 2 s) until sock is readable, then receives one message. */
static int s_recv(void *sock, int has_identity, bx_wire_msg_t *m)
{
    zmq_pollitem_t it = { .socket = sock, .events = ZMQ_POLLIN };
    zmq_poll(&it, 1, 2000);
    return bx_wire_recv(sock, has_identity, m);
}

/* Sends raw frames from the dealer, bypassing bx_wire_send. */
static void s_send_raw(const void *const *data, const size_t *len, int n)
{
    for (int i = 0; i < n; i++)
        zmq_send(s_dealer, data[i], len[i], i < n - 1 ? ZMQ_SNDMORE : 0);
}

static void test_header(void)
{
    bx_wire_hdr_t h = { .version = 9, .type = BX_WIRE_REPLY, .transport = 2,
                        .flags = 0xA5, .status = 0x11223344u,
                        .reqid = 0x0102030405060708ull };
    uint8_t b[BX_WIRE_HDR_LEN];
    bx_wire_hdr_encode(&h, b);
    const uint8_t want[BX_WIRE_HDR_LEN] = { 1, 'R', 2, 0xA5, 0x44, 0x33, 0x22, 0x11,
                                            8, 7, 6, 5, 4, 3, 2, 1 };
    ok(memcmp(b, want, sizeof want) == 0, "header bytes: little-endian, version forced");

    bx_wire_hdr_t d;
    memset(&d, 0, sizeof d);
    is_int(bx_wire_hdr_decode(b, sizeof b, &d), 0, "decode");
    ok(d.version == 1 && d.type == 'R' && d.transport == 2 && d.flags == 0xA5 &&
       d.status == 0x11223344u && d.reqid == 0x0102030405060708ull, "decode round trip");
    is_int(bx_wire_hdr_decode(b, sizeof b - 1, &d), -1, "decode short");
    is_int(bx_wire_hdr_decode(b, 0, &d), -1, "decode empty");
    b[0] = 2;
    is_int(bx_wire_hdr_decode(b, sizeof b, &d), -1, "decode bad version");
    b[0] = 1;
    b[1] = 'X';
    is_int(bx_wire_hdr_decode(b, sizeof b, &d), -1, "decode unknown type");

    is_int(bx_wire_frames_for(BX_WIRE_REQUEST), 3, "request frames");
    is_int(bx_wire_frames_for(BX_WIRE_CANCEL), 0, "cancel frames");
    is_int(bx_wire_frames_for(BX_WIRE_REPLY), 2, "reply frames");
    is_int(bx_wire_frames_for(BX_WIRE_HELLO), 1, "hello frames");
    is_int(bx_wire_frames_for('Z'), -1, "unknown type frames");
}

static int s_part_is(const bx_wire_msg_t *m, int i, const char *want)
{
    return i < m->nparts && m->part_len[i] == strlen(want) &&
           memcmp(m->part[i], want, m->part_len[i]) == 0;
}

/* Sends a good HELLO and checks that it arrives: the socket still works. */
static void s_check_next_good(const char *what)
{
    bx_wire_hdr_t h = { .type = BX_WIRE_HELLO };
    bx_wire_part_t p = { "pid=1", 5 };
    bx_wire_send(s_dealer, NULL, 0, &h, &p, 1, ZMQ_DONTWAIT);
    bx_wire_msg_t m;
    int rc = s_recv(s_router, 1, &m);
    ok(rc == 0 && m.hdr.type == BX_WIRE_HELLO && s_part_is(&m, 0, "pid=1"),
       "next good message after %s", what);
    bx_wire_msg_close(&m);
}

static void test_round_trips(void)
{
    bx_wire_msg_t m;
    memset(&m, 0, sizeof m);

    is_int(bx_wire_recv(s_router, 1, &m), 1, "nothing waiting: 1");

    /* HELLO */
    bx_wire_hdr_t h = { .type = BX_WIRE_HELLO };
    bx_wire_part_t hello = { "pid=4242", 8 };
    is_int(bx_wire_send(s_dealer, NULL, 0, &h, &hello, 1, ZMQ_DONTWAIT), 0, "send hello");
    is_int(s_recv(s_router, 1, &m), 0, "recv hello");
    ok(m.hdr.type == BX_WIRE_HELLO && m.hdr.reqid == 0 && m.nparts == 1 &&
       s_part_is(&m, 0, "pid=4242"), "hello contents");
    ok(m.identity != NULL && m.idlen > 0, "router sees an identity");
    bx_wire_msg_close(&m);
    bx_wire_msg_close(&m);
    ok(m.identity == NULL && m.nparts == 0, "close twice is safe");

    /* REQUEST: dealer -> router */
    const char *body = "[{\"channel\":\"/meta/handshake\"}]";
    bx_wire_hdr_t rq = { .type = BX_WIRE_REQUEST, .transport = BX_TRANSPORT_LONG_POLLING,
                         .flags = 3, .reqid = 0xFFFFFFFF00000001ull };
    bx_wire_part_t parts[3] = { { "browser1", 8 }, { "127.0.0.1", 9 }, { body, strlen(body) } };
    is_int(bx_wire_send(s_dealer, NULL, 0, &rq, parts, 3, ZMQ_DONTWAIT), 0, "send request");
    is_int(s_recv(s_router, 1, &m), 0, "recv request");
    ok(m.hdr.version == BX_WIRE_VERSION && m.hdr.type == BX_WIRE_REQUEST &&
       m.hdr.transport == BX_TRANSPORT_LONG_POLLING && m.hdr.flags == 3 &&
       m.hdr.status == 0 && m.hdr.reqid == 0xFFFFFFFF00000001ull, "request header");
    ok(m.nparts == 3 && s_part_is(&m, 0, "browser1") && s_part_is(&m, 1, "127.0.0.1") &&
       s_part_is(&m, 2, body), "request frames");

    /* REPLY: router -> that dealer, addressed by the identity just seen. */
    char ident[256];
    size_t idlen = m.idlen < sizeof ident ? m.idlen : sizeof ident;
    memcpy(ident, m.identity, idlen);
    uint64_t reqid = m.hdr.reqid;
    bx_wire_msg_close(&m);

    bx_wire_hdr_t rp = { .type = BX_WIRE_REPLY, .status = 200, .reqid = reqid };
    const char *reply = "[{\"successful\":true}]";
    bx_wire_part_t rparts[2] = { { NULL, 0 }, { reply, strlen(reply) } };
    is_int(bx_wire_send(s_router, ident, idlen, &rp, rparts, 2, ZMQ_DONTWAIT), 0,
           "send reply");
    is_int(s_recv(s_dealer, 0, &m), 0, "recv reply");
    ok(m.hdr.type == BX_WIRE_REPLY && m.hdr.status == 200 && m.hdr.reqid == reqid,
       "reply header");
    ok(m.identity == NULL && m.nparts == 2 && m.part_len[0] == 0 &&
       s_part_is(&m, 1, reply), "reply frames (empty browser id)");
    bx_wire_msg_close(&m);

    /* CANCEL: header only. */
    bx_wire_hdr_t cn = { .type = BX_WIRE_CANCEL, .reqid = 77 };
    is_int(bx_wire_send(s_dealer, NULL, 0, &cn, NULL, 0, ZMQ_DONTWAIT), 0, "send cancel");
    is_int(s_recv(s_router, 1, &m), 0, "recv cancel");
    ok(m.hdr.type == BX_WIRE_CANCEL && m.hdr.reqid == 77 && m.nparts == 0, "cancel contents");
    bx_wire_msg_close(&m);

    /* A reply to a peer that does not exist, with ROUTER_MANDATORY. */
    errno = 0;
    is_int(bx_wire_send(s_router, "nobody", 6, &rp, rparts, 2, ZMQ_DONTWAIT), -1,
           "send to an unknown peer fails");
    is_int(errno, EHOSTUNREACH, "... with EHOSTUNREACH");
    is_int(bx_wire_recv(s_dealer, 0, &m), 1, "and nothing reached the dealer");
}

static void test_malformed(void)
{
    uint8_t hdr[BX_WIRE_HDR_LEN];
    bx_wire_hdr_t h = { .type = BX_WIRE_REQUEST, .reqid = 5 };
    bx_wire_msg_t m;

    bx_wire_hdr_encode(&h, hdr);
    const void *d[24];
    size_t l[24];
    for (int i = 0; i < 24; i++) {
        d[i] = "x";
        l[i] = 1;
    }

    /* Header one byte short. */
    d[0] = hdr; l[0] = BX_WIRE_HDR_LEN - 1;
    s_send_raw(d, l, 4);
    errno = 0;
    is_int(s_recv(s_router, 1, &m), -1, "short header: -1");
    is_int(errno, EPROTO, "short header: EPROTO");
    ok(m.frames_ == NULL && m.nparts == 0, "short header: nothing kept");
    bx_wire_msg_close(&m);
    s_check_next_good("a short header");

    /* Header one byte long. */
    uint8_t longhdr[BX_WIRE_HDR_LEN + 1];
    memcpy(longhdr, hdr, BX_WIRE_HDR_LEN);
    longhdr[BX_WIRE_HDR_LEN] = 0;
    d[0] = longhdr; l[0] = sizeof longhdr;
    s_send_raw(d, l, 4);
    is_int(s_recv(s_router, 1, &m), -1, "long header: -1");
    s_check_next_good("a long header");

    /* Bad version. */
    uint8_t badv[BX_WIRE_HDR_LEN];
    memcpy(badv, hdr, sizeof badv);
    badv[0] = BX_WIRE_VERSION + 1;
    d[0] = badv; l[0] = sizeof badv;
    s_send_raw(d, l, 4);
    is_int(s_recv(s_router, 1, &m), -1, "bad version: -1");
    s_check_next_good("a bad version");

    /* Unknown type. */
    uint8_t badt[BX_WIRE_HDR_LEN];
    memcpy(badt, hdr, sizeof badt);
    badt[1] = 'Z';
    d[0] = badt; l[0] = sizeof badt;
    s_send_raw(d, l, 4);
    is_int(s_recv(s_router, 1, &m), -1, "unknown type: -1");
    s_check_next_good("an unknown type");

    /* Too few frames: a request with 2 of its 3. */
    d[0] = hdr; l[0] = sizeof hdr;
    s_send_raw(d, l, 3);
    is_int(s_recv(s_router, 1, &m), -1, "too few frames: -1");
    s_check_next_good("too few frames");

    /* Header alone for a request. */
    s_send_raw(d, l, 1);
    is_int(s_recv(s_router, 1, &m), -1, "header only: -1");
    s_check_next_good("a lone header");

    /* Too many frames: one extra, then far more than the cap. */
    s_send_raw(d, l, 5);
    is_int(s_recv(s_router, 1, &m), -1, "one frame too many: -1");
    s_check_next_good("one frame too many");
    s_send_raw(d, l, 24);
    is_int(s_recv(s_router, 1, &m), -1, "24 frames: -1");
    s_check_next_good("24 frames");

    /* An empty frame where the header should be. */
    d[0] = ""; l[0] = 0;
    s_send_raw(d, l, 1);
    is_int(s_recv(s_router, 1, &m), -1, "empty header frame: -1");
    s_check_next_good("an empty header frame");

    is_int(bx_wire_recv(s_router, 1, &m), 1, "queue drained");
}

int main(void)
{
    void *ctx = zmq_ctx_new();
    s_router = zmq_socket(ctx, ZMQ_ROUTER);
    s_dealer = zmq_socket(ctx, ZMQ_DEALER);
    int one = 1, zero = 0;
    zmq_setsockopt(s_router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(s_router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s_dealer, ZMQ_LINGER, &zero, sizeof zero);
    ok(zmq_bind(s_router, "inproc://bx-test-wire") == 0, "bind router");
    ok(zmq_connect(s_dealer, "inproc://bx-test-wire") == 0, "connect dealer");

    test_header();
    test_round_trips();
    test_malformed();

    zmq_close(s_dealer);
    zmq_close(s_router);
    zmq_ctx_term(ctx);
    done_testing();
    return exit_status();
}
