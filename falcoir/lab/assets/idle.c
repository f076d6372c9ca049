/* The lab's idle entrypoint for distroless containers: waits for SIGTERM/SIGINT, exits 0. */
#include <signal.h>
#include <unistd.h>

static volatile sig_atomic_t done = 0;
static void on_signal(int sig) { (void)sig; done = 1; }

int main(void) {
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!done) pause();
    return 0;
}
