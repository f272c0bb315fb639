/*
 * event.h - how Herald's processes talk over Redis Streams (PROTOCOL.md §7),
 * and how client JSON events are read.
 *
 * An entry is a flat list of short fields, so an application backend can
 * XADD one by hand (redis-cli XADD herald:events '*' t notify ...):
 *
 *   field  meaning
 *   t      entry type (below)
 *   gw     gateway id                      (gateway -> broker)
 *   c      connection id, decimal          (per-connection entries)
 *   u      user id, decimal, 0 for a guest
 *   k      connection kind: "ws" (raw /ws) or "sio" (Socket.IO)
 *   e      event name (client event type, or the logical name of an
 *          outgoing event, see ev_names)
 *   d      JSON payload (an object)
 *   r      request id (HTTP requests relayed to the broker) or Socket.IO
 *          ack id (client events that want an answer)
 *   s      HTTP status of a reply, or the close code of a kick
 *   m      when the gateway published the request (its clock, ms); the
 *          broker copies it into the answer (reply, ack) so the gateway
 *          measures the gateway->broker->gateway round trip
 *
 * herald:events (gateways and backends -> broker), t is one of:
 *   hello  a gateway (re)started: forget its old connections      gw
 *   sync   the complete list of the gateway's open connections,   gw [c]
 *          sent right after it re-announced each one (every
 *          connect to Redis): the broker drops those it holds for
 *          this gateway that are not listed (closes that could not
 *          be published while Redis was down); c is left out when
 *          the gateway holds none
 *   open   an authenticated or guest connection is ready          gw c u k [p o]
 *          p: the session's recovery token (PROTOCOL.md §4a); with o
 *          (an offset in a gateway stream), a session coming back: the
 *          broker recovers connection c (wherever it was) if its token
 *          is p and it is within the window, else opens it afresh, and
 *          answers with a "resume" entry either way
 *   close  that connection is gone                                gw c [v]
 *          v=1: it may come back (recovery): kept, detached, for the
 *          recovery window
 *   msg    a client event                                         gw c e d [r m]
 *   req    an HTTP request the broker answers (u: the token's     gw c r e d [u m]
 *          user, for routes that need one)
 *   notify an application backend's notification or provisioning  e d
 *          (docs/API.md): e = profile-update | game-stats-update |
 *          account-deleted | user-put | user-delete |
 *          friendship-put | friendship-delete, d its JSON body;
 *          and e = jit-user from a gateway (HERALD_JIT_USERS=1): a
 *          valid token's claims, ahead of the open they belong to
 *
 * herald:gw:<id> (broker -> one gateway), t is one of:
 *   status a presence transition of user u (s 1 online, 0 offline):  u s e d [c]
 *          the gateway's online list follows it; event e with data d
 *          to every connection (no c: scope all) or to those in c
 *          (scope related; "0" when none of them is here)
 *   online the broker's whole online list, in chunks: c the ids       s c
 *          ("0" for none), s bit 1 the first chunk (start afresh),
 *          bit 2 the last (the list is whole); after "welcome" and
 *          whenever a broker loaded or rewrote its state
 *   all    event e with data d to every connection                e d
 *   auth   the same, authenticated connections only               e d
 *   conn   event e with data d to the connections in c (comma list) c e d [r]
 *   reply  HTTP answer to request r of connection c               c r s d
 *   kick   close connections c with code s; e is the reason word  c s e
 *          (raw close reason; Socket.IO: "unknown-user" becomes a
 *          CONNECT_ERROR with that code, anything else a DISCONNECT)
 *   ack    Socket.IO acknowledgement r to connection c, with the   c r d
 *          callback's arguments d (a JSON array)
 *   deleted  account u was deleted: refuse its tokens from now on  u
 *   welcome  the answer to the gateway's hello: everything it published
 *          before the hello has been answered ahead of this entry
 *   resume the answer to an open with o: s=1 recovered, its missed    c s [e o]
 *          events are the entries for c in herald:gw:<e> after o,
 *          up to the "moved" entry for c there; s=0 opened afresh
 *   moved  connection c now lives on another gateway: drop it          c
 *          without telling the broker (it was recovered elsewhere);
 *          the end of its entries in this stream
 */
#ifndef HERALD_EVENT_H
#define HERALD_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EV_STREAM_IN "herald:events"
#define EV_GROUP "brokers"
#define EV_GW_STREAM_PREFIX "herald:gw:"
#define EV_ONLINE_SET "online_users"
#define EV_DELETED_SET "herald:deleted_users"

/*
 * Gateway liveness (PROTOCOL.md §2: a dead gateway's users are announced
 * offline within gateway_lease_ms). The gateway renews its lease key every
 * lease/5 with a TTL of 3/5 lease, so two renewals may be lost before it
 * lapses; the broker checks every lease/5 and reaps a gateway whose key is
 * gone and which it has not seen for 3/5 lease. From a kill to the reap:
 * at most 3/5 + 1/5 of the lease.
 */
#define EV_LEASE_TTL(lease_ms) ((lease_ms)*3 / 5)
#define EV_LEASE_RENEW(lease_ms) ((lease_ms) / 5)
/*
 * Fencing: when the broker reaps a gateway it writes this value into the
 * gateway's lease key (for EV_FENCE_TTL_MS). A gateway renews its lease only
 * while the key does not hold it; finding it there tells the gateway it was
 * given up (it was paused or cut off past its lease): it closes every client
 * with 1012 and registers again with a new "hello". Until that hello the
 * broker ignores the gateway's opens and syncs.
 */
#define EV_LEASE_REAPED "reaped"
#define EV_FENCE_TTL_MS 86400000L

/* Most fields an entry may carry; entries with more are malformed. */
#define EV_MAX_FIELDS 16

/* A parsed stream entry. Every pointer is borrowed from the reply it was
 * parsed from (valid until that reply is freed); absent fields are NULL/0. */
struct ev_entry {
    const char *type;
    size_t type_len;
    const char *gw;
    size_t gw_len;
    const char *conns;
    size_t conns_len; /* "c" as sent (one id or a comma list) */
    uint64_t conn;    /* "c" when it is a single id, else 0 */
    int64_t user;     /* "u", 0 when absent or guest */
    const char *kind;
    size_t kind_len;
    const char *event;
    size_t event_len;
    const char *data;
    size_t data_len;
    uint64_t req;   /* "r" */
    bool has_req;   /* "r" was present (Socket.IO ack ids start at 0) */
    int status;     /* "s", 0 when absent */
    int64_t ms;     /* "m", 0 when absent */
    uint64_t token; /* "p", 0 when absent */
    const char *offset;
    size_t offset_len; /* "o": a stream entry id (ev_offset_valid) */
    bool recoverable;  /* "v" = 1 */
    const char *id;    /* the entry's stream id (ev_entry_from_reply), else NULL */
    size_t id_len;
};

/* --presence-scope, which broker and gateways must agree on: "all" (or
 * unset) sets *related false, "related" true; anything else is false
 * returned (the caller refuses to start). */
bool ev_presence_scope(const char *word, bool *related);

/* A stream entry id as an offset: "<ms>-<seq>", both decimal, at most
 * EV_OFFSET_MAX characters. */
#define EV_OFFSET_MAX 41
bool ev_offset_valid(const char *s, size_t len);
/* Its two numbers: true with *ms and *seq set, false when s is not one. */
bool ev_id_split(const char *s, size_t len, uint64_t *ms, uint64_t *seq);

/*
 * Parses nfields (name, value) pairs: names[i]/lens. Unknown field names are
 * ignored (newer writers may add fields). Returns 0, or -1 when a known
 * numeric field is not a number, a required-by-shape field is too long, or
 * there is no "t".
 */
int ev_entry_parse(struct ev_entry *e, const char *const *fields, const size_t *lens,
                   size_t nfields);

/*
 * Reading entries straight from a hiredis reply (gateways' XREAD and the
 * broker's XREADGROUP share the shape [[stream, [[id, [f, v, ...]], ...]]]).
 * ev_reply_entries() returns the array of entries of the first stream, or
 * NULL when the reply is nil or has another shape (nothing to apply).
 * ev_entry_from_reply() reads one element of that array: returns 0 with *e
 * parsed and *id set; 1 when the element has an id but its fields are not a
 * valid entry (*id set: skip it, but acknowledge it); -1 when the element
 * is not an entry at all (*id NULL). Everything stays borrowed from the
 * reply (valid until it is freed).
 */
struct redisReply;
const struct redisReply *ev_reply_entries(const struct redisReply *r);

/*
 * How far the broker group (EV_GROUP) has got on herald:events, from the
 * replies of XINFO GROUPS and XPENDING <stream> <group> (Redis 7), both
 * borrowed. ev_group_progress(): true with *last (last-delivered-id,
 * borrowed from r) and *pending set when r lists the group. ev_pending_oldest():
 * the oldest pending entry's id (borrowed from r), or NULL when there is
 * none or r is not that reply. Everything below the oldest pending entry,
 * or up to *last when nothing is pending, has been acknowledged.
 */
bool ev_group_progress(const struct redisReply *r, const char **last, long long *pending);
const char *ev_pending_oldest(const struct redisReply *r);
int ev_entry_from_reply(struct ev_entry *e, const struct redisReply *en, const char **id);

/*
 * Walks the connection ids of a "c" field ("12" or "12,13,14"): *p starts at
 * e->conns, end is e->conns + e->conns_len. Returns true with *id set, or
 * false when the list is done or malformed.
 */
bool ev_ids_next(const char **p, const char *end, uint64_t *id);

/* True when the pointer/length pair equals the C string s. */
bool ev_is(const char *p, size_t len, const char *s);

/*
 * Builder for the argv of one Redis command (XADD key MAXLEN ~ n * f v ...).
 * Values are borrowed: they must stay valid until the command is issued.
 * Numbers are formatted into the builder's own storage.
 */
#define EV_ARGS_MAX 40
struct ev_args {
    int argc;
    const char *argv[EV_ARGS_MAX];
    size_t argvlen[EV_ARGS_MAX];
    char nums[12][24];
    int nnums;
};
void ev_args_init(struct ev_args *a);
void ev_args_add(struct ev_args *a, const char *s, size_t len);
void ev_args_adds(struct ev_args *a, const char *s);
void ev_args_add_u64(struct ev_args *a, uint64_t v);
void ev_args_add_i64(struct ev_args *a, int64_t v);
/* Starts "XADD <key> MAXLEN ~ <maxlen> *". */
void ev_args_xadd(struct ev_args *a, const char *key, size_t key_len, long maxlen);

/*
 * Entry encoders: each appends the fields of one entry kind (the table at
 * the top of this file), in one fixed order and spelling, to a builder that
 * the caller started (ev_args_xadd() for a direct XADD, or ev_args_init()
 * for a field list sent to several streams). Strings are borrowed until the
 * command is issued. Optional fields: ack < 0 leaves out r and m (msg);
 * user <= 0 leaves out u (req); ms <= 0 leaves out m (reply, ack).
 */
/* gateway -> broker (herald:events) */
void ev_enc_hello(struct ev_args *a, const char *gw);
/* ids: comma list of every open connection (ids_len 0: none, c left out). */
void ev_enc_sync(struct ev_args *a, const char *gw, const char *ids, size_t ids_len);
/* token 0 leaves out p; offset NULL leaves out o. */
void ev_enc_open(struct ev_args *a, const char *gw, uint64_t conn, int64_t user, const char *kind,
                 uint64_t token, const char *offset);
void ev_enc_close(struct ev_args *a, const char *gw, uint64_t conn, bool recoverable);
void ev_enc_msg(struct ev_args *a, const char *gw, uint64_t conn, int64_t user, const char *event,
                const char *data, size_t dlen, int64_t ack, int64_t ms);
void ev_enc_req(struct ev_args *a, const char *gw, uint64_t conn, uint64_t req, int64_t user,
                const char *event, const char *data, size_t dlen, int64_t ms);
/* a gateway or a backend -> broker: notification e with body d */
void ev_enc_notify(struct ev_args *a, const char *event, const char *data, size_t dlen);
/* broker -> gateway (herald:gw:<id>); t is "all" or "auth" */
void ev_enc_all(struct ev_args *a, const char *t, const char *event, const char *data, size_t dlen);
void ev_enc_conn(struct ev_args *a, const char *ids, size_t ids_len, const char *event,
                 const char *data, size_t dlen);
void ev_enc_reply(struct ev_args *a, uint64_t conn, uint64_t req, int status, const char *data,
                  size_t dlen, int64_t ms);
void ev_enc_kick(struct ev_args *a, const char *ids, size_t ids_len, int code, const char *word);
void ev_enc_ack(struct ev_args *a, uint64_t conn, uint64_t req, const char *data, size_t dlen,
                int64_t ms);
void ev_enc_deleted(struct ev_args *a, int64_t user);

/*
 * The client events both endpoints know, one row each: the raw `type`
 * (NULL: not on /ws), the Socket.IO event name (NULL: not on Socket.IO),
 * the name it travels under in a msg entry's e field (NULL: the gateway
 * answers it itself, as `answer` says), and flags. Lookup returns NULL for
 * an unknown name; rows are static.
 */
enum ev_client_answer {
    EV_ANSWER_BROKER,        /* relayed as a msg entry under `broker` */
    EV_ANSWER_PING,          /* the gateway answers pong (PROTOCOL.md §2) */
    EV_ANSWER_REFRESH_TOKEN, /* the gateway checks the new token (§1) */
    EV_ANSWER_ONLINE,        /* from the gateway's online list (§2); a question it
                              * cannot answer is relayed under `broker` */
};
#define EV_CLIENT_CHAT 0x01u  /* a chat message: takes from the per-address bucket */
#define EV_CLIENT_COUNT 0x02u /* get-online-count: the number, not the list */
struct ev_client_event {
    const char *raw;    /* borrowed (static) */
    const char *sio;    /* borrowed (static) */
    const char *broker; /* borrowed (static) */
    uint8_t answer;     /* enum ev_client_answer */
    uint8_t flags;      /* EV_CLIENT_* */
};
const struct ev_client_event *ev_client_event_raw(const char *type, size_t len);
/* The whole table (static), *n rows: for checks that every relayed event
 * has a handler in the broker. */
const struct ev_client_event *ev_client_events(size_t *n);
const struct ev_client_event *ev_client_event_sio(const char *name, size_t len);

/*
 * The refusal of a client request, in the shape each way of asking expects:
 *   EV_REFUSAL_ACK    a Socket.IO callback's arguments:
 *                     [{"ok":false,"error":W,"message":M}]
 *   EV_REFUSAL_EVENT  the payload of an "error" event: {"code":W,"message":M}
 *   EV_REFUSAL_HTTP   an HTTP error body: {"error":W,"message":M}
 * word is one of our stable words; message is copied without the
 * characters that would need JSON escaping (", \, controls), so neither
 * can break the JSON. Writes into out (capacity cap, no NUL) and returns
 * the length, or 0 when it does not fit.
 */
enum ev_refusal_form { EV_REFUSAL_ACK, EV_REFUSAL_EVENT, EV_REFUSAL_HTTP };
size_t ev_refusal(char *out, size_t cap, enum ev_refusal_form form, const char *word,
                  const char *message);

/*
 * Names of outgoing events per endpoint: the broker speaks the logical name,
 * each gateway renders it for its connection kind. Returns NULL when unknown.
 */
struct ev_name {
    const char *logical; /* on the stream */
    const char *raw;     /* "type" on /ws */
    const char *sio;     /* event name on Socket.IO */
    /* Socket.IO gets this member's value of the object (written by the
     * broker as {"<member>":<value>}) instead of the object; NULL: all. */
    const char *sio_member;
};
const struct ev_name *ev_name_find(const char *logical, size_t len);

/* Limits for client JSON: a real event is a few hundred bytes and 2-3 levels
 * deep; anything deeper is an attack on the parser's stack. */
#define EV_JSON_MAX_DEPTH 8

/*
 * Parses untrusted JSON (a client event, an HTTP body, a stream entry's d
 * field): one complete value, nothing after it, at most EV_JSON_MAX_DEPTH
 * deep, of type want (an enum json_type, or -1 for any). Returns it (caller
 * frees with json_object_put()), or NULL.
 */
struct json_object *ev_json_parse(const char *json, size_t len, int want);
/* A user id in JSON: a positive integer, or a string of at most 18 digits
 * (JavaScript clients send either). true with *id set, false otherwise. */
bool ev_json_id(struct json_object *v, int64_t *id);

/*
 * Reads a client's raw-endpoint JSON event: an object with a string "type".
 * Returns the parsed object (caller frees with json_object_put()) and points
 * *type at its type (borrowed from the object), or NULL with *err set to a
 * stable word ("bad-json", "bad-type").
 */
struct json_object;
struct json_object *ev_client_parse(const char *json, size_t len, const char **type,
                                    const char **err);

#endif
