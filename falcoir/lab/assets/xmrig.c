/*
 * xmrig, the falcoir lab's harmless stand-in for the Monero miner of the same name.
 *
 * It mines nothing and burns no CPU. It parses xmrig's own flags
 * (-o host:port -u user -p pass), resolves the pool's name (the lab maps
 * pool.example.com to its local pool through the container's /etc/hosts), opens one
 * TCP connection, logs in with the stratum JSON-RPC "login" xmrig sends, then sends a
 * "keepalived" every 0.5 s and a "submit" every 2 s on the same connection, reading
 * what the pool answers. If the connection breaks it reconnects once a second, as a
 * real miner does. SIGTERM or SIGINT: exits 0.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop = 0;
static void on_signal(int sig) { (void)sig; stop = 1; }

static void say(const char *msg) {
    time_t now = time(NULL);
    struct tm tm;
    char ts[32];
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
    printf("[%s] %s\n", ts, msg);
    fflush(stdout);
}

static int connect_pool(const char *host, const char *port) {
    struct addrinfo hints, *res, *ai;
    int fd = -1;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0) return -1;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int send_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *url = NULL, *user = "x", *pass = "x";
    char host[256], port[16], line[1024], msg[512];
    int opt;
    unsigned long id = 1;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    while ((opt = getopt(argc, argv, "o:u:p:k")) != -1) {
        if (opt == 'o') url = optarg;
        else if (opt == 'u') user = optarg;
        else if (opt == 'p') pass = optarg;
    }
    if (url == NULL) {
        fprintf(stderr, "xmrig: no pool given (-o host:port)\n");
        return 1;
    }
    if (strncmp(url, "stratum+tcp://", 14) == 0) url += 14;
    const char *colon = strrchr(url, ':');
    if (colon == NULL || (size_t)(colon - url) >= sizeof host) {
        fprintf(stderr, "xmrig: bad pool address %s\n", url);
        return 1;
    }
    memcpy(host, url, (size_t)(colon - url));
    host[colon - url] = '\0';
    snprintf(port, sizeof port, "%s", colon + 1);
    snprintf(msg, sizeof msg, " * POOL #1      %s:%s (falcoir lab stand-in, mines nothing)", host, port);
    say(msg);
    while (!stop) {
        int fd = connect_pool(host, port);
        if (fd < 0) {
            snprintf(msg, sizeof msg, "[%s:%s] connect error", host, port);
            say(msg);
            sleep(1);
            continue;
        }
        snprintf(msg, sizeof msg, "[%s:%s] connected", host, port);
        say(msg);
        int n = snprintf(line, sizeof line,
                         "{\"id\":%lu,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":"
                         "{\"login\":\"%s\",\"pass\":\"%s\",\"agent\":\"XMRig/6.21.0 (falcoir-lab)\","
                         "\"algo\":[\"rx/0\"]}}\n",
                         id++, user, pass);
        int ok = n > 0 && send_all(fd, line, (size_t)n) == 0;
        unsigned long ticks = 0;
        while (ok && !stop) {
            struct pollfd pfd = {fd, POLLIN, 0};
            int r = poll(&pfd, 1, 500);
            if (r > 0) {
                char buf[4096];
                ssize_t got = recv(fd, buf, sizeof buf, 0);
                if (got <= 0) break;
                continue;
            }
            if (r < 0 && errno != EINTR) break;
            ticks++;
            if (ticks % 4 == 0)
                n = snprintf(line, sizeof line,
                             "{\"id\":%lu,\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":"
                             "{\"id\":\"lab\",\"job_id\":\"1\",\"nonce\":\"%08lx\",\"result\":\"00\"}}\n",
                             id++, ticks);
            else
                n = snprintf(line, sizeof line,
                             "{\"id\":%lu,\"jsonrpc\":\"2.0\",\"method\":\"keepalived\",\"params\":"
                             "{\"id\":\"lab\"}}\n",
                             id++);
            ok = n > 0 && send_all(fd, line, (size_t)n) == 0;
        }
        close(fd);
        if (!stop) {
            snprintf(msg, sizeof msg, "[%s:%s] connection lost, retrying", host, port);
            say(msg);
            sleep(1);
        }
    }
    return 0;
}
