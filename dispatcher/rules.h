// rules.h - channel rules: who may subscribe, publish and create where
// (docs/security.md).
//
//   channel-rules = "/user/{id}/** subscribe=subject publish=nobody;
//                    /chat/** subscribe=anyone publish=authenticated"
//
// A rule is a channel name or pattern (/a/b, /a/*, /a/**) with at most one
// template segment {name}, and for each operation one of anyone,
// authenticated, nobody, or subject (the session's token subject must equal
// the template segment's value). The first rule whose pattern matches the
// channel decides; what it does not say about subscribe and publish, and
// channels no rule matches, follow the default (open: anyone; closed:
// nobody). A rule silent on create lets whoever it lets subscribe or
// publish create the channel. A wildcard
// subscription must also be allowed by every rule whose channels it could
// reach, so /** cannot collect what /user/{id}/** keeps to its owner
// (/user/alice/** is alice's, since it fixes the template to her).
#ifndef BX_RULES_H
#define BX_RULES_H

#include <stddef.h>

typedef enum { BX_OP_SUBSCRIBE = 0, BX_OP_PUBLISH, BX_OP_CREATE, BX_OP_COUNT } bx_op_t;

typedef struct bx_rules bx_rules_t;

/* Parses spec ("" or NULL: no rules). Returns NULL with a message in err. */
bx_rules_t *bx_rules_new(const char *spec, int closed, char *err, size_t errlen);
void bx_rules_free(bx_rules_t **pr);

/* May a session with this subject ("" or NULL: anonymous) do op on channel
 * (a name, or for a subscription a pattern, matched as text)? 1 or 0. */
int bx_rules_allow(const bx_rules_t *r, bx_op_t op, const char *channel, const char *subject);

#endif
