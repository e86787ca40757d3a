/* pod: the wasm half of the pod example. A Linux container of the same pod writes IN into a
   volume both share; this module waits for it, then answers in OUT (written to OUT.tmp and
   renamed, so the reader never sees half a line). usage: pod IN OUT */
#include <stdio.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: pod IN OUT\n"); return 64; }
    struct timespec tick = {0, 50 * 1000 * 1000};
    FILE *in;
    while (!(in = fopen(argv[1], "r"))) nanosleep(&tick, NULL);
    char buf[256] = {0};
    fgets(buf, sizeof buf, in);
    fclose(in);
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[2]);
    FILE *out = fopen(tmp, "w");
    if (!out) { perror(tmp); return 2; }
    fprintf(out, "wasm read: %s", buf);
    fclose(out);
    if (rename(tmp, argv[2]) != 0) { perror(argv[2]); return 3; }
    printf("answered in %s\n", argv[2]);
    return 0;
}
