/*
 * test_gw_bodies.c - every fixed JSON body the gateway can send
 * (gateway/gw_bodies.h) is one complete JSON object, and the length the
 * gateway sends (sizeof - 1, as GW_HTTP_RESPOND_LIT takes it) covers exactly
 * its characters: no NUL sent, nothing cut.
 */
#include "check.h"
#include "gw_bodies.h"

#include <json-c/json.h>
#include <stdbool.h>

static void check_body(const char *name, const char *body, size_t sent_len)
{
    CHECK_INT(sent_len, strlen(body));
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = json_tokener_parse_ex(tok, body, (int)sent_len);
    bool ok = o && json_tokener_get_error(tok) == json_tokener_success &&
              (size_t)json_tokener_get_parse_end(tok) == sent_len &&
              json_object_is_type(o, json_type_object);
    if (!ok)
        fprintf(stderr, "%s is not one JSON object: %s\n", name, body);
    CHECK(ok);
    json_object_put(o);
    json_tokener_free(tok);
}

#define CHECK_BODY(lit) check_body(#lit, lit, sizeof(lit) - 1);

int main(void)
{
    GW_FIXED_BODIES(CHECK_BODY)
    /* The check itself catches a body cut short, as the 426 once was. */
    static const char cut[] = GW_BODY_UPGRADE_REQUIRED;
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = json_tokener_parse_ex(tok, cut, (int)sizeof(cut) - 6);
    CHECK(o == NULL);
    json_tokener_free(tok);
    return check_report("gw_bodies");
}
