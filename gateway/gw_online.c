/*
 * gw_online.c - see gw_online.h.
 */
#include "gw_online.h"

#include "event.h"
#include "log.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gw_online_status(struct gw_online *o, int64_t user, bool online)
{
    if (user <= 0)
        return;
    if (online) {
        if (i64v_insert_sorted(&o->ids, user) < 0)
            log_error("out of memory: user %lld missing from the online list until the next one",
                      (long long)user);
    } else {
        i64v_remove_sorted(&o->ids, user);
    }
}

void gw_online_list(struct gw_online *o, const struct ev_entry *e)
{
    if (e->status & 1) {
        o->ids.n = 0;
        o->known = false; /* partial until the last chunk */
        o->loading = true;
    }
    const char *p = e->conns, *end = e->conns + e->conns_len;
    uint64_t id;
    while (p && ev_ids_next(&p, end, &id)) {
        if (id == 0)
            continue;
        /* The broker lists ids in ascending order: appending keeps the
         * array sorted without a search. */
        if (o->ids.n && o->ids.v[o->ids.n - 1] >= (int64_t)id)
            gw_online_status(o, (int64_t)id, true);
        else if (i64v_push(&o->ids, (int64_t)id) < 0)
            log_error("out of memory: the online list is incomplete");
    }
    if (e->status & 2) {
        o->known = true;
        o->loading = false;
    }
}

void gw_online_free(struct gw_online *o)
{
    i64v_free(&o->ids);
    o->known = o->loading = false;
}

int gw_online_parse(struct json_object *arg, bool count, enum gw_online_form *form, int64_t *cursor,
                    long *limit, const char **why)
{
    struct json_object *v;
    *cursor = 0;
    *limit = 0;
    if (count) {
        *form = GW_ONLINE_COUNT;
        return 0;
    }
    if (arg && json_object_object_get_ex(arg, "ids", &v)) {
        if (!json_object_is_type(v, json_type_array) ||
            json_object_array_length(v) > GW_ONLINE_ASK_MAX) {
            *why = "ids must be an array of at most 1000 user ids";
            return -1;
        }
        *form = GW_ONLINE_IDS;
        return 0;
    }
    bool has_limit = arg && json_object_object_get_ex(arg, "limit", &v);
    struct json_object *c = NULL;
    bool has_cursor = arg && json_object_object_get_ex(arg, "cursor", &c) && c;
    if (!has_limit && !has_cursor) {
        *form = GW_ONLINE_ALL;
        return 0;
    }
    if (!has_limit || !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 ||
        json_object_get_int64(v) > GW_ONLINE_ASK_MAX) {
        *why = "limit must be 1..1000";
        return -1;
    }
    *limit = (long)json_object_get_int64(v);
    if (has_cursor && !(json_object_is_type(c, json_type_int) && json_object_get_int64(c) >= 0)) {
        *why = "cursor must be the next value of the previous page";
        return -1;
    }
    *cursor = has_cursor ? json_object_get_int64(c) : 0;
    *form = GW_ONLINE_PAGE;
    return 0;
}

enum gw_online_verdict gw_online_ask(const struct gw_online *o, struct json_object *arg, bool count,
                                     bool related, int64_t self, struct gw_online_reply *r)
{
    int64_t cursor;
    long limit;
    memset(r, 0, sizeof(*r));
    if (gw_online_parse(arg, count, &r->form, &cursor, &limit, &r->why) != 0) {
        r->word = "bad-field";
        return GW_ONLINE_REFUSED;
    }
    if (r->form == GW_ONLINE_ALL && (related || !o->known))
        return GW_ONLINE_RELAY;
    if (!o->known) {
        r->word = "unavailable";
        r->why = "the online list is loading: try again";
        return GW_ONLINE_REFUSED;
    }
    r->value = gw_online_answer(o, r->form, arg, cursor, limit, self, &r->next, &r->len);
    if (!r->value) {
        r->word = "unavailable";
        r->why = "out of memory";
        return GW_ONLINE_REFUSED;
    }
    return GW_ONLINE_ANSWERED;
}

bool gw_online_ids_valid(struct json_object *arg)
{
    struct json_object *v;
    if (!arg || !json_object_object_get_ex(arg, "ids", &v) ||
        !json_object_is_type(v, json_type_array) || json_object_array_length(v) > GW_ONLINE_ASK_MAX)
        return false;
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        int64_t id;
        if (!ev_json_id(json_object_array_get_idx(v, i), &id))
            return false;
    }
    return true;
}

/* Appends ids[from..to) as a JSON array into a new buffer. */
static char *id_array(const int64_t *ids, size_t n, size_t *len)
{
    char *buf = malloc(n * 21 + 3);
    if (!buf)
        return NULL;
    size_t l = 0;
    buf[l++] = '[';
    for (size_t i = 0; i < n; i++)
        l += (size_t)sprintf(buf + l, "%s%lld", i ? "," : "", (long long)ids[i]);
    buf[l++] = ']';
    buf[l] = '\0';
    *len = l;
    return buf;
}

char *gw_online_answer(const struct gw_online *o, enum gw_online_form form, struct json_object *arg,
                       int64_t cursor, long limit, int64_t self, int64_t *next, size_t *len)
{
    *next = 0;
    bool self_missing = self > 0 && !i64v_has_sorted(&o->ids, self);
    if (form == GW_ONLINE_COUNT) {
        char *buf = malloc(24);
        if (buf)
            *len = (size_t)snprintf(buf, 24, "%zu", o->ids.n + self_missing);
        return buf;
    }
    if (form == GW_ONLINE_ALL && self_missing) {
        /* The list with self in its place. */
        size_t at = i64v_lower_bound(&o->ids, self);
        int64_t *v = malloc((o->ids.n + 1) * sizeof(*v));
        if (!v)
            return NULL;
        if (at)
            memcpy(v, o->ids.v, at * sizeof(*v));
        v[at] = self;
        if (o->ids.n > at)
            memcpy(v + at + 1, o->ids.v + at, (o->ids.n - at) * sizeof(*v));
        char *buf = id_array(v, o->ids.n + 1, len);
        free(v);
        return buf;
    }
    if (form == GW_ONLINE_ALL)
        return id_array(o->ids.v, o->ids.n, len);
    if (form == GW_ONLINE_PAGE) {
        size_t from = i64v_lower_bound(&o->ids, cursor), n = o->ids.n - from;
        if (n > (size_t)limit) {
            n = (size_t)limit;
            *next = o->ids.v[from + n];
        }
        /* An empty list has no array at all: no pointer arithmetic on it. */
        return id_array(n ? o->ids.v + from : NULL, n, len);
    }
    /* IDS: those of the asked that are online, in the order asked; an id
     * that is not one is simply not online. */
    struct json_object *v = NULL;
    json_object_object_get_ex(arg, "ids", &v);
    size_t n = v ? json_object_array_length(v) : 0, k = 0;
    int64_t *hit = malloc((n ? n : 1) * sizeof(*hit));
    if (!hit)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int64_t id;
        if (ev_json_id(json_object_array_get_idx(v, i), &id) &&
            (id == self || i64v_has_sorted(&o->ids, id)))
            hit[k++] = id;
    }
    char *buf = id_array(hit, k, len);
    free(hit);
    return buf;
}
