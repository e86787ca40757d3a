/* grow: allocates and touches memory 1 MiB at a time, as a growing heap (Lua's, say) does, and
   says how far it got: "out of memory at N MiB" (exit 12) when malloc fails, or "grew N MiB". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *blocks[4096];

int main(int argc, char **argv) {
    int want = argc > 1 ? atoi(argv[1]) : 1024;
    long sum = 0;
    for (int i = 0; i < want && i < 4096; i++) {
        blocks[i] = malloc(1 << 20);
        if (!blocks[i]) { printf("out of memory at %d MiB\n", i); return 12; }
        memset(blocks[i], i + 1, 1 << 20);
        sum += blocks[i][i];
    }
    printf("grew %d MiB (%ld)\n", want, sum > 0 ? 1L : 0L);
    return 0;
}
