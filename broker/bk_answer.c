/*
 * bk_answer.c - see bk_answer.h. The JSON of every refusal and success
 * answer the features give is built here, so a client sees one shape per
 * endpoint whichever feature refused it, and /metrics counts every refusal.
 */
#include "bk_answer.h"

#include "bk_out.h"
#include "log.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const bk_refusal_words[BK_REFUSAL_COUNT] = {
    "bad-field",      "bad-json",         "auth-required", "unknown-user",   "rate-limited",
    "too-many-rooms", "message-too-long", "unavailable",   "username-taken", "deleted-user",
};

void bk_refusal_count(struct bk *b, const char *word)
{
    for (size_t i = 0; i < BK_REFUSAL_COUNT; i++)
        if (strcmp(word, bk_refusal_words[i]) == 0)
            b->counters.refused[i]++;
}

/* A Socket.IO event that asked for a callback is answered through it. */
static bool wants_ack(const struct bk_origin *o)
{
    return o->c->sio && o->e->has_req;
}

void bk_answer_error(struct bk *b, const struct bk_origin *o, int status, const char *word,
                     const char *message)
{
    char buf[384];
    size_t n;
    bk_refusal_count(b, word);
    /* word and message are our own constants: they always fit. */
    if (o->c) {
        if (wants_ack(o)) {
            n = ev_refusal(buf, sizeof(buf), EV_REFUSAL_ACK, word, message);
            HERALD_ASSERT(n > 0);
            bk_to_ack(b, o->c, o->e, buf, n);
        } else {
            n = ev_refusal(buf, sizeof(buf), EV_REFUSAL_EVENT, word, message);
            HERALD_ASSERT(n > 0);
            bk_to_conn(b, o->c, "error", buf, n);
        }
    } else if (o->gw) {
        n = ev_refusal(buf, sizeof(buf), EV_REFUSAL_HTTP, word, message);
        HERALD_ASSERT(n > 0);
        bk_reply(b, o->gw, o->e, status, buf, n);
    } else {
        log_warn_rl(5, "notify %.*s refused: %s (%s)", (int)o->e->event_len, o->e->event, word,
                    message);
    }
}

void bk_answer_ok(struct bk *b, const struct bk_origin *o, const char *ack, size_t al)
{
    if (o->c) {
        if (wants_ack(o)) {
            /* The callback's arguments are an array: [ack]. */
            char *buf = malloc(al + 2);
            if (!buf)
                return;
            buf[0] = '[';
            memcpy(buf + 1, ack, al);
            buf[al + 1] = ']';
            bk_to_ack(b, o->c, o->e, buf, al + 2);
            free(buf);
        }
    } else if (o->gw) {
        BK_REPLY_LIT(b, o->gw, o->e, 202, "{\"status\":\"accepted\"}");
    }
}

void bk_answer_json(struct bk *b, const struct bk_origin *o, struct json_object *v)
{
    size_t jl;
    const char *js = json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN, &jl);
    bk_answer_ok(b, o, js, jl);
}

void bk_answer_http(struct bk *b, const struct bk_origin *o, int status, struct json_object *v)
{
    if (o->c || !o->gw)
        return;
    size_t jl;
    const char *js = json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN, &jl);
    bk_reply(b, o->gw, o->e, status, js, jl);
}

bool bk_id_value(struct json_object *v, int64_t *id)
{
    return ev_json_id(v, id);
}

bool bk_id_field(struct json_object *o, const char *key, int64_t *id)
{
    struct json_object *v;
    return o && json_object_object_get_ex(o, key, &v) && bk_id_value(v, id);
}

struct json_object *bk_obj_field(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_object))
        return v;
    return NULL;
}
