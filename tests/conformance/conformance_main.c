/*
 * conformance_main.c - herald-conformance: the gateway's own connection code
 * (gw_net: HTTP parser, handshake, frame codec, close handshake) serving a
 * plain WebSocket echo on every path, so that Autobahn|Testsuite's
 * fuzzingclient can judge our RFC 6455 implementation. Text is echoed as
 * text, binary as binary. See ../shared/CONFORMANCE.md and docs/CONFORMANCE.md.
 *
 * usage: herald-conformance [--port N] [--max-message BYTES]
 */
#include "gw_net.h"
#include "log.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void echo_request(struct gw_net *n, struct gw_conn *c, const struct http_request *req,
                         const uint8_t *body, size_t body_len)
{
    (void)n;
    (void)body;
    (void)body_len;
    const char *key, *why;
    size_t kl;
    int st = ws_handshake_check(req, &key, &kl, &why);
    if (st != 0) {
        gw_http_error(c, st, "bad-handshake", why);
        return;
    }
    gw_ws_accept(c, key, kl, NULL);
}

static void echo_message(struct gw_net *n, struct gw_conn *c, uint8_t opcode, uint8_t *data,
                         size_t len)
{
    (void)n;
    struct gw_shared *s = gw_ws_frame_new(opcode, data, len);
    gw_conn_send_shared(c, s);
    gw_shared_unref(s);
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
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--max-message") == 0 && i + 1 < argc) {
            max_msg = atol(argv[++i]);
        } else {
            printf("usage: herald-conformance [--port N] [--max-message BYTES]\n"
                   "WebSocket echo server on gw_net, for Autobahn|Testsuite.\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    log_set_ident("conformance");
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    struct gw_limits lim = {
        .http = {.max_request_line = 8192, .max_head = 16384, .max_headers = 64, .max_body = 0},
        .header_timeout_ms = 10000,
        .keepalive_ms = 60000,
        .max_msg = (size_t)max_msg,
        .out_cap = (size_t)max_msg * 4,
        .ping_interval_ms = 600000,
        .ping_timeout_ms = 1200000,
        .close_timeout_ms = 2000,
    };
    struct gw_net_handlers h = {.on_request = echo_request, .on_ws_message = echo_message};
    static struct gw_net net;
    int bound = 0;
    if (gw_net_init(&net, base, &lim, &h, "127.0.0.1", port, &bound) != 0)
        return 1;
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    printf("herald-conformance: ws://127.0.0.1:%d\n", bound);
    fflush(stdout);
    event_base_dispatch(base);
    gw_net_free(&net);
    event_free(sigterm);
    event_free(sigint);
    event_base_free(base);
    return 0;
}
