/*
 * conformance_main.c - herald-conformance: the gateway's own connection
 * code wired to the behaviour the official suites expect, so that others'
 * tests judge our protocol code (see docs/CONFORMANCE.md):
 *
 *   any other path  a plain WebSocket echo (text->text, binary->binary) on
 *                   gw_net, for Autobahn|Testsuite's fuzzingclient;
 *   /engine.io/     a bare Engine.IO echo on gw_eio (engine.io-protocol suite);
 *   /socket.io/     a Socket.IO server like the suite's reference one: main
 *                   and /custom namespaces, the CONNECT auth payload echoed
 *                   as an "auth" event, "message" echoed as "message-back"
 *                   (binary attachments included), "message-with-ack"
 *                   answered with an ack of the same arguments, unknown
 *                   namespaces refused, no CONNECT within 1 s closes.
 *
 * usage: herald-conformance [--port N] [--max-message BYTES]
 *        [--ping-interval MS] [--ping-timeout MS]
 */
#include "gw_eio.h"
#include "gw_net.h"
#include "log.h"
#include "sio.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the suites expect of the server they talk to. */
#define CONF_CONNECT_TIMEOUT_MS 1000
#define CONF_MAX_PAYLOAD 1000000

static struct gw_eio eio_echo, eio_sio;

/* ---- plain WebSocket echo ---------------------------------------------------- */

static bool path_starts(const struct http_request *req, const char *prefix)
{
    size_t n = strlen(prefix);
    return req->path_len >= n && memcmp(req->path, prefix, n) == 0;
}

static void on_request(struct gw_net *n, struct gw_conn *c, const struct http_request *req,
                       const uint8_t *body, size_t body_len)
{
    (void)n;
    if (path_starts(req, "/engine.io/")) {
        gw_eio_request(&eio_echo, c, req, body, body_len);
        return;
    }
    if (path_starts(req, "/socket.io/")) {
        gw_eio_request(&eio_sio, c, req, body, body_len);
        return;
    }
    const char *key, *why;
    size_t kl;
    int st = ws_handshake_check(req, &key, &kl, &why);
    if (st != 0) {
        gw_http_error(c, st, "bad-handshake", why);
        return;
    }
    gw_ws_accept(c, key, kl, NULL);
}

static void on_ws_message(struct gw_net *n, struct gw_conn *c, uint8_t opcode, uint8_t *data,
                          size_t len)
{
    (void)n;
    if (gw_eio_owns(c)) {
        struct gw_sess *s = c->sess;
        gw_eio_ws_message(s && s->eio == &eio_sio ? &eio_sio : &eio_echo, c, opcode, data, len);
        return;
    }
    struct gw_shared *sh = gw_ws_frame_new(opcode, data, len);
    gw_conn_send_shared(c, sh);
    gw_shared_unref(sh);
}

static void on_closed(struct gw_net *n, struct gw_conn *c)
{
    (void)n;
    if (c->sess)
        gw_eio_conn_closed(c->sess->eio, c);
}

/* ---- Engine.IO echo ------------------------------------------------------------ */

static void echo_message(struct gw_eio *e, struct gw_sess *s, struct gw_conn *via, bool binary,
                         const uint8_t *data, size_t len)
{
    (void)e;
    (void)via;
    if (binary)
        gw_eio_send_binary(s, data, len);
    else
        gw_eio_send_text(s, (const char *)data, len);
}

/* ---- Socket.IO reference-like server ----------------------------------------------- */

struct conf_attachment {
    uint8_t *data;
    size_t len;
};

struct conf_sio {
    int64_t connect_deadline_ms; /* 0 once a namespace is connected */
    bool main_ns, custom_ns;
    /* A binary packet waiting for its attachments. */
    char *pending; /* owned: the packet text */
    size_t pending_len;
    unsigned want, have;
    struct conf_attachment att[SIO_MAX_ATTACHMENTS];
};

static void conf_free_pending(struct conf_sio *st)
{
    free(st->pending);
    st->pending = NULL;
    for (unsigned i = 0; i < st->have; i++)
        free(st->att[i].data);
    st->want = st->have = 0;
}

static void sio_open(struct gw_eio *e, struct gw_sess *s, const struct http_request *req)
{
    (void)e;
    (void)req;
    struct conf_sio *st = calloc(1, sizeof(*st));
    if (st)
        st->connect_deadline_ms = gw_now_ms() + CONF_CONNECT_TIMEOUT_MS;
    s->app = st;
}

static void sio_close(struct gw_eio *e, struct gw_sess *s, const char *reason)
{
    (void)e;
    (void)reason;
    struct conf_sio *st = s->app;
    if (st)
        conf_free_pending(st);
    free(st);
    s->app = NULL;
}

static void sio_tick(struct gw_eio *e, struct gw_sess *s, int64_t now)
{
    (void)e;
    struct conf_sio *st = s->app;
    if (st && st->connect_deadline_ms && now >= st->connect_deadline_ms)
        gw_eio_close(s, 1000, "no CONNECT in time");
}

/* Sends header + JSON payload as one message. */
static void send_packet(struct gw_sess *s, uint8_t type, const char *nsp, size_t nsp_len,
                        unsigned attachments, int64_t ack, const char *json, size_t json_len)
{
    char hdr[SIO_MAX_NAMESPACE + 64];
    size_t hl = sio_encode_header(hdr, sizeof(hdr), type, nsp, nsp_len, attachments, ack);
    char *buf = malloc(hl + json_len);
    if (!buf || hl == 0) {
        free(buf);
        return;
    }
    memcpy(buf, hdr, hl);
    memcpy(buf + hl, json, json_len);
    gw_eio_send_text(s, buf, hl + json_len);
    free(buf);
}

/* Answers an EVENT (possibly binary): echo as message-back, or ack. */
static void answer_event(struct gw_sess *s, const struct sio_packet *p, const struct conf_sio *st)
{
    const char *name, *args;
    size_t nl, al;
    if (sio_event_split(p->data, p->data_len, &name, &nl, &args, &al) != 0)
        return;
    bool binary = p->type == SIO_BINARY_EVENT;
    char *out = malloc(al + 32);
    if (!out)
        return;
    size_t ol;
    if (nl == 16 && memcmp(name, "message-with-ack", 16) == 0 && p->ack_id >= 0) {
        ol = (size_t)sprintf(out, "[");
        memcpy(out + ol, args, al);
        ol += al;
        out[ol++] = ']';
        send_packet(s, binary ? SIO_BINARY_ACK : SIO_ACK, p->nsp, p->nsp_len, p->attachments,
                    p->ack_id, out, ol);
    } else if (nl == 7 && memcmp(name, "message", 7) == 0) {
        ol = (size_t)sprintf(out, "[\"message-back\"%s", al ? "," : "");
        memcpy(out + ol, args, al);
        ol += al;
        out[ol++] = ']';
        send_packet(s, binary ? SIO_BINARY_EVENT : SIO_EVENT, p->nsp, p->nsp_len, p->attachments,
                    -1, out, ol);
    } else {
        free(out);
        return;
    }
    free(out);
    for (unsigned i = 0; binary && i < st->have; i++)
        gw_eio_send_binary(s, st->att[i].data, st->att[i].len);
}

static bool is_custom(const struct sio_packet *p)
{
    return p->nsp_len == 7 && memcmp(p->nsp, "/custom", 7) == 0;
}

static void sio_message(struct gw_eio *e, struct gw_sess *s, struct gw_conn *via, bool binary,
                        const uint8_t *data, size_t len)
{
    (void)e;
    (void)via;
    struct conf_sio *st = s->app;
    if (!st)
        return;
    if (binary) {
        if (!st->pending || st->have >= st->want) {
            gw_eio_close(s, 1002, "unexpected binary message");
            return;
        }
        struct conf_attachment *a = &st->att[st->have++];
        a->data = malloc(len ? len : 1);
        a->len = len;
        if (a->data)
            memcpy(a->data, data, len);
        if (st->have == st->want) {
            struct sio_packet p;
            if (sio_parse(st->pending, st->pending_len, &p) == SIO_OK)
                answer_event(s, &p, st);
            conf_free_pending(st);
        }
        return;
    }
    struct sio_packet p;
    enum sio_status rc = sio_parse((const char *)data, len, &p);
    if (rc != SIO_OK || st->pending) {
        log_warn_rl(5, "session %llu: bad Socket.IO packet: %s", (unsigned long long)s->id,
                    rc != SIO_OK ? sio_status_str(rc) : "text while awaiting attachments");
        gw_eio_close(s, 1002, "invalid packet");
        return;
    }
    bool main_ns = p.nsp_len == 1 && p.nsp[0] == '/';
    bool *joined = main_ns ? &st->main_ns : is_custom(&p) ? &st->custom_ns : NULL;
    switch (p.type) {
    case SIO_CONNECT: {
        if (!joined) {
            static const char err[] = "{\"message\":\"Invalid namespace\"}";
            send_packet(s, SIO_CONNECT_ERROR, p.nsp, p.nsp_len, 0, -1, err, sizeof(err) - 1);
            return;
        }
        *joined = true;
        st->connect_deadline_ms = 0;
        char ok[64];
        int ol = snprintf(ok, sizeof(ok), "{\"sid\":\"c%llu\"}", (unsigned long long)s->id);
        send_packet(s, SIO_CONNECT, p.nsp, p.nsp_len, 0, -1, ok, (size_t)ol);
        /* The auth payload comes back as an "auth" event. */
        size_t al = p.data ? p.data_len : 2;
        char *ev = malloc(al + 16);
        if (!ev)
            return;
        int el = sprintf(ev, "[\"auth\",");
        memcpy(ev + el, p.data ? p.data : "{}", al);
        el += (int)al;
        ev[el++] = ']';
        send_packet(s, SIO_EVENT, p.nsp, p.nsp_len, 0, -1, ev, (size_t)el);
        free(ev);
        return;
    }
    case SIO_DISCONNECT:
        if (joined)
            *joined = false;
        return;
    case SIO_EVENT:
    case SIO_BINARY_EVENT:
        if (!joined || !*joined)
            return; /* not connected to that namespace: ignored */
        if (p.type == SIO_BINARY_EVENT && p.attachments > 0) {
            st->pending = malloc(len);
            if (!st->pending)
                return;
            memcpy(st->pending, data, len);
            st->pending_len = len;
            st->want = p.attachments;
            st->have = 0;
            return;
        }
        answer_event(s, &p, st);
        return;
    default:
        return; /* acks from the client: nothing to do */
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
    int port = 9001;
    long max_msg = 64L * 1024 * 1024; /* Autobahn 9.* sends up to 16 MiB */
    long ping_interval = 300, ping_timeout = 200;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--max-message") == 0 && i + 1 < argc) {
            max_msg = atol(argv[++i]);
        } else if (strcmp(argv[i], "--ping-interval") == 0 && i + 1 < argc) {
            ping_interval = atol(argv[++i]);
        } else if (strcmp(argv[i], "--ping-timeout") == 0 && i + 1 < argc) {
            ping_timeout = atol(argv[++i]);
        } else {
            printf("usage: herald-conformance [--port N] [--max-message BYTES]\n"
                   "                          [--ping-interval MS] [--ping-timeout MS]\n"
                   "WebSocket echo (any path), Engine.IO echo (/engine.io/) and a reference-like\n"
                   "Socket.IO server (/socket.io/) on the gateway's code, for the conformance "
                   "suites.\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    log_set_ident("conformance");
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    struct gw_limits lim = {
        .http = {.max_request_line = 8192,
                 .max_head = 16384,
                 .max_headers = 64,
                 .max_body = CONF_MAX_PAYLOAD * 2},
        .header_timeout_ms = 10000,
        .keepalive_ms = 60000,
        .max_msg = (size_t)max_msg,
        .out_cap = (size_t)max_msg * 4,
        .ping_interval_ms = 600000,
        .ping_timeout_ms = 1200000,
        .close_timeout_ms = 2000,
    };
    struct gw_net_handlers h = {
        .on_request = on_request, .on_ws_message = on_ws_message, .on_closed = on_closed};
    static struct gw_net net;
    int bound = 0;
    if (gw_net_init(&net, base, &lim, &h, "127.0.0.1", port, &bound) != 0)
        return 1;
    struct gw_eio_config ecfg = {.ping_interval_ms = ping_interval,
                                 .ping_timeout_ms = ping_timeout,
                                 .max_payload = CONF_MAX_PAYLOAD};
    struct gw_eio_handlers eh = {.on_message = echo_message};
    struct gw_eio_handlers sh = {
        .on_open = sio_open, .on_message = sio_message, .on_close = sio_close, .on_tick = sio_tick};
    if (gw_eio_init(&eio_echo, &net, &ecfg, &eh) != 0 ||
        gw_eio_init(&eio_sio, &net, &ecfg, &sh) != 0)
        return 1;
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    printf("herald-conformance: http://127.0.0.1:%d (ws echo on any path, /engine.io/, "
           "/socket.io/)\n",
           bound);
    fflush(stdout);
    event_base_dispatch(base);
    gw_eio_free(&eio_sio);
    gw_eio_free(&eio_echo);
    gw_net_free(&net);
    event_free(sigterm);
    event_free(sigint);
    event_base_free(base);
    return 0;
}
