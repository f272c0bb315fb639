/*
 * gw_online.h - the gateway's own copy of who is online (PROTOCOL.md §2),
 * so that get-online-users (every form), get-online-count and
 * POST /api/online-status cost the broker and Redis nothing per call.
 *
 * How it stays exact: the broker sends the whole list ("online" entries,
 * event.h) right after its welcome to this gateway and whenever it (or a
 * successor) loaded or rewrote its state, and a "status" entry for every
 * transition in either scope, all on this gateway's own stream, in order.
 * A gateway reads every entry of its stream (it is fenced before one is
 * ever trimmed unread), so the copy equals the broker's set as of the last
 * entry read. Until the first list arrives it is not known, and the
 * questions go to the broker (or answer unavailable).
 *
 * A sorted id array: a lookup is a binary search, a page a slice, a
 * transition one memmove (docs/SCALE.md has its cost at a million).
 */
#ifndef HERALD_GW_ONLINE_H
#define HERALD_GW_ONLINE_H

#include "i64v.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_entry;
struct json_object;

struct gw_online {
    struct i64v ids; /* sorted */
    bool known;      /* a whole list arrived */
    bool loading;    /* between its first and last chunk */
};

/* The most ids a question may name, and the largest page. */
#define GW_ONLINE_ASK_MAX 1000

/* A "status" entry (u, s) or an "online" chunk (s bit 1: the first, which
 * starts afresh; bit 2: the last, after which the list is known; c the
 * ids, "0" for none). */
void gw_online_status(struct gw_online *o, int64_t user, bool online);
void gw_online_list(struct gw_online *o, const struct ev_entry *e);
void gw_online_free(struct gw_online *o);

/* What a get-online-users question asks (its argument object, may be
 * NULL): the whole list, which of some ids, one page, or (count) the
 * number. */
enum gw_online_form { GW_ONLINE_ALL, GW_ONLINE_IDS, GW_ONLINE_PAGE, GW_ONLINE_COUNT };

/*
 * Answers from the copy. form and its arguments come from
 * gw_online_parse(). On success returns a buffer (caller frees) holding
 * the JSON array of ids ("[1,2]") for ALL, IDS and PAGE, or the number for
 * COUNT; for PAGE *next is the cursor of the next page (0: the end).
 * self: the asking connection's user (0: a guest, or HTTP), online by
 * definition while it asks, though the broker's transition for its open
 * may still be on its way here: counted online in ALL, IDS and COUNT, so
 * a page that asks at once finds itself. NULL: out of memory.
 */
char *gw_online_answer(const struct gw_online *o, enum gw_online_form form, struct json_object *arg,
                       int64_t cursor, long limit, int64_t self, int64_t *next, size_t *len);
/*
 * Reads a question's argument: nothing or {} is ALL; {ids:[...]} (at most
 * GW_ONLINE_ASK_MAX user ids) IDS; {cursor?, limit} (limit 1..1000, cursor
 * an id, absent or 0 for the start) PAGE. count: the get-online-count
 * question (COUNT whatever the argument). Returns 0 with *form, *cursor,
 * *limit set, or -1 with *why (static) for a bad-field answer.
 */
/* POST /api/online-status's stricter rule: arg.ids is an array of at most
 * GW_ONLINE_ASK_MAX user ids, every one of them an id (else 400). */
bool gw_online_ids_valid(struct json_object *arg);
int gw_online_parse(struct json_object *arg, bool count, enum gw_online_form *form, int64_t *cursor,
                    long *limit, const char **why);

/* What a client's question comes to (gw_online_ask()). */
enum gw_online_verdict {
    GW_ONLINE_ANSWERED, /* value holds the answer (caller frees it) */
    GW_ONLINE_REFUSED,  /* word and why say why (static) */
    GW_ONLINE_RELAY,    /* the broker answers it: the whole list in scope
                         * related, or any whole list while ours loads */
};
struct gw_online_reply {
    enum gw_online_form form;
    char *value; /* owned: gw_online_answer()'s text */
    size_t len;
    int64_t next; /* PAGE: the next page's cursor, 0 at the end */
    const char *word, *why;
};
/*
 * A get-online-users (count: get-online-count) question with argument arg
 * (may be NULL) from a connection of user self, both endpoints' one rule:
 * parse (bad-field), relay the whole list in scope related or while the
 * list loads, refuse the other forms while it loads (unavailable), else
 * answer from the list.
 */
enum gw_online_verdict gw_online_ask(const struct gw_online *o, struct json_object *arg, bool count,
                                     bool related, int64_t self, struct gw_online_reply *r);

#endif
