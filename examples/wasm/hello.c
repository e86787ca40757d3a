/* hello: prints its argv, an environment variable and a file read by a relative path (resolved
   in the container's cwd), then exits with the code given as argv[1]. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char cwd[256];
    printf("hello from wasm32-wasi:");
    for (int i = 0; i < argc; i++) printf(" [%s]", argv[i]);
    printf("\nGREETING=%s\n", getenv("GREETING") ? getenv("GREETING") : "(unset)");
    printf("cwd=%s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
    FILE *f = fopen("data.txt", "r");
    if (f) { char b[64] = {0}; fgets(b, sizeof b, f); printf("relative read: %s", b); fclose(f); }
    return argc > 1 ? atoi(argv[1]) : 0;
}
