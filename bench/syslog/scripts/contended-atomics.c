// What a reference count shared by two cores costs on this machine: one or
// two threads incrementing / decrementing the same 25 counters (each on its
// own cache line), as a FlowFile's attribute names were counted where it was
// made and where it was dropped. Prints nanoseconds per atomic operation.
//
//   cc -O2 -pthread -o /tmp/contended-atomics contended-atomics.c
//   /tmp/contended-atomics 400000 1   # one thread: the line stays in one core
//   /tmp/contended-atomics 400000 2   # two threads: the lines travel
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define COUNTERS 25

static struct {
    _Alignas(64) atomic_long value;
} counters[COUNTERS];
static long rounds;

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *work(void *delta) {
    for (long r = 0; r < rounds; r++)
        for (int c = 0; c < COUNTERS; c++)
            atomic_fetch_add_explicit(&counters[c].value, (long)delta, memory_order_relaxed);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s ROUNDS THREADS(1|2)\n", argv[0]);
        return 2;
    }
    rounds = atol(argv[1]);
    int threads = atoi(argv[2]) == 2 ? 2 : 1;
    pthread_t t[2];
    double start = seconds();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, work, (void *)(long)(i ? -1 : 1));
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double ns = (seconds() - start) * 1e9 / ((double)rounds * COUNTERS);
    printf("%d thread(s): %.1f ns per atomic operation per thread\n", threads, ns);
    return 0;
}
