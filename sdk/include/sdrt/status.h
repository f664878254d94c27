/* sdrt/status.h - status codes shared by the ABI, the protocol and JSON-RPC.
 *
 * One X-macro table gives the enum, the symbolic names sent as `error_code`
 * and the JSON-RPC 2.0 `error.code` numbers. Append only: the numeric value
 * of an existing status never changes (it crosses the plugin ABI).
 */
#ifndef SDRT_STATUS_H
#define SDRT_STATUS_H

/*        NAME                 value  json-rpc  default message */
#define SDRT_STATUS_LIST(X)                                                   \
    X(OK,                   0,      0,     "success")                         \
    X(PARSE_ERROR,          1, -32700,     "not valid JSON")                  \
    X(INVALID_REQUEST,      2, -32600,     "not a valid request")             \
    X(UNKNOWN_TYPE,         3, -32601,     "unknown message type")            \
    X(INVALID_ARGUMENT,     4, -32602,     "invalid argument")                \
    X(NOT_FOUND,            5, -32001,     "not found")                       \
    X(ALREADY_EXISTS,       6, -32002,     "already exists")                  \
    X(PERMISSION_DENIED,    7, -32003,     "permission denied")               \
    X(UNSUPPORTED,          8, -32004,     "unsupported")                     \
    X(UNAVAILABLE,          9, -32005,     "unavailable")                     \
    X(RESOURCE_EXHAUSTED,  10, -32006,     "resource exhausted")              \
    X(BUSY,                11, -32007,     "busy: queue full")                \
    X(FAILED_PRECONDITION, 12, -32008,     "failed precondition")             \
    X(DEADLINE_EXCEEDED,   13, -32009,     "deadline exceeded")               \
    X(CANCELLED,           14, -32800,     "cancelled")                       \
    X(ABI_MISMATCH,        15, -32010,     "ABI mismatch")                    \
    X(INTERNAL,            16, -32603,     "internal error")                  \
    X(IO_ERROR,            17, -32011,     "I/O error")

typedef enum sdrt_status {
#define SDRT_STATUS_ENUM_(name, value, rpc, msg) SDRT_##name = value,
    SDRT_STATUS_LIST(SDRT_STATUS_ENUM_)
#undef SDRT_STATUS_ENUM_
    SDRT_STATUS_COUNT_
} sdrt_status;

/* The symbolic name sent as `error_code` ("NOT_FOUND"); "UNKNOWN" for a
 * value outside the table. Static storage; any thread. */
static inline const char *sdrt_status_name(sdrt_status st) {
    switch (st) {
#define SDRT_STATUS_NAME_(name, value, rpc, msg) case SDRT_##name: return #name;
        SDRT_STATUS_LIST(SDRT_STATUS_NAME_)
#undef SDRT_STATUS_NAME_
    default: return "UNKNOWN";
    }
}

/* The JSON-RPC 2.0 `error.code` of a status; -32603 (internal) for a value
 * outside the table. Any thread. */
static inline int sdrt_status_rpc_code(sdrt_status st) {
    switch (st) {
#define SDRT_STATUS_RPC_(name, value, rpc, msg) case SDRT_##name: return rpc;
        SDRT_STATUS_LIST(SDRT_STATUS_RPC_)
#undef SDRT_STATUS_RPC_
    default: return -32603;
    }
}

/* The default human message of a status. Static storage; any thread. */
static inline const char *sdrt_status_message(sdrt_status st) {
    switch (st) {
#define SDRT_STATUS_MSG_(name, value, rpc, msg) case SDRT_##name: return msg;
        SDRT_STATUS_LIST(SDRT_STATUS_MSG_)
#undef SDRT_STATUS_MSG_
    default: return "unknown status";
    }
}

#endif /* SDRT_STATUS_H */
