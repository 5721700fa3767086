/* molt-driver: runs a version built as a shared object (`molt run V.so ARGS`): the runtime
 * loads V.so as the first version and calls its main with ARGS (argv[0] is V.so's path). */
#include <stdio.h>

int molt_driver_main(const char *path, int argc, char **argv);

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: molt-driver VERSION.so [ARGS...] (use `molt run`)\n");
        return 2;
    }
    return molt_driver_main(argv[1], argc - 1, argv + 1);
}
