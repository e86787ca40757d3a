/* mrun-init: the init `mrun run --init` puts first in a container, as docker puts tini
 * (docker-init). A program run as PID 1 gets no default signal actions (a SIGTERM it has no
 * handler for does nothing) and inherits every orphan of the container, which it rarely reaps.
 * This init runs the command as its child, passes it every signal it can catch, reaps every
 * child that ends, and exits as the command did (128 + N for a command killed by signal N).
 *
 * Usage: mrun-init [--] COMMAND [ARG...]
 * Static (built by setup.py with -static): a container's image may have no C library at all.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void say(const char *what, const char *name) {
    fprintf(stderr, "mrun-init: %s%s%s: %s\n", what, name ? " " : "", name ? name : "", strerror(errno));
}

/* In the child, before the exec: the signals the init blocked are unblocked again, and with a
 * terminal on stdin the command gets its own process group in the foreground (a shell's job
 * control works, and ^C reaches the command's group as it would without an init). */
static void become_command(char **argv, const sigset_t *old) {
    if (isatty(STDIN_FILENO) && setpgid(0, 0) == 0) {
        signal(SIGTTOU, SIG_IGN);
        tcsetpgrp(STDIN_FILENO, getpgrp());
        signal(SIGTTOU, SIG_DFL);
    }
    sigprocmask(SIG_SETMASK, old, NULL);
    execvp(argv[0], argv);
    int code = errno == ENOENT ? 127 : 126;
    say("cannot run", argv[0]);
    _exit(code);
}

int main(int argc, char **argv) {
    int first = 1;
    if (first < argc && strcmp(argv[first], "--") == 0)
        first++;
    if (first >= argc) {
        fprintf(stderr, "usage: mrun-init [--] COMMAND [ARG...]\n");
        return 2;
    }
    if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)  /* not PID 1 (--pid host): orphans still come here */
        say("cannot become a subreaper", NULL);

    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);  /* every signal is taken below with sigtimedwait */

    pid_t child = fork();
    if (child < 0) {
        say("cannot fork", NULL);
        return 1;
    }
    if (child == 0)
        become_command(argv + first, &old);

    int status = 0;
    for (;;) {
        struct timespec tick = {1, 0};
        siginfo_t info;
        int sig = sigtimedwait(&all, &info, &tick);
        if (sig > 0 && sig != SIGCHLD) {
            if (kill(child, sig) != 0 && errno != ESRCH)
                say("cannot pass on a signal", NULL);
            continue;
        }
        /* SIGCHLD, or a second without a signal: reap whatever ended */
        for (;;) {
            int st;
            pid_t ended = waitpid(-1, &st, WNOHANG);
            if (ended <= 0)
                break;
            if (ended == child) {
                status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                child = 0;
            }
        }
        if (child == 0)
            return status;
    }
}
