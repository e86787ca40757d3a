/* preopens: lists the directories WASI handed the module (fd, guest path), from fd 3 up, so a
   test can check the layout is exactly what the operator asked for; "none" when there is none. */
#include <stdio.h>
#include <stdlib.h>
#include <wasi/api.h>

int main(void) {
    int found = 0;
    for (__wasi_fd_t fd = 3; fd < 64; fd++) {
        __wasi_prestat_t pre;
        if (__wasi_fd_prestat_get(fd, &pre) != 0) break;
        char name[256] = {0};
        size_t len = pre.u.dir.pr_name_len < sizeof name - 1 ? pre.u.dir.pr_name_len : sizeof name - 1;
        if (__wasi_fd_prestat_dir_name(fd, (uint8_t *)name, len) != 0) break;
        printf("%u %s\n", fd, name);
        found++;
    }
    if (!found) printf("none\n");
    return 0;
}
