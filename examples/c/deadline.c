/*
 * Deadlines and cancellation from C: a poll() bounded by a deadline, and a cancel token
 * that wakes a poll() early through a pipe when the attempt's own deadline passes.
 *
 * Build: gcc deadline.c $(pkg-config --cflags --libs seawall) -o deadline
 * Runs on the system clock in about 100 ms.
 */
#define _POSIX_C_SOURCE 200809L

#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <seawall.h>

static void must(seawall_status status) {
    if (status != SEAWALL_OK) {
        fprintf(stderr, "seawall: %s: %s\n", seawall_status_name(status), seawall_last_error());
        exit(1);
    }
}

/* What remains of `d` as a poll() timeout: whole ms rounded up (rounding down would make
 * poll() return early and the caller spin), at most INT_MAX, never -1 (which would wait
 * forever), 0 once expired. */
static int poll_timeout(const seawall_deadline *d) {
    double left;
    must(seawall_deadline_remaining_ms_double(d, &left));
    if (left >= (double)INT_MAX) return INT_MAX;
    int ms = (int)left;
    return ms < left ? ms + 1 : ms;
}

/* Waits for `fd` to become readable, at most until `d`: 1 readable, 0 deadline passed. */
static int wait_readable(int fd, const seawall_deadline *d) {
    for (;;) {
        bool expired;
        must(seawall_deadline_expired(d, &expired));
        if (expired) return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, poll_timeout(d));
        if (n > 0) return 1;
        if (n < 0) {
            perror("poll");
            exit(1);
        }
        /* n == 0: the timeout ran out; the loop re-checks the deadline. */
    }
}

/* Cancel callback: runs once, on seawall's timer thread, when the token is cancelled;
 * a byte in the pipe wakes whoever polls its other end. */
static void wake(seawall_cancel_reason reason, void *user_data) {
    (void)reason;
    int fd = *(int *)user_data;
    ssize_t ignored = write(fd, "x", 1);
    (void)ignored;
}

int main(void) {
    seawall_clock *clock;
    must(seawall_system_clock_new(&clock));
    int data[2], wakeup[2];
    if (pipe(data) != 0 || pipe(wakeup) != 0) {
        perror("pipe");
        return 1;
    }

    /* 1. A request arrives with "grpc-timeout: 50m": nothing will ever come on `data`, so
     *    the poll() loop ends when the budget is spent, not later. */
    seawall_deadline *request;
    must(seawall_deadline_from_grpc_timeout(clock, "50m", &request));
    printf("request deadline: grpc-timeout 50m\n");
    int got = wait_readable(data[0], request);
    bool expired;
    must(seawall_deadline_expired(request, &expired));
    printf("poll: %s (expired: %s)\n", got ? "data" : "no data before the deadline", expired ? "yes" : "no");
    seawall_deadline_free(request);

    /* 2. A 5 s request budget; this attempt gets 1 % of it (at least 20 ms). A token is
     *    cancelled by the timer thread when the attempt's deadline passes, and its callback
     *    wakes the poll(), which itself waits on the whole 5 s budget. */
    must(seawall_deadline_after_ms(clock, 5000, &request));
    double share;
    must(seawall_deadline_budget_ms(request, 0.01, 20, &share));
    seawall_deadline *attempt;
    must(seawall_deadline_after_ms(clock, share, &attempt));
    printf("attempt: 1%% of a 5 s budget, at least 20 ms: %.0f ms\n", share);

    seawall_cancel_token *token;
    seawall_timer *timer;
    must(seawall_cancel_token_new(&token));
    must(seawall_cancel_token_on_cancel(token, wake, &wakeup[1], NULL));
    must(seawall_cancel_token_cancel_at(token, attempt, &timer));

    struct pollfd fds[2] = {{.fd = data[0], .events = POLLIN}, {.fd = wakeup[0], .events = POLLIN}};
    int n = poll(fds, 2, poll_timeout(request));
    seawall_cancel_reason reason;
    must(seawall_cancel_token_reason(token, &reason));
    must(seawall_deadline_expired(request, &expired));
    if (n > 0 && (fds[1].revents & POLLIN))
        printf("poll: woken by the cancel token (%s), request budget left: %s\n",
               seawall_cancel_reason_name(reason), expired ? "none" : "yes");
    else
        printf("poll: returned %d without the token\n", n);

    /* The work is over: free the timer first (it unschedules it if it has not fired). */
    seawall_timer_free(timer);
    seawall_cancel_token_free(token);
    seawall_deadline_free(attempt);
    seawall_deadline_free(request);
    seawall_clock_free(clock);
    close(data[0]);
    close(data[1]);
    close(wakeup[0]);
    close(wakeup[1]);
    return 0;
}
