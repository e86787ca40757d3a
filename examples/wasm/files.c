/* files: reads a file from the rootfs, writes into a bind-mounted directory, and reports what
   the sandbox refuses: a write to a read-only mount and a path outside the container.
   usage: files IN OUT READONLY_OUT OUTSIDE */
#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: files IN OUT READONLY_OUT OUTSIDE\n"); return 64; }
    char buf[256] = {0};
    FILE *in = fopen(argv[1], "r");
    if (!in) { printf("read %s: %s\n", argv[1], strerror(errno)); return 1; }
    fgets(buf, sizeof buf, in);
    fclose(in);
    printf("read %s: %s", argv[1], buf);
    FILE *out = fopen(argv[2], "w");
    if (!out) { printf("write %s: %s\n", argv[2], strerror(errno)); return 2; }
    fprintf(out, "written by wasm: %s", buf);
    fclose(out);
    printf("wrote %s\n", argv[2]);
    FILE *ro = fopen(argv[3], "w");
    printf("write %s: %s\n", argv[3], ro ? "allowed" : strerror(errno));
    if (ro) fclose(ro);
    FILE *outside = fopen(argv[4], "r");
    printf("read %s: %s\n", argv[4], outside ? "allowed" : strerror(errno));
    if (outside) fclose(outside);
    return 0;
}
