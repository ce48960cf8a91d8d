/* wire.h - frames between bayeux-fcgi (ZeroMQ DEALER) and bayeuxd (ROUTER).
 *
 * Every message is multipart. The ROUTER adds/strips the peer identity frame;
 * what follows is the same in both directions:
 *
 *   frame 0  header, exactly BX_WIRE_HDR_LEN bytes (little-endian):
 *              u8  version   BX_WIRE_VERSION
 *              u8  type      BX_WIRE_REQUEST / _CANCEL / _REPLY / _HELLO / _NOTE
 *              u8  transport BX_TRANSPORT_* (request) or 0
 *              u8  flags     reserved, 0
 *              u32 status    HTTP status (reply), else 0
 *              u64 reqid     responder-local request id (0 for HELLO)
 *   REQUEST (responder -> dispatcher), 4 frames after the header:
 *     frame 1  browser id from the BAYEUX_BROWSER cookie ("" if none)
 *     frame 2  client address (REMOTE_ADDR, "" if unknown)
 *     frame 3  the Bayeux JSON text, already checked by the responder
 *   CANCEL (responder -> dispatcher): header only. The HTTP client went away
 *     (the web server closed the FastCGI connection); nothing may be delivered
 *     into that request any more.
 *   REPLY (dispatcher -> responder), 2 frames after the header:
 *     frame 1  browser id to set as the BAYEUX_BROWSER cookie ("" = none)
 *     frame 2  the response body (a JSON array), may be empty when status is
 *              not 200
 *   HELLO (responder -> dispatcher), 1 frame after the header:
 *     frame 1  "pid=<pid>" for the dispatcher's log; sent at start.
 *   NOTE (responder -> dispatcher): header only. The responder refused a
 *     request itself (status: the HTTP status it answered, 400, 413...), so
 *     the dispatcher's stats count refusals it never saw.
 *
 * A frame count or header that does not match is dropped and logged by the
 * receiver: a version mismatch must never crash either side.
 */
#ifndef BX_WIRE_H
#define BX_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define BX_WIRE_VERSION 1
#define BX_WIRE_HDR_LEN 16

enum {
    BX_WIRE_REQUEST = 'Q',
    BX_WIRE_CANCEL = 'C',
    BX_WIRE_REPLY = 'R',
    BX_WIRE_HELLO = 'H',
    BX_WIRE_NOTE = 'N'
};

enum {
    BX_TRANSPORT_LONG_POLLING = 1,      /* POST, JSON or message= form body */
    BX_TRANSPORT_CALLBACK_POLLING = 2   /* GET with jsonp= and message= */
};

/* Number of frames after the header for each type. */
#define BX_WIRE_REQUEST_FRAMES 3
#define BX_WIRE_CANCEL_FRAMES 0
#define BX_WIRE_REPLY_FRAMES 2
#define BX_WIRE_HELLO_FRAMES 1
#define BX_WIRE_NOTE_FRAMES 0

typedef struct {
    uint8_t version;
    uint8_t type;
    uint8_t transport;
    uint8_t flags;
    uint32_t status;
    uint64_t reqid;
} bx_wire_hdr_t;

/* A frame to send: bytes and length (data need not be NUL-terminated). */
typedef struct {
    const void *data;
    size_t len;
} bx_wire_part_t;

/* Writes h into out (BX_WIRE_HDR_LEN bytes), version forced to
 * BX_WIRE_VERSION. */
void bx_wire_hdr_encode(const bx_wire_hdr_t *h, uint8_t out[BX_WIRE_HDR_LEN]);

/* Reads a header. Returns 0, or -1 if len is not BX_WIRE_HDR_LEN, the version
 * is not BX_WIRE_VERSION or the type is unknown. */
int bx_wire_hdr_decode(const void *buf, size_t len, bx_wire_hdr_t *h);

/* Frames expected after the header for a type, or -1 for an unknown type. */
int bx_wire_frames_for(uint8_t type);

/* Sends one wire message on a ZeroMQ socket: an optional identity frame
 * (identity == NULL to omit: DEALER side), the header, then nparts frames.
 * flags is passed to zmq_send (ZMQ_DONTWAIT in both programs: neither side
 * ever blocks on the other). Returns 0, or -1 with errno from zmq_send
 * (EAGAIN: high-water mark; EHOSTUNREACH: the ROUTER peer is gone). If the
 * first frame went out, the rest cannot fail short of a ZeroMQ bug. */
int bx_wire_send(void *sock, const void *identity, size_t idlen,
                 const bx_wire_hdr_t *h, const bx_wire_part_t *parts, int nparts,
                 int flags);

/* A received wire message. Frames are kept as zmq_msg_t inside; the pointers
 * below point into them and stay valid until bx_wire_msg_close. */
#define BX_WIRE_MAX_FRAMES 6
typedef struct {
    bx_wire_hdr_t hdr;
    const void *identity;      /* NULL unless received with has_identity */
    size_t idlen;
    int nparts;                /* frames after the header */
    const char *part[BX_WIRE_MAX_FRAMES];
    size_t part_len[BX_WIRE_MAX_FRAMES];
    void *frames_;             /* owned zmq_msg_t array, private */
    int nframes_;
} bx_wire_msg_t;

/* Receives one whole multipart message (with ZMQ_DONTWAIT). has_identity: the
 * socket is a ROUTER and frame 0 is the peer identity. Returns 0 with *m
 * filled; 1 if nothing was waiting (EAGAIN); -1 on a malformed message (all of
 * its frames are consumed and freed, so the caller just logs and goes on;
 * errno = EPROTO) or a socket error (errno set, other than EAGAIN). After a
 * return other than 0, *m is zeroed and bx_wire_msg_close is a no-op. */
int bx_wire_recv(void *sock, int has_identity, bx_wire_msg_t *m);

/* Frees what bx_wire_recv kept. Safe to call twice. */
void bx_wire_msg_close(bx_wire_msg_t *m);

#endif
