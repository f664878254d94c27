/* host/redis_tls.c - see redis_tls.h. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "redis_tls.h"

struct rtls_ctx {
    SSL_CTX *ctx;
};

struct rtls {
    SSL *ssl;
    int tcp;       /* the TLS side (non-blocking) */
    int app;       /* our end of the socketpair (non-blocking) */
    pthread_t th;
};

/* The newest OpenSSL error as text ("" when none), then clears the queue. */
static void ssl_reason(char *out, size_t n) {
    unsigned long e = ERR_peek_last_error();
    out[0] = '\0';
    if (e) ERR_error_string_n(e, out, n);
    ERR_clear_error();
}

rtls_ctx *rtls_ctx_new(const rtls_opts *o, char *err, size_t errlen) {
    char why[256];
    ERR_clear_error();
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    if (!c) {
        ssl_reason(why, sizeof why);
        snprintf(err, errlen, "TLS: cannot create a context: %s", why);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    /* The server is always verified: a TLS connection whose peer is not
     * checked would only look safe. */
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    /* SSL_write may take part of a buffer and the pump retries from a
     * moved pointer. */
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    int ok = o->ca_file ? SSL_CTX_load_verify_locations(c, o->ca_file, NULL) : SSL_CTX_set_default_verify_paths(c);
    if (ok != 1) {
        ssl_reason(why, sizeof why);
        snprintf(err, errlen, "pool.tls_ca_file: cannot load CA certificates from '%s': %s",
                 o->ca_file ? o->ca_file : "(the system's default paths)", why);
        SSL_CTX_free(c);
        return NULL;
    }
    if (o->key_file && !o->cert_file) {
        snprintf(err, errlen, "pool.tls_key_file: given without pool.tls_cert_file");
        SSL_CTX_free(c);
        return NULL;
    }
    if (o->cert_file) {
        const char *key = o->key_file ? o->key_file : o->cert_file;
        if (SSL_CTX_use_certificate_chain_file(c, o->cert_file) != 1) {
            ssl_reason(why, sizeof why);
            snprintf(err, errlen, "pool.tls_cert_file: cannot load '%s': %s", o->cert_file, why);
            SSL_CTX_free(c);
            return NULL;
        }
        if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(c) != 1) {
            ssl_reason(why, sizeof why);
            snprintf(err, errlen, "pool.tls_key_file: cannot use '%s' as the key of '%s': %s", key, o->cert_file,
                     why);
            SSL_CTX_free(c);
            return NULL;
        }
    }
    rtls_ctx *x = malloc(sizeof *x);
    if (!x) {
        SSL_CTX_free(c);
        snprintf(err, errlen, "TLS: out of memory");
        return NULL;
    }
    x->ctx = c;
    return x;
}

void rtls_ctx_free(rtls_ctx *ctx) {
    if (!ctx) return;
    SSL_CTX_free(ctx->ctx);
    free(ctx);
}

static int set_nonblocking(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int is_ip_literal(const char *name) {
    unsigned char buf[16];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* Copies bytes both ways until either side ends. One thread owns the SSL
 * object (OpenSSL objects must not be used from two threads at once), so
 * both directions are driven from one poll loop with non-blocking I/O. */
static void *pump(void *arg) {
    rtls *t = arg;
    char up[16384], down[16384];       /* app -> TLS, TLS -> app */
    size_t up_n = 0, up_off = 0, down_n = 0, down_off = 0;
    short w_wants = POLLOUT, r_wants = POLLIN; /* what SSL_write / SSL_read wait for */
    int app_closed = 0, tcp_hup = 0;
    for (;;) {
        int progress = 0;
        if (up_n == 0) {
            ssize_t n = recv(t->app, up, sizeof up, 0);
            if (n > 0) {
                up_n = (size_t)n;
                up_off = 0;
                progress = 1;
            } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                app_closed = 1; /* hiredis closed its end: the connection is over */
                break;
            }
        }
        if (up_off < up_n) {
            ERR_clear_error();
            int n = SSL_write(t->ssl, up + up_off, (int)(up_n - up_off));
            if (n > 0) {
                up_off += (size_t)n;
                if (up_off == up_n) up_n = up_off = 0;
                progress = 1;
            } else {
                int e = SSL_get_error(t->ssl, n);
                if (e == SSL_ERROR_WANT_READ) w_wants = POLLIN;
                else if (e == SSL_ERROR_WANT_WRITE) w_wants = POLLOUT;
                else break;
            }
        }
        if (down_n == 0) {
            ERR_clear_error();
            int n = SSL_read(t->ssl, down, sizeof down);
            if (n > 0) {
                down_n = (size_t)n;
                down_off = 0;
                progress = 1;
            } else {
                int e = SSL_get_error(t->ssl, n);
                if (e == SSL_ERROR_WANT_READ) r_wants = POLLIN;
                else if (e == SSL_ERROR_WANT_WRITE) r_wants = POLLOUT;
                else break; /* close_notify, the peer gone, or a TLS error */
            }
        }
        if (down_off < down_n) {
            ssize_t n = send(t->app, down + down_off, down_n - down_off, MSG_NOSIGNAL);
            if (n > 0) {
                down_off += (size_t)n;
                if (down_off == down_n) down_n = down_off = 0;
                progress = 1;
            } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                app_closed = 1;
                break;
            }
        }
        if (progress) continue;
        struct pollfd p[2] = {{t->tcp, 0, 0}, {t->app, 0, 0}};
        if (down_n == 0) p[0].events |= r_wants;
        if (up_off < up_n) p[0].events |= w_wants;
        if (tcp_hup && !(p[0].events & POLLIN)) p[0].fd = -1; /* a hang-up would wake poll forever */
        if (up_n == 0) p[1].events |= POLLIN;
        if (down_off < down_n) p[1].events |= POLLOUT;
        if (poll(p, 2, -1) < 0 && errno != EINTR) break;
        if (p[0].revents & (POLLHUP | POLLERR)) tcp_hup = 1;
        if ((p[1].revents & (POLLHUP | POLLERR)) && !(p[1].revents & POLLIN)) {
            app_closed = 1;
            break;
        }
    }
    if (app_closed) {
        ERR_clear_error();
        SSL_shutdown(t->ssl); /* close_notify, one try: the socket closes next */
    }
    ERR_clear_error();
    close(t->tcp);
    close(t->app); /* hiredis reads the end of the stream */
    t->tcp = t->app = -1;
    return NULL;
}

/* Why the handshake failed, in words an operator can act on. */
static void handshake_error(SSL *ssl, int e, char *err, size_t errlen, int *permanent) {
    long vr = SSL_get_verify_result(ssl);
    char why[256];
    if (vr != X509_V_OK) {
        *permanent = 1;
        snprintf(err, errlen, "TLS: the server's certificate was refused: certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
        ERR_clear_error();
        return;
    }
    ssl_reason(why, sizeof why);
    if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN || !why[0])
        snprintf(err, errlen, "TLS: the server closed the connection during the handshake (is the port a TLS port?)");
    else snprintf(err, errlen, "TLS handshake failed: %s", why);
}

rtls *rtls_start(rtls_ctx *ctx, const rtls_opts *o, int tcp_fd, const char *host, double timeout_s, int *app_fd,
                 int *permanent, char *err, size_t errlen) {
    *permanent = 0;
    *app_fd = -1;
    const char *name = o->server_name ? o->server_name : host;
    SSL *ssl = SSL_new(ctx->ctx);
    if (!ssl || set_nonblocking(tcp_fd) != 0 || SSL_set_fd(ssl, tcp_fd) != 1) {
        snprintf(err, errlen, "TLS: cannot set up the connection");
        SSL_free(ssl);
        close(tcp_fd);
        return NULL;
    }
    int ip = is_ip_literal(name);
    if (!ip) SSL_set_tlsext_host_name(ssl, name); /* SNI carries DNS names only */
    if (o->verify_server_name) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, name) != 1 : X509_VERIFY_PARAM_set1_host(vp, name, 0) != 1) {
            snprintf(err, errlen, "pool.tls_server_name: '%s' cannot be checked against a certificate", name);
            *permanent = 1;
            SSL_free(ssl);
            close(tcp_fd);
            return NULL;
        }
    }
    /* A server that resets the connection must not kill this process with
     * SIGPIPE: blocked here, and one raised meanwhile is consumed. */
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    double deadline = mono_s() + (timeout_s > 0 ? timeout_s : 5);
    int ok = 0;
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(ssl);
        if (r == 1) {
            ok = 1;
            break;
        }
        int e = SSL_get_error(ssl, r);
        short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
        if (!ev) {
            handshake_error(ssl, e, err, errlen, permanent);
            break;
        }
        double left = deadline - mono_s();
        struct pollfd p = {tcp_fd, ev, 0};
        if (left <= 0 || poll(&p, 1, (int)(left * 1e3) + 1) == 0) {
            snprintf(err, errlen, "TLS: the handshake did not finish within %.1f s", timeout_s);
            break;
        }
    }
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    int sp[2] = {-1, -1};
    if (ok && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
        snprintf(err, errlen, "TLS: socketpair: %s", strerror(errno));
        ok = 0;
    }
    rtls *t = ok ? calloc(1, sizeof *t) : NULL;
    if (ok && !t) snprintf(err, errlen, "TLS: out of memory");
    if (t) {
        t->ssl = ssl;
        t->tcp = tcp_fd;
        t->app = sp[1];
        set_nonblocking(sp[1]);
        /* The pump takes no signals: they belong to the threads that wait
         * for them (stop requests), and SIGPIPE must not end the process. */
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int rc = pthread_create(&t->th, NULL, pump, t);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc == 0) {
            *app_fd = sp[0];
            return t;
        }
        snprintf(err, errlen, "TLS: cannot start the pump thread");
        free(t);
    }
    if (sp[0] >= 0) close(sp[0]);
    if (sp[1] >= 0) close(sp[1]);
    SSL_free(ssl);
    close(tcp_fd);
    return NULL;
}

void rtls_stop(rtls *t) {
    if (!t) return;
    pthread_join(t->th, NULL);
    SSL_free(t->ssl);
    free(t);
}
