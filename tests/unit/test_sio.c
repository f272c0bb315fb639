/*
 * test_sio.c - the Socket.IO v5 codec (common/sio.c).
 *
 * Packet vectors give the bytes (the data of one Engine.IO message, i.e.
 * without the leading '4'), the status and, when it is OK, every field.
 * Each vector is also:
 *  - truncated at every length, in a heap buffer of exactly that length
 *    (AddressSanitizer sees any over-read), where fields must stay inside
 *    the buffer and a cut inside the JSON payload must be SIO_ERR_PAYLOAD
 *    (no proper prefix of an array or object is JSON);
 *  - when OK, re-encoded with sio_encode_header() + the payload and parsed
 *    again to the same fields; vectors marked CANON are the reference
 *    encoder's own output and must come back byte for byte;
 *  - when OK with a payload, checked against json-c: what we accept must
 *    parse with json_tokener_new_ex(32), whole, as an array or object.
 *
 * Sources: every example in the Socket.IO v5 protocol document (packet
 * encoding and sample session), the socket.io-protocol test suite, and
 * socket.io-parser's tests (test/parser.js).
 */
#include "check.h"
#include "sio.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdlib.h>

#define S(lit) lit, sizeof(lit) - 1

struct vec {
    const char *name;
    const char *bytes;
    size_t len;
    enum sio_status want;
    uint8_t type;
    unsigned attachments;
    const char *nsp;
    int64_t ack_id;
    const char *data; /* NULL: no payload */
    bool canon;       /* the header encoder reproduces the bytes exactly */
};

#define OK(name, lit, type, att, nsp, ack, data, canon)                                            \
    {                                                                                              \
        name, S(lit), SIO_OK, type, att, nsp, ack, data, canon                                     \
    }
#define BAD(name, lit, st)                                                                         \
    {                                                                                              \
        name, S(lit), st, 0, 0, NULL, -1, NULL, false                                              \
    }
#define CANON true
#define LOOSE false

#define PH0 "{\"_placeholder\":true,\"num\":0}"
#define PH1 "{\"_placeholder\":true,\"num\":1}"

static const struct vec vecs[] = {
    /* socket-io-protocol, "Packet encoding / Examples". */
    OK("doc: connect main", "0", SIO_CONNECT, 0, "/", -1, NULL, CANON),
    OK("doc: connect admin with sid", "0/admin,{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}", SIO_CONNECT, 0,
       "/admin", -1, "{\"sid\":\"oSO0OpakMV_3jnilAAAA\"}", CANON),
    OK("doc: connect error", "4{\"message\":\"Not authorized\"}", SIO_CONNECT_ERROR, 0, "/", -1,
       "{\"message\":\"Not authorized\"}", CANON),
    OK("doc: event main", "2[\"foo\"]", SIO_EVENT, 0, "/", -1, "[\"foo\"]", CANON),
    OK("doc: event admin", "2/admin,[\"bar\"]", SIO_EVENT, 0, "/admin", -1, "[\"bar\"]", CANON),
    OK("doc: binary event", "51-[\"baz\"," PH0 "]", SIO_BINARY_EVENT, 1, "/", -1,
       "[\"baz\"," PH0 "]", CANON),
    OK("doc: binary event, 2 attachments, admin", "52-/admin,[\"baz\"," PH0 "," PH1 "]",
       SIO_BINARY_EVENT, 2, "/admin", -1, "[\"baz\"," PH0 "," PH1 "]", CANON),
    OK("doc: event with ack", "212[\"foo\"]", SIO_EVENT, 0, "/", 12, "[\"foo\"]", CANON),
    OK("doc: ack admin", "3/admin,13[\"bar\"]", SIO_ACK, 0, "/admin", 13, "[\"bar\"]", CANON),
    OK("doc: binary ack", "61-15[\"bar\"," PH0 "]", SIO_BINARY_ACK, 1, "/", 15, "[\"bar\"," PH0 "]",
       CANON),
    OK("doc: disconnect main", "1", SIO_DISCONNECT, 0, "/", -1, NULL, CANON),
    OK("doc: disconnect admin", "1/admin,", SIO_DISCONNECT, 0, "/admin", -1, NULL, CANON),
    /* socket-io-protocol, "Sample session". */
    OK("session: connect sid", "0{\"sid\":\"wZX3oN0bSVIhsaknAAAI\"}", SIO_CONNECT, 0, "/", -1,
       "{\"sid\":\"wZX3oN0bSVIhsaknAAAI\"}", CANON),
    OK("session: hey Jude", "2[\"hey\",\"Jude\"]", SIO_EVENT, 0, "/", -1, "[\"hey\",\"Jude\"]",
       CANON),
    OK("session: hello", "2[\"hello\"]", SIO_EVENT, 0, "/", -1, "[\"hello\"]", CANON),
    OK("session: world", "2[\"world\"]", SIO_EVENT, 0, "/", -1, "[\"world\"]", CANON),
    OK("session: connect admin", "0/admin,", SIO_CONNECT, 0, "/admin", -1, NULL, CANON),
    OK("session: connect admin granted", "0/admin,{\"sid\":\"-G5j-67EZFp-q59rADQM\"}", SIO_CONNECT,
       0, "/admin", -1, "{\"sid\":\"-G5j-67EZFp-q59rADQM\"}", CANON),
    OK("session: tellme with ack", "2/admin,1[\"tellme\"]", SIO_EVENT, 0, "/admin", 1,
       "[\"tellme\"]", CANON),
    OK("session: binary ack placeholder", "61-/admin,1[" PH0 "]", SIO_BINARY_ACK, 1, "/admin", 1,
       "[" PH0 "]", CANON),
    /* socket.io-protocol test suite (client and server bytes). */
    OK("suite: auth empty", "2[\"auth\",{}]", SIO_EVENT, 0, "/", -1, "[\"auth\",{}]", CANON),
    OK("suite: connect with token", "0{\"token\":\"123\"}", SIO_CONNECT, 0, "/", -1,
       "{\"token\":\"123\"}", CANON),
    OK("suite: auth token", "2[\"auth\",{\"token\":\"123\"}]", SIO_EVENT, 0, "/", -1,
       "[\"auth\",{\"token\":\"123\"}]", CANON),
    OK("suite: connect custom", "0/custom,", SIO_CONNECT, 0, "/custom", -1, NULL, CANON),
    OK("suite: connect custom token", "0/custom,{\"token\":\"abc\"}", SIO_CONNECT, 0, "/custom", -1,
       "{\"token\":\"abc\"}", CANON),
    OK("suite: auth custom", "2/custom,[\"auth\",{}]", SIO_EVENT, 0, "/custom", -1, "[\"auth\",{}]",
       CANON),
    OK("suite: connect without comma", "0/random", SIO_CONNECT, 0, "/random", -1, NULL, LOOSE),
    OK("suite: invalid namespace", "4/random,{\"message\":\"Invalid namespace\"}",
       SIO_CONNECT_ERROR, 0, "/random", -1, "{\"message\":\"Invalid namespace\"}", CANON),
    OK("suite: disconnect custom without comma", "1/custom", SIO_DISCONNECT, 0, "/custom", -1, NULL,
       LOOSE),
    OK("suite: message", "2[\"message\",1,\"2\",{\"3\":[true]}]", SIO_EVENT, 0, "/", -1,
       "[\"message\",1,\"2\",{\"3\":[true]}]", CANON),
    OK("suite: binary message", "52-[\"message\"," PH0 "," PH1 "]", SIO_BINARY_EVENT, 2, "/", -1,
       "[\"message\"," PH0 "," PH1 "]", CANON),
    OK("suite: message with ack", "2456[\"message-with-ack\",1,\"2\",{\"3\":[false]}]", SIO_EVENT,
       0, "/", 456, "[\"message-with-ack\",1,\"2\",{\"3\":[false]}]", CANON),
    OK("suite: ack back", "3456[1,\"2\",{\"3\":[false]}]", SIO_ACK, 0, "/", 456,
       "[1,\"2\",{\"3\":[false]}]", CANON),
    OK("suite: binary with ack", "52-789[\"message-with-ack\"," PH0 "," PH1 "]", SIO_BINARY_EVENT,
       2, "/", 789, "[\"message-with-ack\"," PH0 "," PH1 "]", CANON),
    OK("suite: binary ack back", "62-789[" PH0 "," PH1 "]", SIO_BINARY_ACK, 2, "/", 789,
       "[" PH0 "," PH1 "]", CANON),
    BAD("suite: 4abc is type a", "abc", SIO_ERR_TYPE),
    BAD("suite: event with object", "2{}", SIO_ERR_PAYLOAD),
    BAD("suite: letters as ack id", "2abc[\"message-with-ack\",1,\"2\",{\"3\":[false]}]",
        SIO_ERR_PAYLOAD),
    /* socket.io-parser test/parser.js. */
    OK("parser: connect woot token", "0/woot,{\"token\":\"123\"}", SIO_CONNECT, 0, "/woot", -1,
       "{\"token\":\"123\"}", CANON),
    OK("parser: disconnect woot", "1/woot,", SIO_DISCONNECT, 0, "/woot", -1, NULL, CANON),
    OK("parser: event a 1 {}", "2[\"a\",1,{}]", SIO_EVENT, 0, "/", -1, "[\"a\",1,{}]", CANON),
    OK("parser: event with ack test", "2/test,1[\"a\",1,{}]", SIO_EVENT, 0, "/test", 1,
       "[\"a\",1,{}]", CANON),
    OK("parser: ack 123", "3123[\"a\",1,{}]", SIO_ACK, 0, "/", 123, "[\"a\",1,{}]", CANON),
    OK("parser: connect error object", "4{\"message\":\"Unauthorized\"}", SIO_CONNECT_ERROR, 0, "/",
       -1, "{\"message\":\"Unauthorized\"}", CANON),
    OK("parser: 3 attachments", "53-[\"hello\"," PH0 "," PH1 ",{\"_placeholder\":true,\"num\":2}]",
       SIO_BINARY_EVENT, 3, "/", -1,
       "[\"hello\"," PH0 "," PH1 ",{\"_placeholder\":true,\"num\":2}]", CANON),
    OK("parser: binary, destroy test", "51-[\"hello\"]", SIO_BINARY_EVENT, 1, "/", -1,
       "[\"hello\"]", CANON),
    BAD("parser: string connect error (v4)", "4\"Unauthorized\"", SIO_ERR_PAYLOAD),
    BAD("parser: numeric event name", "2[1,\"a\",{}]", SIO_ERR_PAYLOAD),
    BAD("parser: 442[some,data", "42[\"some\",\"data\"", SIO_ERR_ACK_ID),
    BAD("parser: connect string", "0/admin,\"invalid\"", SIO_ERR_PAYLOAD),
    BAD("parser: connect array", "0[]", SIO_ERR_PAYLOAD),
    BAD("parser: disconnect with payload", "1/admin,{}", SIO_ERR_PAYLOAD),
    BAD("parser: unterminated string", "2/admin,\"invalid", SIO_ERR_PAYLOAD),
    BAD("parser: event object", "2/admin,{}", SIO_ERR_PAYLOAD),
    BAD("parser: object as event name", "2[{\"toString\":\"foo\"}]", SIO_ERR_PAYLOAD),
    BAD("parser: true as event name", "2[true,\"foo\"]", SIO_ERR_PAYLOAD),
    BAD("parser: null as event name", "2[null,\"bar\"]", SIO_ERR_PAYLOAD),
    BAD("parser: reserved connect", "2[\"connect\"]", SIO_ERR_PAYLOAD),
    BAD("parser: reserved disconnect", "2[\"disconnect\",\"123\"]", SIO_ERR_PAYLOAD),
    BAD("parser: 5", "5", SIO_ERR_ATTACHMENTS),
    BAD("parser: 51", "51", SIO_ERR_ATTACHMENTS),
    BAD("parser: 5a-", "5a-", SIO_ERR_ATTACHMENTS),
    BAD("parser: 51.23-", "51.23-", SIO_ERR_ATTACHMENTS),
    BAD("parser: 999", "999", SIO_ERR_TYPE),

    /* Type. */
    BAD("empty", "", SIO_ERR_EMPTY),
    BAD("type 7", "7[\"a\"]", SIO_ERR_TYPE),
    BAD("type /", "/admin,", SIO_ERR_TYPE),
    BAD("type space", " 2[\"a\"]", SIO_ERR_TYPE),
    BAD("type [", "[\"a\"]", SIO_ERR_TYPE),
    BAD("NUL", "\0", SIO_ERR_TYPE),
    /* Attachments. */
    BAD("zero attachments (released parser: n < 1)", "50-[\"a\"]", SIO_ERR_ATTACHMENTS),
    BAD("zero attachments, leading zeros", "600-1[]", SIO_ERR_ATTACHMENTS),
    OK("attachments at the limit", "564-[\"a\"]", SIO_BINARY_EVENT, 64, "/", -1, "[\"a\"]", CANON),
    OK("leading zeros in the count", "5007-[\"a\"]", SIO_BINARY_EVENT, 7, "/", -1, "[\"a\"]",
       LOOSE),
    BAD("attachments over the limit", "565-[\"a\"]", SIO_ERR_ATTACHMENTS),
    BAD("huge attachment count", "599999999999999999999999999-[\"a\"]", SIO_ERR_ATTACHMENTS),
    BAD("2^32 + 1 attachments", "54294967297-[\"a\"]", SIO_ERR_ATTACHMENTS),
    BAD("empty count", "5-[\"a\"]", SIO_ERR_ATTACHMENTS),
    BAD("count without dash", "51[\"a\"]", SIO_ERR_ATTACHMENTS),
    BAD("negative count", "5-1-[\"a\"]", SIO_ERR_ATTACHMENTS),
    BAD("count with space", "5 1-[\"a\"]", SIO_ERR_ATTACHMENTS),
    BAD("count then namespace, no dash", "51/admin,[\"a\"]", SIO_ERR_ATTACHMENTS),
    BAD("binary ack without dash", "61[\"a\"]", SIO_ERR_ATTACHMENTS),
    BAD("count on an event", "21-[\"a\"]", SIO_ERR_ATTACHMENTS),
    BAD("count on an ack", "31-1[]", SIO_ERR_ATTACHMENTS),
    BAD("count on a connect", "01-", SIO_ERR_ATTACHMENTS),
    BAD("binary event without payload", "51-", SIO_ERR_PAYLOAD),
    BAD("binary ack without id", "61-[]", SIO_ERR_ACK_ID),
    /* Namespace. */
    OK("explicit root namespace", "2/,[\"a\"]", SIO_EVENT, 0, "/", -1, "[\"a\"]", LOOSE),
    OK("namespace with odd bytes", "2/a b[]{}\xc3\xa9:1,[\"x\"]", SIO_EVENT, 0,
       "/a b[]{}\xc3\xa9:1", -1, "[\"x\"]", CANON),
    OK("namespace of slashes", "0//,", SIO_CONNECT, 0, "//", -1, NULL, CANON),
    OK("connect without comma, json-looking namespace", "0/a{\"t\":1}", SIO_CONNECT, 0,
       "/a{\"t\":1}", -1, NULL, LOOSE),
    OK("disconnect root without comma", "1/", SIO_DISCONNECT, 0, "/", -1, NULL, LOOSE),
    BAD("event namespace without comma", "2/admin", SIO_ERR_NAMESPACE),
    BAD("event namespace then payload, no comma", "2/admin[\"a\"]", SIO_ERR_NAMESPACE),
    BAD("ack namespace without comma", "3/admin", SIO_ERR_NAMESPACE),
    BAD("connect error namespace without comma", "4/admin", SIO_ERR_NAMESPACE),
    BAD("namespace with a separator byte", "0/a\x1e,", SIO_ERR_NAMESPACE),
    BAD("namespace with NUL", "0/a\0b,", SIO_ERR_NAMESPACE),
    BAD("namespace with newline", "2/a\n,[\"a\"]", SIO_ERR_NAMESPACE),
    BAD("namespace with DEL", "0/\x7f,", SIO_ERR_NAMESPACE),
    BAD("double comma", "0/admin,,", SIO_ERR_PAYLOAD),
    BAD("comma without namespace", "0,", SIO_ERR_PAYLOAD),
    /* Ack ids. */
    OK("ack id 0", "20[\"a\"]", SIO_EVENT, 0, "/", 0, "[\"a\"]", CANON),
    OK("ack id 2^53-1", "29007199254740991[\"a\"]", SIO_EVENT, 0, "/", 9007199254740991LL,
       "[\"a\"]", CANON),
    OK("ack id leading zeros", "3007[]", SIO_ACK, 0, "/", 7, "[]", LOOSE),
    OK("ack id after namespace on binary ack", "63-/x,42[]", SIO_BINARY_ACK, 3, "/x", 42, "[]",
       CANON),
    BAD("ack id 2^53", "29007199254740992[\"a\"]", SIO_ERR_ACK_ID),
    BAD("ack id 2^64", "218446744073709551616[\"a\"]", SIO_ERR_ACK_ID),
    BAD("ack id of 30 digits", "2999999999999999999999999999999[\"a\"]", SIO_ERR_ACK_ID),
    BAD("ack without id", "3[]", SIO_ERR_ACK_ID),
    BAD("ack in namespace without id", "3/admin,[\"a\"]", SIO_ERR_ACK_ID),
    BAD("connect with ack id", "01{}", SIO_ERR_ACK_ID),
    BAD("connect with digits only", "0123", SIO_ERR_ACK_ID),
    BAD("disconnect with ack id", "1/admin,5", SIO_ERR_ACK_ID),
    BAD("connect error with ack id", "41{}", SIO_ERR_ACK_ID),
    BAD("event with id but no payload", "212", SIO_ERR_PAYLOAD),
    BAD("ack id then garbage", "21abc", SIO_ERR_PAYLOAD),
    BAD("negative ack id", "2-1[\"a\"]", SIO_ERR_PAYLOAD),
    /* Payload presence and shape. */
    OK("connect empty object", "0{}", SIO_CONNECT, 0, "/", -1, "{}", CANON),
    OK("ack empty array", "31[]", SIO_ACK, 0, "/", 1, "[]", CANON),
    OK("connect error empty object", "4{}", SIO_CONNECT_ERROR, 0, "/", -1, "{}", CANON),
    OK("event empty name", "2[\"\"]", SIO_EVENT, 0, "/", -1, "[\"\"]", CANON),
    OK("event trailing whitespace", "2[\"a\"] \t\r\n", SIO_EVENT, 0, "/", -1, "[\"a\"] \t\r\n",
       CANON),
    OK("event inner whitespace", "2[ \"a\" , 1 ,\t{ \"k\" : [ ] } ]", SIO_EVENT, 0, "/", -1,
       "[ \"a\" , 1 ,\t{ \"k\" : [ ] } ]", CANON),
    OK("event escaped quote in name", "2[\"a\\\"b\",1]", SIO_EVENT, 0, "/", -1, "[\"a\\\"b\",1]",
       CANON),
    OK("not quite reserved", "2[\"connected\"]", SIO_EVENT, 0, "/", -1, "[\"connected\"]", CANON),
    OK("reserved name is case-sensitive", "2[\"Connect\"]", SIO_EVENT, 0, "/", -1, "[\"Connect\"]",
       CANON),
    OK("reserved name as argument", "2[\"x\",\"connect\"]", SIO_EVENT, 0, "/", -1,
       "[\"x\",\"connect\"]", CANON),
    OK("reserved name with NUL escape", "2[\"connect\\u0000\"]", SIO_EVENT, 0, "/", -1,
       "[\"connect\\u0000\"]", CANON),
    OK("long event name", "2[\"removeListenerX\"]", SIO_EVENT, 0, "/", -1, "[\"removeListenerX\"]",
       CANON),
    OK("json kitchen sink",
       "3/x,9[-0,0.5,1e5,1E+5,-1.25e-7,true,false,null,\"\\\"\\\\\\/\\b\\f\\n\\r\\t"
       "\\u00e9\\uD83D\\uDE00\",{\"\":{}},[[]]]",
       SIO_ACK, 0, "/x", 9,
       "[-0,0.5,1e5,1E+5,-1.25e-7,true,false,null,\"\\\"\\\\\\/\\b\\f\\n\\r\\t"
       "\\u00e9\\uD83D\\uDE00\",{\"\":{}},[[]]]",
       CANON),
    OK("raw utf-8 and DEL in a string", "2[\"\xc3\xa9\x7f\"]", SIO_EVENT, 0, "/", -1,
       "[\"\xc3\xa9\x7f\"]", CANON),
    /* JSON that json-c must also take (the gateway parses payloads with it). */
    OK("huge exponent", "31[1e400,-1e400,1e-400]", SIO_ACK, 0, "/", 1, "[1e400,-1e400,1e-400]",
       CANON),
    OK("integer beyond 64 bits", "31[123456789012345678901234567890,-99999999999999999999]",
       SIO_ACK, 0, "/", 1, "[123456789012345678901234567890,-99999999999999999999]", CANON),
    OK("lone surrogates", "2[\"\\uD800\",\"\\uDC00\",\"\\uD800\\u0041\",\"\\udbff\"]", SIO_EVENT, 0,
       "/", -1, "[\"\\uD800\",\"\\uDC00\",\"\\uD800\\u0041\",\"\\udbff\"]", CANON),
    OK("escaped NUL", "2[\"a\\u0000b\"]", SIO_EVENT, 0, "/", -1, "[\"a\\u0000b\"]", CANON),
    OK("duplicate keys", "0{\"a\":1,\"a\":2}", SIO_CONNECT, 0, "/", -1, "{\"a\":1,\"a\":2}", CANON),
    OK("long number run", "31[0.00000000000000000000000000000000000000000000000001]", SIO_ACK, 0,
       "/", 1, "[0.00000000000000000000000000000000000000000000000001]", CANON),
    BAD("event without payload", "2", SIO_ERR_PAYLOAD),
    BAD("ack without payload", "31", SIO_ERR_PAYLOAD),
    BAD("connect error without payload", "4", SIO_ERR_PAYLOAD),
    BAD("event empty array", "2[]", SIO_ERR_PAYLOAD),
    BAD("event string", "2\"a\"", SIO_ERR_PAYLOAD),
    BAD("event number", "2 1", SIO_ERR_PAYLOAD),
    BAD("event leading space", "2 [\"a\"]", SIO_ERR_PAYLOAD),
    BAD("event leading tab after namespace", "2/admin,\t[\"a\"]", SIO_ERR_PAYLOAD),
    BAD("event leading newline after id", "21\n[\"a\"]", SIO_ERR_PAYLOAD),
    BAD("event number first", "2[1]", SIO_ERR_PAYLOAD),
    BAD("event array first", "2[[\"a\"]]", SIO_ERR_PAYLOAD),
    BAD("ack object", "31{}", SIO_ERR_PAYLOAD),
    BAD("connect error array", "4[]", SIO_ERR_PAYLOAD),
    BAD("connect number", "0 5", SIO_ERR_PAYLOAD),
    BAD("disconnect with array", "1[]", SIO_ERR_PAYLOAD),
    BAD("disconnect root comma payload", "1/,{}", SIO_ERR_PAYLOAD),
    BAD("trailing garbage", "2[\"a\"]x", SIO_ERR_PAYLOAD),
    BAD("two values", "2[\"a\"][\"b\"]", SIO_ERR_PAYLOAD),
    BAD("trailing NUL", "2[\"a\"]\0", SIO_ERR_PAYLOAD),
    BAD("trailing separator", "2[\"a\"]\x1e", SIO_ERR_PAYLOAD),
    BAD("trailing comma", "3/x,1[1,]", SIO_ERR_PAYLOAD),
    BAD("leading comma", "31[,1]", SIO_ERR_PAYLOAD),
    BAD("double comma in array", "31[1,,2]", SIO_ERR_PAYLOAD),
    BAD("object trailing comma", "0{\"a\":1,}", SIO_ERR_PAYLOAD),
    BAD("object missing colon", "0{\"a\" 1}", SIO_ERR_PAYLOAD),
    BAD("object number key", "0{1:2}", SIO_ERR_PAYLOAD),
    BAD("object bare key", "0{a:1}", SIO_ERR_PAYLOAD),
    BAD("object single quotes", "0{'a':1}", SIO_ERR_PAYLOAD),
    BAD("object missing value", "0{\"a\":}", SIO_ERR_PAYLOAD),
    BAD("unclosed array", "2[\"a\"", SIO_ERR_PAYLOAD),
    BAD("unclosed object", "0{\"a\":1", SIO_ERR_PAYLOAD),
    BAD("mismatched brackets", "2[\"a\"}", SIO_ERR_PAYLOAD),
    BAD("number leading zero", "31[01]", SIO_ERR_PAYLOAD),
    BAD("number trailing dot", "31[1.]", SIO_ERR_PAYLOAD),
    BAD("number leading dot", "31[.5]", SIO_ERR_PAYLOAD),
    BAD("number lone minus", "31[-]", SIO_ERR_PAYLOAD),
    BAD("number plus sign", "31[+1]", SIO_ERR_PAYLOAD),
    BAD("number empty exponent", "31[1e]", SIO_ERR_PAYLOAD),
    BAD("number exponent sign only", "31[1e+]", SIO_ERR_PAYLOAD),
    BAD("number hex", "31[0x10]", SIO_ERR_PAYLOAD),
    BAD("NaN", "31[NaN]", SIO_ERR_PAYLOAD),
    BAD("Infinity", "31[Infinity]", SIO_ERR_PAYLOAD),
    BAD("truncated true", "31[tru]", SIO_ERR_PAYLOAD),
    BAD("uppercase literal", "31[True]", SIO_ERR_PAYLOAD),
    BAD("undefined", "31[undefined]", SIO_ERR_PAYLOAD),
    BAD("comment", "31[/*x*/1]", SIO_ERR_PAYLOAD),
    BAD("raw newline in string", "2[\"a\nb\"]", SIO_ERR_PAYLOAD),
    BAD("raw tab in string", "2[\"a\tb\"]", SIO_ERR_PAYLOAD),
    BAD("raw NUL in string", "2[\"a\0b\"]", SIO_ERR_PAYLOAD),
    BAD("raw 0x1f in string", "2[\"\x1f\"]", SIO_ERR_PAYLOAD),
    OK("space is the first raw character allowed", "2[\" \"]", SIO_EVENT, 0, "/", -1, "[\" \"]",
       CANON),
    BAD("raw separator in string",
        "2[\"a\x1e"
        "b\"]",
        SIO_ERR_PAYLOAD),
    BAD("bad escape \\x", "2[\"a\\x41\"]", SIO_ERR_PAYLOAD),
    BAD("bad escape \\'", "2[\"a\\'\"]", SIO_ERR_PAYLOAD),
    BAD("short \\u", "2[\"\\u12\"]", SIO_ERR_PAYLOAD),
    BAD("\\u with non-hex", "2[\"\\u12G4\"]", SIO_ERR_PAYLOAD),
    BAD("\\u at the end", "2[\"\\u", SIO_ERR_PAYLOAD),
    BAD("backslash at the end", "2[\"\\", SIO_ERR_PAYLOAD),
    BAD("string never closed", "2[\"abc", SIO_ERR_PAYLOAD),
    /* Reserved event names (socket.io-parser RESERVED_EVENTS). */
    BAD("reserved connect_error", "2[\"connect_error\"]", SIO_ERR_PAYLOAD),
    BAD("reserved disconnecting", "2[\"disconnecting\",1]", SIO_ERR_PAYLOAD),
    BAD("reserved newListener", "2/admin,[\"newListener\"]", SIO_ERR_PAYLOAD),
    BAD("reserved removeListener with ack", "27[\"removeListener\"]", SIO_ERR_PAYLOAD),
    BAD("reserved name escaped", "2[\"\\u0063onnect\"]", SIO_ERR_PAYLOAD),
    BAD("reserved name with escaped slash-free escape", "2[\"disconnec\\u0074\"]", SIO_ERR_PAYLOAD),
    BAD("reserved name, escaped underscore in upper-case hex", "2[\"connect\\u005Ferror\"]",
        SIO_ERR_PAYLOAD),
    BAD("reserved name, every letter escaped",
        "2[\"\\u0064\\u0069\\u0073\\u0063\\u006f\\u006e\\u006e\\u0065\\u0063\\u0074\"]",
        SIO_ERR_PAYLOAD),
    OK("escaped slash is not a reserved letter", "2[\"connect\\/\"]", SIO_EVENT, 0, "/", -1,
       "[\"connect\\/\"]", CANON),
    BAD("reserved on a binary event", "51-[\"disconnect\"," PH0 "]", SIO_ERR_PAYLOAD),
};

/* ---- deep nesting (built at run time) ----------------------------------- */

/* "2[\"e\"," + n x '[' + inner + n x ']' + "]": the innermost container
 * sits n+1 deep. */
static char *nested(size_t n, const char *open, const char *inner, const char *close, size_t *len)
{
    size_t ol = strlen(open), il = strlen(inner), cl = strlen(close);
    char *s = malloc(7 + n * (ol + cl) + il + 1);
    size_t o = 0;
    memcpy(s + o, "2[\"e\",", 6);
    o += 6;
    for (size_t i = 0; i < n; i++, o += ol)
        memcpy(s + o, open, ol);
    memcpy(s + o, inner, il);
    o += il;
    for (size_t i = 0; i < n; i++, o += cl)
        memcpy(s + o, close, cl);
    s[o++] = ']';
    s[o] = '\0';
    *len = o;
    return s;
}

/* Whether json-c (the gateway's parser) reads all of s[0..len) as one value
 * with its default depth. */
static bool jsonc_parses(const char *s, size_t len, enum json_type *type)
{
    struct json_tokener *tok = json_tokener_new_ex(SIO_MAX_JSON_DEPTH);
    struct json_object *obj = json_tokener_parse_ex(tok, s, (int)len);
    /* json_tokener_parse_ex() stops after the value; trailing blanks are
     * fine for the gateway too, so skip them before comparing. */
    size_t end = json_tokener_get_parse_end(tok);
    while (end < len && (s[end] == ' ' || s[end] == '\t' || s[end] == '\n' || s[end] == '\r'))
        end++;
    bool ok = obj && json_tokener_get_error(tok) == json_tokener_success && end == len;
    if (ok && type)
        *type = json_object_get_type(obj);
    json_object_put(obj);
    json_tokener_free(tok);
    return ok;
}

static void test_depth(void)
{
    /* first_bad: the smallest n refused. The event array is depth 0, so the
     * innermost value of n single-level wrappers sits at depth n + 1, and
     * json-c refuses a value at depth 32 (an empty container there is fine,
     * it has no value inside). */
    static const struct {
        const char *open, *inner, *close;
        int first_bad;
    } shapes[] = {
        {"[", "", "]", 32},         {"[", "1", "]", 31},        {"[", "\"s\"", "]", 31},
        {"{\"k\":", "{}", "}", 31}, {"{\"k\":", "0", "}", 31},  {"[{\"k\":", "[]", "}]", 16},
        {"[", "{}", "]", 31},       {"{\"k\":[", "", "]}", 16}, {"[", "[1,2]", "]", 30},
    };
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int first_bad = -1;
        /* n = 0 with an empty inner text would be "[\"e\",]": not JSON. */
        for (size_t n = shapes[s].inner[0] ? 0 : 1; n <= 40; n++) {
            size_t len;
            char *buf = nested(n, shapes[s].open, shapes[s].inner, shapes[s].close, &len);
            char *exact = malloc(len);
            memcpy(exact, buf, len);
            struct sio_packet p;
            enum sio_status st = sio_parse(exact, len, &p);
            bool ours = st == SIO_OK;
            bool theirs = jsonc_parses(buf + 1, len - 1, NULL);
            if (ours != theirs)
                fprintf(stderr, "  depth: shape %zu n %zu: sio %s, json-c %s\n", s, n,
                        ours ? "accepts" : "refuses", theirs ? "accepts" : "refuses");
            CHECK(ours == theirs);
            CHECK(ours || st == SIO_ERR_PAYLOAD);
            if (!ours && first_bad < 0)
                first_bad = (int)n;
            if (first_bad >= 0)
                CHECK(!ours); /* monotonic: deeper never passes again */
            free(exact);
            free(buf);
        }
        CHECK_INT(first_bad, shapes[s].first_bad);
    }
    /* A deep attack: 100 000 '[' fails fast and without blowing the stack. */
    size_t n = 100000;
    char *deep = malloc(n + 1);
    deep[0] = '3';
    memset(deep + 1, '[', n);
    struct sio_packet p;
    CHECK_INT(sio_parse(deep, n + 1, &p), SIO_ERR_ACK_ID);
    deep[1] = '1';
    CHECK_INT(sio_parse(deep, n + 1, &p), SIO_ERR_PAYLOAD);
    free(deep);
}

/* ---- vectors ------------------------------------------------------------ */

static bool same_fields(const struct sio_packet *a, const struct sio_packet *b)
{
    return a->type == b->type && a->attachments == b->attachments && a->nsp_len == b->nsp_len &&
           memcmp(a->nsp, b->nsp, a->nsp_len) == 0 && a->ack_id == b->ack_id &&
           (a->data == NULL) == (b->data == NULL) && a->data_len == b->data_len &&
           (a->data == NULL || memcmp(a->data, b->data, a->data_len) == 0);
}

/* Fields point inside buf (nsp may be the static "/"). */
static bool fields_inside(const struct sio_packet *p, const char *buf, size_t len)
{
    bool nsp_ok = (p->nsp_len == 1 && p->nsp[0] == '/') ||
                  (p->nsp >= buf && p->nsp + p->nsp_len <= buf + len);
    bool data_ok = p->data == NULL || (p->data >= buf && p->data + p->data_len == buf + len);
    return nsp_ok && data_ok && p->nsp_len >= 1 && p->nsp[0] == '/';
}

static void check_vec_fields(const struct vec *v, const struct sio_packet *p)
{
    bool ok = p->type == v->type && p->attachments == v->attachments &&
              p->nsp_len == strlen(v->nsp) && memcmp(p->nsp, v->nsp, p->nsp_len) == 0 &&
              p->ack_id == v->ack_id && (p->data == NULL) == (v->data == NULL) &&
              (v->data == NULL ||
               (p->data_len == strlen(v->data) && memcmp(p->data, v->data, p->data_len) == 0));
    if (!ok)
        fprintf(stderr, "  vector \"%s\": got type %u att %u nsp \"%.*s\" ack %lld data \"%.*s\"\n",
                v->name, p->type, p->attachments, (int)p->nsp_len, p->nsp, (long long)p->ack_id,
                p->data ? (int)p->data_len : 6, p->data ? p->data : "(null)");
    CHECK(ok);
}

static void test_vectors(void)
{
    for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
        const struct vec *v = &vecs[i];
        char *buf = malloc(v->len ? v->len : 1);
        memcpy(buf, v->bytes, v->len);
        struct sio_packet p;
        enum sio_status st = sio_parse(buf, v->len, &p);
        if (st != v->want)
            fprintf(stderr, "  vector \"%s\": got %s, want %s\n", v->name, sio_status_str(st),
                    sio_status_str(v->want));
        CHECK_INT(st, v->want);
        if (st == SIO_OK && v->want == SIO_OK) {
            check_vec_fields(v, &p);
            CHECK(fields_inside(&p, buf, v->len));

            /* Re-encode: header + payload parses back to the same fields. */
            char out[512];
            size_t h = sio_encode_header(out, sizeof(out), p.type, p.nsp, p.nsp_len, p.attachments,
                                         p.ack_id);
            CHECK(h > 0 && h + p.data_len <= sizeof(out));
            if (p.data)
                memcpy(out + h, p.data, p.data_len);
            size_t n = h + p.data_len;
            if (v->canon && (n != v->len || memcmp(out, v->bytes, n) != 0))
                fprintf(stderr, "  vector \"%s\": re-encoded as \"%.*s\"\n", v->name, (int)n, out);
            if (v->canon)
                CHECK_MEM(out, n, v->bytes);
            struct sio_packet q;
            CHECK_INT(sio_parse(out, n, &q), SIO_OK);
            CHECK(same_fields(&p, &q));
            /* Every capacity short of the header is refused. */
            for (size_t cap = 0; cap < h; cap++)
                CHECK_INT(
                    sio_encode_header(out, cap, p.type, p.nsp, p.nsp_len, p.attachments, p.ack_id),
                    0);

            /* What we accept, json-c parses, as the same kind of value. */
            if (p.data) {
                enum json_type jt = json_type_null;
                CHECK(jsonc_parses(p.data, p.data_len, &jt));
                CHECK(jt == (p.data[0] == '[' ? json_type_array : json_type_object));
            }
        }

        /* Every truncation, in an exact-size buffer. */
        size_t data_off = v->want == SIO_OK && v->data ? v->len - strlen(v->data) : v->len;
        size_t value_end = v->len;
        while (value_end > data_off && strchr(" \t\r\n", v->bytes[value_end - 1]))
            value_end--;
        for (size_t k = 0; k < v->len; k++) {
            char *cut = malloc(k ? k : 1);
            memcpy(cut, v->bytes, k);
            struct sio_packet c;
            enum sio_status cst = sio_parse(cut, k, &c);
            if (cst == SIO_OK)
                CHECK(fields_inside(&c, cut, k));
            if (k == 0)
                CHECK_INT(cst, SIO_ERR_EMPTY);
            if (k > data_off && k < value_end) {
                if (cst != SIO_ERR_PAYLOAD)
                    fprintf(stderr, "  vector \"%s\" cut at %zu: %s\n", v->name, k,
                            sio_status_str(cst));
                CHECK_INT(cst, SIO_ERR_PAYLOAD);
            }
            free(cut);
        }
        free(buf);
    }
}

/* ---- event split -------------------------------------------------------- */

struct split_vec {
    const char *data;
    int want;
    const char *name;
    const char *args;
};

static const struct split_vec split_vecs[] = {
    {"[\"foo\"]", 0, "foo", ""},
    {"[\"hey\",\"Jude\"]", 0, "hey", "\"Jude\""},
    {"[\"message\",1,\"2\",{\"3\":[true]}]", 0, "message", "1,\"2\",{\"3\":[true]}"},
    {"[\"a\\\"b\",1]", 0, "a\\\"b", "1"},
    {"[\"a\\\\\",1]", 0, "a\\\\", "1"},
    {"[\"a\\\\\\\"\",\"]\"]", 0, "a\\\\\\\"", "\"]\""},
    {"[ \"a\" , 1 ]", 0, "a", " 1 "},
    {"[\n\t\"a\"\r\n]\n", 0, "a", ""},
    {"[\"a\" ,[1,2] ]  ", 0, "a", "[1,2] "},
    {"[\"\"]", 0, "", ""},
    {"[\"\",\"\"]", 0, "", "\"\""},
    {"[\"\\u00e9\",\"x,y\"]", 0, "\\u00e9", "\"x,y\""},
    {"[\"connect\"]", 0, "connect", ""}, /* reserved names are sio_parse()'s business */
    {"[\"baz\"," PH0 "]", 0, "baz", PH0},
    {"[]", -1, NULL, NULL},
    {"[ ]", -1, NULL, NULL},
    {"[1,\"a\"]", -1, NULL, NULL},
    {"[null]", -1, NULL, NULL},
    {"{\"a\":1}", -1, NULL, NULL},
    {"\"a\"", -1, NULL, NULL},
    {" [\"a\"]", -1, NULL, NULL},
    {"[\"a\",]", -1, NULL, NULL},
    {"[\"a\" 1]", -1, NULL, NULL},
    {"[\"a\"]]", -1, NULL, NULL},
    {"[\"a\"", -1, NULL, NULL},
    {"[\"a", -1, NULL, NULL},
    {"[\"a\\\"]", -1, NULL, NULL},
    {"", -1, NULL, NULL},
    {"[", -1, NULL, NULL},
};

static void test_event_split(void)
{
    for (size_t i = 0; i < sizeof(split_vecs) / sizeof(split_vecs[0]); i++) {
        const struct split_vec *v = &split_vecs[i];
        size_t len = strlen(v->data);
        char *buf = malloc(len ? len : 1);
        memcpy(buf, v->data, len);
        const char *name = NULL, *args = NULL;
        size_t name_len = 0, args_len = 0;
        int rc = sio_event_split(buf, len, &name, &name_len, &args, &args_len);
        if (rc != v->want)
            fprintf(stderr, "  split \"%s\": got %d\n", v->data, rc);
        CHECK_INT(rc, v->want);
        if (rc == 0 && v->want == 0) {
            CHECK_MEM(name, name_len, v->name);
            CHECK_MEM(args, args_len, v->args);
            CHECK(name > buf && name + name_len < buf + len);
            CHECK(args >= buf && args + args_len <= buf + len);
            /* Through sio_parse too, as an event: the same name. */
            char *pkt = malloc(len + 1);
            pkt[0] = '2';
            memcpy(pkt + 1, buf, len);
            struct sio_packet p;
            enum sio_status st = sio_parse(pkt, len + 1, &p);
            CHECK_INT(st, strcmp(v->name, "connect") == 0 ? SIO_ERR_PAYLOAD : SIO_OK);
            free(pkt);
        }
        /* Every truncation of a valid array is refused. */
        for (size_t k = 0; v->want == 0 && k < len; k++) {
            char *cut = malloc(k ? k : 1);
            memcpy(cut, v->data, k);
            bool only_ws_left = strspn(v->data + k, " \t\r\n") == len - k;
            if (!only_ws_left)
                CHECK_INT(sio_event_split(cut, k, &name, &name_len, &args, &args_len), -1);
            free(cut);
        }
        free(buf);
    }
    const char *n, *a;
    size_t nl, al;
    CHECK_INT(sio_event_split(NULL, 0, &n, &nl, &a, &al), -1);
}

/* ---- header encoder ----------------------------------------------------- */

static void test_encode_header(void)
{
    char out[64];
    CHECK_MEM(out, sio_encode_header(out, sizeof(out), SIO_CONNECT, "/", 1, 0, -1), "0");
    CHECK_MEM(out, sio_encode_header(out, sizeof(out), SIO_CONNECT, NULL, 0, 0, -1), "0");
    CHECK_MEM(out, sio_encode_header(out, sizeof(out), SIO_DISCONNECT, "/admin", 6, 0, -1),
              "1/admin,");
    CHECK_MEM(out, sio_encode_header(out, sizeof(out), SIO_EVENT, "/", 1, 7, -1), "2");
    CHECK_MEM(out, sio_encode_header(out, sizeof(out), SIO_EVENT, "/", 1, 0, 12), "212");
    CHECK_MEM(out, sio_encode_header(out, sizeof(out), SIO_ACK, "/admin", 6, 0, 13), "3/admin,13");
    CHECK_MEM(out, sio_encode_header(out, sizeof(out), SIO_CONNECT_ERROR, "/random", 7, 0, -1),
              "4/random,");
    CHECK_MEM(out, sio_encode_header(out, sizeof(out), SIO_BINARY_EVENT, "/", 1, 1, -1), "51-");
    CHECK_MEM(out, sio_encode_header(out, sizeof(out), SIO_BINARY_EVENT, "/admin", 6, 2, -1),
              "52-/admin,");
    CHECK_MEM(out, sio_encode_header(out, sizeof(out), SIO_BINARY_ACK, "/", 1, 1, 15), "61-15");
    CHECK_MEM(out, sio_encode_header(out, sizeof(out), SIO_BINARY_ACK, "/admin", 6, 1, 1),
              "61-/admin,1");
    CHECK_MEM(out, sio_encode_header(out, sizeof(out), SIO_BINARY_ACK, "/", 1, 0, 0), "60-0");
    CHECK_MEM(out, sio_encode_header(out, sizeof(out), SIO_BINARY_EVENT, "/", 1, 4294967295u, -1),
              "54294967295-");
    CHECK_MEM(out, sio_encode_header(out, sizeof(out), SIO_EVENT, "/", 1, 0, SIO_MAX_ACK_ID),
              "29007199254740991");
    /* An nsp pointer that is not NUL-terminated: only nsp_len bytes count. */
    CHECK_MEM(out, sio_encode_header(out, sizeof(out), SIO_EVENT, "/chat,xyz", 5, 0, -1),
              "2/chat,");
    /* Exact capacity works, one less is refused, nothing past cap written. */
    for (size_t cap = 0; cap <= 13; cap++) {
        memset(out, '#', sizeof(out));
        size_t n = sio_encode_header(out, cap, SIO_BINARY_ACK, "/admin", 6, 2, 345);
        CHECK_INT(n, cap == 13 ? 13 : 0);
        CHECK(out[cap] == '#');
        if (n)
            CHECK_MEM(out, n, "62-/admin,345");
    }
}

static void test_status_str(void)
{
    const char *seen[SIO_ERR_PAYLOAD + 1];
    for (int st = SIO_OK; st <= SIO_ERR_PAYLOAD; st++) {
        const char *s = sio_status_str((enum sio_status)st);
        CHECK(s && s[0] != '\0');
        seen[st] = s;
        for (int k = 0; k < st; k++)
            CHECK(strcmp(seen[k], s) != 0);
    }
}

int main(void)
{
    test_vectors();
    test_depth();
    test_event_split();
    test_encode_header();
    test_status_str();
    return check_report("test_sio");
}
