/* host/redis_tls.h - TLS to Redis for hiredis 0.14, which has no TLS of its
 * own (Debian 12 ships no hiredis_ssl). Design: OpenSSL runs the TLS
 * session on the TCP socket; hiredis talks plain RESP to one end of a
 * socketpair (redisConnectFd), and a pump thread per connection copies
 * bytes between the other end and the TLS session. hiredis stays the only
 * RESP implementation (commands, replies, timeouts, errors) and the rest of
 * the pool code does not know whether a connection is encrypted. Internal
 * to the host; built with the pool commands.
 *
 * Thread: an rtls_ctx is made once per rconn and then only read (OpenSSL
 * SSL_CTX is safe to share read-only); each rtls stream is used by its
 * pump thread alone after rtls_start returns. */
#ifndef SDRT_HOST_REDIS_TLS_H
#define SDRT_HOST_REDIS_TLS_H

#include <stddef.h>

/* TLS settings of a pool connection (config "pool" section, environment;
 * docs/scale-out.md). Strings are owned by whoever owns the settings;
 * NULL means not set. */
typedef struct rtls_opts {
    char *ca_file;           /* PEM CA bundle; NULL: the system's CAs */
    char *cert_file;         /* client certificate (PEM), for servers that ask */
    char *key_file;          /* its private key (PEM); NULL: in cert_file */
    char *server_name;       /* name the certificate must carry; NULL: the URL's host */
    int verify_server_name;  /* 1 (default): the certificate must name the server */
} rtls_opts;

typedef struct rtls_ctx rtls_ctx;
typedef struct rtls rtls;

/* Builds the TLS client settings (CA, client certificate, verification).
 * Returns NULL with a message naming the setting and the file in err. */
rtls_ctx *rtls_ctx_new(const rtls_opts *o, char *err, size_t errlen);
void rtls_ctx_free(rtls_ctx *ctx);

/* Runs the TLS handshake on the connected TCP socket `tcp_fd` (taken over:
 * closed by the stream, or here on failure) within `timeout_s`, checking
 * the server's certificate against the CA and `host` (the URL's host, or
 * o->server_name). On success returns the stream and sets *app_fd to the
 * plain end for hiredis (owned by the caller, e.g. by the redisContext of
 * redisConnectFd). On failure returns NULL with the reason in err
 * (certificate problems by their OpenSSL name, e.g. "certificate verify
 * failed: unable to get local issuer certificate"); *permanent is set when
 * retrying cannot help (a certificate or name that does not verify). */
rtls *rtls_start(rtls_ctx *ctx, const rtls_opts *o, int tcp_fd, const char *host, double timeout_s, int *app_fd,
                 int *permanent, char *err, size_t errlen);
/* Ends the stream once the app end is closed (redisFree closes it): the
 * pump sees the end, sends close_notify, closes the socket and is joined. */
void rtls_stop(rtls *t);

#endif
