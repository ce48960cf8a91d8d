/* enginekit.h - a recording transport and request helpers for the engine's
 * unit tests (test_engine.c, test_persist.c): requests go in with an
 * injected clock, every reply that leaves is parsed and kept. */
#ifndef BX_ENGINEKIT_H
#define BX_ENGINEKIT_H

#include <stdint.h>
#include <json-c/json.h>

#include "engine.h"
#include "store.h"
#include "wire.h"

#define LP BX_TRANSPORT_LONG_POLLING
#define CP BX_TRANSPORT_CALLBACK_POLLING

typedef struct {
    bx_origin_t to;
    int status;
    char browser[64];
    json_object *body;      /* parsed reply array, NULL if empty */
} sent_t;

extern sent_t g_sent[64];
extern int g_nsent;
extern int g_fail_reqid;    /* send() refuses replies to this reqid */
extern bx_engine_t *g_e;
extern int64_t g_now;
extern const char *g_addr;  /* the client address req() sends from */
extern uint64_t g_reqid;

int rec_send(void *ud, const bx_origin_t *to, int status, const char *browser,
             const char *body, size_t len);
void reset_sent(void);
/* The last reply sent, or NULL. */
sent_t *last(void);
/* Sends one request (JSON text) from peer 0 with a cookie, flushes; returns
 * its reqid. */
uint64_t req(int transport, const char *browser, const char *json);
/* Runs the engine's timers and sends what they answered. */
void tick(void);
json_object *field(json_object *o, const char *k);
const char *sfield(json_object *o, const char *k);
/* The element of the last reply whose channel is ch (the n-th such). */
json_object *elem(const char *ch, int n);
int count_elems(void);
int is_true(json_object *m, const char *k);
/* Handshakes with the given cookie; returns the clientId (in out). */
const char *handshake(const char *browser, char *out);
uint64_t mconnect(const char *browser, const char *cid, const char *extra);
void subscribe(const char *browser, const char *cid, const char *sub);
void publish(int transport, const char *browser, const char *cid, const char *ch,
             const char *data);
/* A new engine with cfg, replacing g_e. */
void fresh(bx_engine_cfg_t *cfg);

/* ---- with a database ---- */

extern bx_store_t *g_st;
/* A new engine on a fresh in-memory database (g_st). */
void fresh_store(bx_engine_cfg_t *cfg);
/* bayeuxd killed and started again: a new engine loads g_st. 0 or -1. */
int reload_store(bx_engine_cfg_t *cfg);
/* ext.k of m as a number, -1 if absent. */
int64_t ext_int(json_object *m, const char *k);
/* The data of the i-th delivery (a message on ch) of the last reply. */
const char *data_at(const char *ch, int i);
/* A handshake asking for the ack extension; the clientId in out. */
const char *ack_handshake(const char *browser, char *out);
/* A connect acknowledging batch ack. */
uint64_t ack_connect(const char *browser, const char *cid, long long ack);

#endif
