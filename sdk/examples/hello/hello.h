/* hello.h - the interface the hello plugin publishes, "org.example.hello/1".
 *
 * Another plugin that wants greetings includes this header (it is the
 * contract; nothing else of hello is visible) and asks the host registry:
 *
 *   const hello_iface_v1 *h = api->acquire(host, HELLO_IFACE_V1, &err);
 *   char buf[128];
 *   if (h) { h->greet(h->self, "Ada", buf, sizeof buf); api->release(host, HELLO_IFACE_V1); }
 *
 * Rules as for every sdrt struct: struct_size first, members only appended,
 * a caller reads a member only when SDRT_HAS_MEMBER says it is there. An
 * incompatible change gets a new id, "org.example.hello/2".
 */
#ifndef ORG_EXAMPLE_HELLO_H
#define ORG_EXAMPLE_HELLO_H

#include <stddef.h>
#include <stdint.h>

#define HELLO_IFACE_V1 "org.example.hello/1"

typedef struct hello_iface_v1 {
    uint32_t struct_size;
    void *self; /* pass back as the first argument */
    /* Any thread. Writes "<greeting>, <name>!" into out (always
     * NUL-terminated when outlen > 0). `name` is borrowed. Returns the length
     * the full text needs, like snprintf, so a caller can tell truncation. */
    size_t (*greet)(void *self, const char *name, char *out, size_t outlen);
} hello_iface_v1;

#endif
