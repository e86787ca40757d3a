/* The native launcher for `mrun` and `containerd-shim-mrun-v2`: a client of the warm template
 * (mrun.warm) that starts no interpreter.
 *
 * Why it exists: a Python process costs 8-10 ms here before its first line runs, and containerd
 * runs the shim binary twice per container (start, delete), podman and containerd's runc shim run
 * `mrun` three times (create, start, delete). The template has paid every import once; this
 * program hands it the call as mrun.warm.client does (argv, environment, descriptors, working
 * directory, umask), relays signals and returns the child's status. It decides nothing about the
 * work: the template says whether it serves the call. Whenever it does not (none running, stale,
 * a verb that must stay in the caller such as `create`, a caller it will not serve, any error
 * before a child took the work), this program execs the Python launcher beside it
 * (COLD_SCRIPT), which runs the call exactly as it always has.
 *
 * Built by setup.py twice: KIND "cli" (mrun, falls back to mrun-python) and KIND "shim"
 * (containerd-shim-mrun-v2, falls back to containerd-shim-mrun-v2-python).
 *
 * The template is found by a link its Python side makes: native-<key>.sock in the warm
 * directory, key = crc32 of this binary's directory, the environment variables that decide
 * how Python would start and the caller's context the template compares (routing_crc; the
 * template checks all of it again, the key only picks the link). When
 * the link is missing or dead, the fallback is told (MRUN_LAUNCHER=link:<key>) to make it and
 * start a template; once something answered there (a template that said no, or an exchange that
 * failed), the fallback is told not to ask again (MRUN_LAUNCHER=asked): it runs the call, and
 * starts no template. The Python launcher removes the variable before anything else.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef LAUNCHER_KIND
#define LAUNCHER_KIND "cli"
#endif
#ifndef COLD_SCRIPT
#define COLD_SCRIPT "mrun-python"
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define PR_GET_MDWE_ 66 /* linux/prctl.h since 6.3; older headers lack it, older kernels say EINVAL */
#define MEMPOLICY_WORDS 16 /* syscalls.MEMPOLICY_WORDS: nodes 0-1023 */
#define DEFAULT_DIR "/run/mrun/.warm"
#define FIRST_ANSWER_MS 5000 /* client.FIRST_ANSWER_TIMEOUT */
#define EXIT_WAIT_MS 2000    /* client.EXIT_WAIT */
#define MAX_FDS 250          /* client.MAX_FDS */
#define MAX_MESSAGE (1 << 20)

extern char **environ;

static char **call_argv;
static char cold_path[PATH_MAX];
static char self_dir[PATH_MAX];
static off_t stdin_start = -1; /* where a fallback starts stdin over (keep_stdin), or -1: never */

/* ---- falling back ------------------------------------------------------------------------ */

/* The signals passed on to the child that does the work (await_child). From the request on they
 * are held (blocked) until the relay is in place: one that came between ended this process by its
 * default action, lost to the work, and the child, which dies with its caller until its container
 * runs, was cut off wherever it was. */
static const int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};

static sigset_t mask_before_hold; /* the caller's: what a signal it blocked itself stays, after */
static int holding = 0;

static void hold_forwarded(void) {
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++)
        sigaddset(&set, forwarded[i]);
    sigprocmask(SIG_BLOCK, &set, &mask_before_hold);
    holding = 1;
}

/* The mask as the caller left it (``and_sigint``: with SIGINT blocked too); what came since the
 * hold is delivered now. */
static void let_go_of_forwarded(int and_sigint) {
    if (!holding)
        return;
    sigset_t mask = mask_before_hold;
    if (and_sigint)
        sigaddset(&mask, SIGINT);
    sigprocmask(SIG_SETMASK, &mask, NULL);
    holding = 0;
}

__attribute__((noreturn)) static void cold(const char *launcher, const char *why) {
    if (why != NULL && getenv("MRUN_WARM_DEBUG") != NULL)
        fprintf(stderr, "mrun: warm: cold because %s\n", why);
    if (launcher != NULL)
        setenv("MRUN_LAUNCHER", launcher, 1);
    if (stdin_start >= 0)
        lseek(0, stdin_start, SEEK_SET);
    /* ^C while Python starts, before the Python launcher's first line, made the interpreter print
       "Fatal Python error" or a traceback: held until that line lets it end the process quietly. */
    sigset_t held;
    sigemptyset(&held);
    sigaddset(&held, SIGINT);
    sigprocmask(SIG_BLOCK, &held, NULL);
    /* the others, held since the request, come now: as they would have before it, to a process
     * whose work no child took */
    let_go_of_forwarded(1);
    char *argv0 = call_argv[0];
    call_argv[0] = cold_path;
    execv(cold_path, call_argv);
    sigprocmask(SIG_UNBLOCK, &held, NULL);
    int failed = errno;
    call_argv[0] = argv0;
    /* the hint only where it helps: a missing launcher (a copy of this program elsewhere), not one
       this caller may not run (a user the Python installation's directories shut out) */
    fprintf(stderr, "%s: cannot run %s: %s%s\n", LAUNCHER_KIND[0] == 's' ? "containerd-shim-mrun-v2" : "mrun",
            cold_path, strerror(failed),
            failed == ENOENT ? " (link this program where it is wanted; a copy does not find its Python launcher)"
                             : "");
    _exit(127);
}

/* ---- a growing buffer and JSON out --------------------------------------------------------- */

struct buf {
    char *data;
    size_t len, cap;
};

static void put(struct buf *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (grown == NULL)
            cold("asked", "out of memory");
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }

static void put_u(struct buf *b, unsigned cp) {
    char esc[8];
    snprintf(esc, sizeof esc, "\\u%04x", cp);
    put(b, esc, 6);
}

/* Length of the valid UTF-8 sequence at s (as Python's decoder accepts it), or 0. */
static size_t utf8_len(const unsigned char *s, size_t left) {
    unsigned c = s[0];
    size_t n;
    unsigned cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

/* A JSON string of bytes as Python sees them. "fs": the filesystem encoding (UTF-8, with
 * surrogateescape: an undecodable byte is U+DC80+byte), as for argv and the environment.
 * Otherwise latin-1, as client.py decodes /proc/self/cmdline and comm. */
static void put_str(struct buf *b, const char *s, size_t n, int fs) {
    const unsigned char *u = (const unsigned char *)s;
    put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put(b, esc, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            put_u(b, c);
            i++;
        } else if (c < 0x80) {
            put(b, &u[i], 1);
            i++;
        } else if (!fs) {
            put_u(b, c);
            i++;
        } else {
            size_t len = utf8_len(&u[i], n - i);
            if (len) {
                put(b, &u[i], len);
                i += len;
            } else {
                put_u(b, 0xdc00 + c);
                i++;
            }
        }
    }
    put(b, "\"", 1);
}

static void put_cstr(struct buf *b, const char *s, int fs) { put_str(b, s, strlen(s), fs); }

static void put_int(struct buf *b, long v) {
    char num[32];
    snprintf(num, sizeof num, "%ld", v);
    puts_(b, num);
}

/* ---- JSON in: the template's answers are flat objects --------------------------------------- */

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static const char *skip_string(const char *p, const char *end) {
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

static const char *skip_value(const char *p, const char *end) {
    if (p >= end)
        return NULL;
    if (*p == '"')
        return skip_string(p, end);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < end) {
            if (*p == '"') {
                p = skip_string(p, end);
                if (p == NULL)
                    return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0)
                    return p + 1;
            }
            p++;
        }
        return NULL;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ' ' && *p != '\n')
        p++;
    return p;
}

/* Where the value of top-level key `key` starts, or NULL. */
static const char *json_get(const char *msg, size_t n, const char *key) {
    const char *p = msg, *end = msg + n;
    size_t klen = strlen(key);
    p = skip_ws(p, end);
    if (p >= end || *p != '{')
        return NULL;
    p++;
    while (1) {
        p = skip_ws(p, end);
        if (p >= end || *p != '"')
            return NULL;
        const char *k = p + 1, *kend = skip_string(p, end);
        if (kend == NULL)
            return NULL;
        p = skip_ws(kend, end);
        if (p >= end || *p != ':')
            return NULL;
        p = skip_ws(p + 1, end);
        if ((size_t)(kend - 1 - k) == klen && memcmp(k, key, klen) == 0)
            return p;
        p = skip_value(p, end);
        if (p == NULL)
            return NULL;
        p = skip_ws(p, end);
        if (p >= end || *p != ',')
            return NULL;
        p++;
    }
}

/* A string value as text, for a message to a person: escapes undone, \u beyond ASCII as '?'. */
static char *json_text(const char *v, const char *end) {
    if (v == NULL || v >= end || *v != '"')
        return NULL;
    char *text = malloc((size_t)(end - v) + 1), *t = text;
    if (text == NULL)
        return NULL;
    for (v++; v < end && *v != '"'; v++) {
        if (*v != '\\' || v + 1 >= end) {
            *t++ = *v;
            continue;
        }
        v++;
        if (*v == 'u' && end - v > 4) {
            unsigned cp = (unsigned)strtoul((char[5]){v[1], v[2], v[3], v[4], 0}, NULL, 16);
            *t++ = cp < 0x80 ? (char)cp : '?';
            v += 4;
        } else {
            *t++ = *v == 'n' ? '\n' : *v == 't' ? '\t' : *v;
        }
    }
    *t = 0;
    return text;
}

static int json_int(const char *msg, size_t n, const char *key, long *out) {
    const char *v = json_get(msg, n, key);
    if (v == NULL || !(*v == '-' || (*v >= '0' && *v <= '9')))
        return 0;
    char *stop;
    *out = strtol(v, &stop, 10);
    return stop != v;
}

static int json_is(const char *msg, size_t n, const char *key, const char *literal) {
    const char *v = json_get(msg, n, key);
    return v != NULL && (size_t)(msg + n - v) >= strlen(literal) && memcmp(v, literal, strlen(literal)) == 0;
}

/* ---- the connection ------------------------------------------------------------------------- */

static int wait_readable(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    for (;;) {
        int r = poll(&p, 1, ms);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return -1;
    }
}

static int read_full(int fd, char *p, size_t n, long deadline_ms) {
    while (n > 0) {
        if (deadline_ms >= 0 && wait_readable(fd, (int)deadline_ms) <= 0)
            return -1;
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* One length-prefixed message into *out (NUL-terminated); its length, or -1 at EOF or error. */
static long recv_message(int sock, char **out, long deadline_ms) {
    unsigned char head[4];
    if (read_full(sock, (char *)head, 4, deadline_ms) < 0)
        return -1;
    size_t n = ((size_t)head[0] << 24) | ((size_t)head[1] << 16) | ((size_t)head[2] << 8) | head[3];
    if (n > MAX_MESSAGE)
        return -1;
    char *body = malloc(n + 1);
    if (body == NULL || read_full(sock, body, n, deadline_ms) < 0) {
        free(body);
        return -1;
    }
    body[n] = 0;
    *out = body;
    return (long)n;
}

/* All of it, to a socket (MSG_NOSIGNAL: a template gone mid-request is a cold start, not a death
 * by SIGPIPE) or to a file (the kept stdin's memfd). */
static int write_full(int fd, const char *p, size_t n) {
    int sock = 1;
    while (n > 0) {
        ssize_t w = sock ? send(fd, p, n, MSG_NOSIGNAL) : write(fd, p, n);
        if (w < 0 && errno == ENOTSOCK && sock) {
            sock = 0;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_fds(int sock, const int *fds, int count) {
    char byte = 'F';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char space[CMSG_SPACE(sizeof(int) * (MAX_FDS + 1))];
        struct cmsghdr align;
    } control;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (count > 0) {
        m.msg_control = control.space;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * count);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * count);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * count);
    }
    for (;;) {
        ssize_t r = sendmsg(sock, &m, MSG_NOSIGNAL);
        if (r == 1)
            return 0;
        if (r < 0 && errno == EINTR)
            continue;
        return -1;
    }
}

/* ---- what the request says ------------------------------------------------------------------ */

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Variables client.identity() compares: PYTHON*, LC_*, LANG; sorted, as "NAME=VALUE". */
static int identity_env(char **out, int room) {
    int n = 0;
    for (char **e = environ; *e && n < room; e++)
        if (strncmp(*e, "PYTHON", 6) == 0 || strncmp(*e, "LC_", 3) == 0 || strncmp(*e, "LANG=", 5) == 0)
            out[n++] = *e;
    qsort(out, (size_t)n, sizeof *out, by_name);
    return n;
}

static uint32_t crc32_update(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = data;
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

static int read_file(const char *path, struct buf *b) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char chunk[4096];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof chunk)) > 0)
        put(b, chunk, (size_t)r);
    close(fd);
    return r < 0 ? -1 : 0;
}

/* 0, 1, 2 and every descriptor an exec'd process would inherit, ascending. */
static int inherited_fds(int *fds, int room, int exclude) {
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0, self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        int fd = atoi(e->d_name);
        if (fd == self || fd == exclude)
            continue;
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0 || (fd > 2 && (flags & FD_CLOEXEC)))
            continue;
        if (n == room) {
            closedir(d);
            return -1;
        }
        fds[n++] = fd;
    }
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
            int t = fds[j];
            fds[j] = fds[j - 1];
            fds[j - 1] = t;
        }
    return n;
}

/* "NAME=VALUE" entries as a JSON object, as Python's os.environ has them (one without a name,
 * or without "=", is not a variable). */
static void put_env(struct buf *b, char *const *vars, int n) {
    int first = 1;
    put(b, "{", 1);
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(vars[i], '=');
        if (eq == NULL || eq == vars[i])
            continue;
        if (!first)
            puts_(b, ", ");
        first = 0;
        put_str(b, vars[i], (size_t)(eq - vars[i]), 1);
        puts_(b, ": ");
        put_cstr(b, eq + 1, 1);
    }
    put(b, "}", 1);
}

/* Kept by fork and exec, not shown in /proc: the template compares them with its own
 * (mrun.warm.peer.kept_state says why, and in what order), as a JSON list. -1: the kernel lacks it. */
static void put_kept(struct buf *b) {
    puts_(b, "[");
    put_int(b, (long)prctl(PR_GET_SECUREBITS, 0L, 0L, 0L, 0L));
    puts_(b, ", ");
    put_int(b, (long)prctl(PR_GET_MDWE_, 0L, 0L, 0L, 0L));
    int policy = 0;
    unsigned long nodes[MEMPOLICY_WORDS] = {0};
    if (syscall(SYS_get_mempolicy, &policy, nodes, (unsigned long)MEMPOLICY_WORDS * 64, NULL, 0UL) != 0) {
        puts_(b, ", -1");
    } else {
        puts_(b, ", ");
        put_int(b, (long)policy);
        for (int i = 0; i < MEMPOLICY_WORDS; i++) {
            char word[32];
            snprintf(word, sizeof word, ", %lu", nodes[i]);
            puts_(b, word);
        }
    }
    puts_(b, "]");
}

/* The /proc/self/status lines mrun.warm.peer.context reads, but Seccomp (peer.routing says why). */
static const char *const routed_status[] = {"Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                                            "NoNewPrivs", "THP_enabled", "Speculation_Store_Bypass",
                                            "SpeculationIndirectBranch", NULL};
static const char *const routed_namespaces[] = {"mnt", "pid", "net", "ipc", "uts", "user", "cgroup", "time", NULL};

/* The key's part that picks a template per caller context, as mrun.warm.peer.routing does for the
 * Python launchers (the bytes differ; each side only needs one name per context): the template
 * compares all of it with its own, so callers that differ get a template each, not the first
 * one's refusal. Anything unreadable adds nothing: the template still decides. */
static uint32_t routing_crc(uint32_t crc) {
    struct buf b = {0};
    if (read_file("/proc/self/status", &b) == 0 && b.data != NULL) {
        const char *p = b.data, *end = b.data + b.len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (nl == NULL)
                nl = end;
            const char *colon = memchr(p, ':', (size_t)(nl - p));
            size_t key = colon != NULL ? (size_t)(colon - p) : 0;
            for (int i = 0; key > 0 && routed_status[i] != NULL; i++)
                if (strlen(routed_status[i]) == key && memcmp(p, routed_status[i], key) == 0) {
                    crc = crc32_update(crc, p, (size_t)(nl - p) + 1);
                    break;
                }
            p = nl + 1;
        }
    }
    b.len = 0;
    for (int i = 0; routed_namespaces[i] != NULL; i++) {
        char path[64], target[128];
        snprintf(path, sizeof path, "/proc/self/ns/%s", routed_namespaces[i]);
        ssize_t n = readlink(path, target, sizeof target);
        if (n > 0)
            crc = crc32_update(crc, target, (size_t)n);
        crc = crc32_update(crc, "\n", 1);
    }
    struct stat root;
    if (stat("/proc/self/root", &root) == 0) {
        char where[64];
        snprintf(where, sizeof where, "%lu:%lu\n", (unsigned long)root.st_dev, (unsigned long)root.st_ino);
        crc = crc32_update(crc, where, strlen(where));
    }
    if (read_file("/proc/self/attr/current", &b) == 0 && b.data != NULL)
        crc = crc32_update(crc, b.data, b.len);
    b.len = 0;
    put_kept(&b);
    crc = crc32_update(crc, b.data, b.len);
    free(b.data);
    return crc;
}

static void build_request(struct buf *b, int argc, const int *fds, int nfds, char **ident, int nident) {
    puts_(b, "{\"kind\": \"" LAUNCHER_KIND "\", \"argv\": [");
    put_cstr(b, cold_path, 1); /* sys.argv[0] as the Python launcher would have it */
    for (int i = 1; i < argc; i++) {
        puts_(b, ", ");
        put_cstr(b, call_argv[i], 1);
    }
    puts_(b, "], \"cmdline\": ");
    struct buf raw = {0};
    if (read_file("/proc/self/cmdline", &raw) < 0)
        cold("asked", "/proc/self/cmdline is unreadable");
    put_str(b, raw.data ? raw.data : "", raw.len, 0);
    raw.len = 0;
    puts_(b, ", \"comm\": ");
    if (read_file("/proc/self/comm", &raw) < 0)
        cold("asked", "/proc/self/comm is unreadable");
    while (raw.len > 0 && raw.data[raw.len - 1] == '\n')
        raw.len--;
    put_str(b, raw.data ? raw.data : "", raw.len, 0);
    free(raw.data);
    puts_(b, ", \"env\": ");
    int nenv = 0;
    while (environ[nenv])
        nenv++;
    put_env(b, environ, nenv);
    puts_(b, ", \"script_dir\": ");
    put_cstr(b, self_dir, 1);
    mode_t mask = umask(0);
    umask(mask);
    puts_(b, ", \"umask\": ");
    put_int(b, (long)mask);
    puts_(b, ", \"kept\": ");
    put_kept(b);
    puts_(b, ", \"fds\": [");
    for (int i = 0; i < nfds; i++) {
        if (i)
            puts_(b, ", ");
        put_int(b, fds[i]);
    }
    puts_(b, "], \"native\": {\"dir\": ");
    put_cstr(b, self_dir, 1);
    puts_(b, ", \"env\": ");
    put_env(b, ident, nident);
    puts_(b, "}}");
}

/* ---- after the hand-over: relay signals, wait, return the status ----------------------------- */

static volatile sig_atomic_t child_pidfd = -1;
static volatile sig_atomic_t last_fatal = 0;

static void relay(int sig) {
    int saved = errno;
    if (sig != SIGWINCH && sig != SIGCONT)
        last_fatal = sig;
    if (child_pidfd >= 0)
        syscall(SYS_pidfd_send_signal, (int)child_pidfd, sig, NULL, 0);
    errno = saved;
}

static void interrupted_before_hand_over(int sig) {
    (void)sig;
    _exit(130); /* what the Python launcher answers to ^C before a child took the work */
}

__attribute__((noreturn)) static void await_child(int sock, long pid) {
    int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    child_pidfd = pidfd;
    struct sigaction sa = {.sa_handler = relay, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++)
        sigaction(forwarded[i], &sa, NULL);
    let_go_of_forwarded(0); /* what came since the request is passed on now */
    char *msg = NULL;
    long n = recv_message(sock, &msg, -1);
    long code;
    int have = n >= 0 && json_int(msg, (size_t)n, "exit", &code);
    /* and gone, as a process that ran the call itself is when it returns; unless it carries on
     * (a served shim start that became the daemon) */
    if (pidfd >= 0 && !(have && json_is(msg, (size_t)n, "detached", "true")))
        wait_readable(pidfd, EXIT_WAIT_MS);
    if (have) {
        fflush(NULL);
        _exit((int)(code & 0xff));
    }
    if (last_fatal) { /* it died of a signal we passed on, as we would have */
        int sig = last_fatal;
        signal(sig, SIG_DFL);
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, sig);
        sigprocmask(SIG_UNBLOCK, &one, NULL);
        kill(getpid(), sig);
    }
    fprintf(stderr, "mrun: the process that ran this command ended without an exit status\n");
    _exit(255);
}

/* ---- what never leaves its caller -------------------------------------------------------------- */

/* mrun's global flags that take no value (mrun.cli.commands.GLOBAL_FLAGS; a test keeps them equal). */
static const char *const boolean_globals[] = {"--debug", "--systemd-cgroup", NULL};

/* `mrun create`: the template would say no (the init must be its caller's descendant), so it is
 * not asked. Read as mrun.cli.fastparse reads argv; a flag misread only means the template is
 * asked after all, and it decides. */
static int is_create(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || strcmp(a, "-") == 0)
            return strcmp(a, "create") == 0;
        int boolean = strchr(a, '=') != NULL;
        for (const char *const *b = boolean_globals; *b && !boolean; b++)
            boolean = strcmp(a, *b) == 0;
        if (!boolean)
            i++; /* its value */
    }
    return 0;
}

/* ---- a shim start's stdin ------------------------------------------------------------------- */

/* The shim's flags that take no value (mrun.shims.main.BOOLEAN_FLAGS; a test keeps them equal). */
static const char *const boolean_shim_flags[] = {"debug", "v", "info", NULL};

/* The action of a `containerd-shim-mrun-v2` call, read as mrun.shims.main.parse reads argv (Go's
 * flag syntax: the last word that is not a flag or a flag's value). */
static const char *shim_action(int argc, char **argv) {
    const char *action = "";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            action = a;
            continue;
        }
        while (*a == '-')
            a++;
        int boolean = strchr(a, '=') != NULL;
        for (const char *const *b = boolean_shim_flags; *b && !boolean; b++)
            boolean = strcmp(a, *b) == 0;
        if (!boolean)
            i++; /* its value */
    }
    return action;
}

/* A shim `start`'s stdin carries containerd 2.x's BootstrapParams, written once. The template
 * reads them (to answer a pod's later starts itself); should it die after that, the cold start
 * this program falls back to would find stdin empty, answer as for containerd 1.6 and make its
 * socket where containerd does not look. So a pipe's content is read here first, to its end as
 * a cold start reads it, into a memfd that becomes descriptor 0: seekable, so every fallback
 * starts it over (cold()). A seekable stdin is only remembered; a terminal is left alone. */
static void keep_stdin(void) {
    if (isatty(0))
        return;
    off_t at = lseek(0, 0, SEEK_CUR);
    if (at >= 0 || errno != ESPIPE) { /* seekable, or closed: nothing is lost by reading it */
        stdin_start = at;
        return;
    }
    int mem = memfd_create("stdin", MFD_CLOEXEC);
    if (mem < 0)
        return;
    char chunk[65536];
    size_t kept = 0;
    for (;;) {
        ssize_t r = read(0, chunk, sizeof chunk);
        if (r == 0)
            break;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN) { /* a non-blocking pipe: wait, as a blocking read would */
            struct pollfd in = {.fd = 0, .events = POLLIN};
            poll(&in, 1, -1);
            continue;
        }
        if (r < 0 || write_full(mem, chunk, (size_t)r) < 0) {
            if (kept == 0) { /* nothing taken: the call reads stdin itself */
                close(mem);
                return;
            }
            break; /* what was read is kept; a cold start's read would have failed here too */
        }
        kept += (size_t)r;
    }
    if (dup2(mem, 0) < 0) {
        close(mem);
        return;
    }
    close(mem);
    lseek(0, 0, SEEK_SET);
    stdin_start = 0;
}

/* ---- main ----------------------------------------------------------------------------------- */

/* A caller that closed its stdin, stdout or stderr (a daemon's `mrun run -d ... <&- >&- 2>&-`):
 * /dev/null in its place, as Go's runtime gives runc. Else the first files mrun opens take those
 * numbers: a message for stderr lands in a container's state file, and a container is handed a
 * file of mrun's as its stdio. */
static void open_closed_standard_fds(void) {
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int null = open("/dev/null", O_RDWR); /* the lowest free number: this one */
        if (null > fd) {
            dup2(null, fd);
            close(null);
        }
    }
}

int main(int argc, char **argv) {
    open_closed_standard_fds();
    call_argv = argv;
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) {
        fprintf(stderr, "mrun: /proc/self/exe: %s\n", strerror(errno));
        return 127;
    }
    exe[len] = 0;
    char *slash = strrchr(exe, '/');
    *slash = 0;
    snprintf(self_dir, sizeof self_dir, "%s", exe[0] ? exe : "/");
    if ((size_t)snprintf(cold_path, sizeof cold_path, "%s/" COLD_SCRIPT, exe) >= sizeof cold_path) {
        fprintf(stderr, "mrun: the launcher's path is too long\n");
        return 127;
    }

    const char *warm = getenv("MRUN_WARM");
    if ((warm != NULL && strcmp(warm, "0") == 0) || geteuid() != 0)
        cold(NULL, NULL);
    if (strcmp(LAUNCHER_KIND, "cli") == 0 && is_create(argc, argv))
        cold("asked", NULL);
    if (strcmp(LAUNCHER_KIND, "shim") == 0 && strcmp(shim_action(argc, argv), "start") == 0)
        keep_stdin();

    char *ident[256];
    int nident = identity_env(ident, 256);
    uint32_t crc = crc32_update(0, self_dir, strlen(self_dir) + 1);
    for (int i = 0; i < nident; i++)
        crc = crc32_update(crc, ident[i], strlen(ident[i]) + 1);
    crc = routing_crc(crc);
    char link_hint[32];
    snprintf(link_hint, sizeof link_hint, "link:%08x", crc);

    const char *dir = getenv("MRUN_WARM_DIR");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int room = snprintf(addr.sun_path, sizeof addr.sun_path, "%s/native-%08x.sock", dir && *dir ? dir : DEFAULT_DIR, crc);
    if (room < 0 || (size_t)room >= sizeof addr.sun_path)
        cold(NULL, "the warm directory's path is too long for a socket");
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        cold(NULL, "no socket");
    if (connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0)
        cold((errno == ENOENT || errno == ECONNREFUSED) ? link_hint : NULL, "no template answers");
    /* Our environment and descriptors go to root's template only: a socket someone else serves
     * there (a warm directory others may write to) gets nothing. */
    struct ucred peer;
    socklen_t peer_len = sizeof peer;
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &peer, &peer_len) < 0 || peer.uid != 0)
        cold("asked", "the template's socket is not served by root");

    struct sigaction early = {.sa_handler = interrupted_before_hand_over};
    sigemptyset(&early.sa_mask);
    sigaction(SIGINT, &early, NULL);

    int fds[MAX_FDS + 1];
    int nfds = inherited_fds(fds, MAX_FDS, sock);
    if (nfds < 0)
        cold("asked", "too many descriptors to pass");
    /* Where we are, as a descriptor: a path can come to name another directory (client._ask). */
    int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwd < 0)
        cold("asked", "the working directory cannot be opened");

    struct buf req = {0};
    put(&req, "\0\0\0\0", 4);
    build_request(&req, argc, fds, nfds, ident, nident);
    size_t body = req.len - 4;
    req.data[0] = (char)(body >> 24);
    req.data[1] = (char)(body >> 16);
    req.data[2] = (char)(body >> 8);
    req.data[3] = (char)body;
    fflush(NULL);
    hold_forwarded(); /* until the relay is in place (await_child), or no child took the work */
    if (write_full(sock, req.data, req.len) < 0)
        cold("asked", "the template closed the connection");
    free(req.data);

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int step = 0; step < 2; step++) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = FIRST_ANSWER_MS - ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
        char *msg = NULL;
        long n = left > 0 ? recv_message(sock, &msg, left) : -1;
        if (n < 0)
            cold("asked", "the template did not answer in time");
        long pid;
        if (step == 0 && json_is(msg, (size_t)n, "send", "\"fds\"")) {
            fds[nfds] = cwd;
            if (send_fds(sock, fds, nfds + 1) < 0)
                cold("asked", "the template closed the connection");
            close(cwd);
            free(msg);
            continue;
        }
        if (json_int(msg, (size_t)n, "pid", &pid) && pid > 0)
            await_child(sock, pid);
        long code;
        if (step == 1 && json_int(msg, (size_t)n, "exit", &code)) { /* answered by the template itself */
            fflush(NULL);
            _exit((int)(code & 0xff));
        }
        char *why = json_text(json_get(msg, (size_t)n, "cold"), msg + n);
        if (why == NULL)
            why = json_text(json_get(msg, (size_t)n, "error"), msg + n);
        cold(json_is(msg, (size_t)n, "stale", "true") ? link_hint : "asked", why ? why : msg);
    }
    cold("asked", "the template answered out of turn");
}
