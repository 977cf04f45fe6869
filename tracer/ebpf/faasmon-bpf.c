// faasmon-bpf: loads faasmon.bpf.o, attaches its tracepoints and prints its ring buffer's records as the text lines
// faasmon.bt prints (see there), tab separated, one a line, without bpftrace's JSON around them:
//   R                 every program is attached
//   W  pid            now watching pid (the answer to a "watch PID" line on stdin)
//   L  n              n more records were lost (the ring was full), printed when the count grows
// The string field, last on its line, is escaped: a byte below 0x20, 0x7f, a backslash and a byte >= 0x80 print as
// \xNN, so no byte of a path or a buffer can end a line, add a field or forge one; a buffer keeps its zero bytes.
// A rename's new path comes on its N line, execve's argv[1] and argv[2] on A lines, as in faasmon.bt; a buffer's 256
// bytes all on its X line (no C line).
//
//   faasmon-bpf [--poll-ms N] OBJECT
// stdin: "watch PID" / "unwatch PID" lines. Ends at stdin's end, SIGTERM, SIGINT or SIGHUP; the kernel detaches
// the programs when the process ends, however it ends.
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>
#include <linux/types.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "faasmon-bpf.h"
#include "faasmon-lines.h"

static const char *const call_names[FM_CALLS] = { FM_CALL_NAMES };

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static int print_libbpf(enum libbpf_print_level level, const char *format, va_list args)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, format, args);
}

/* bytes as the loader's string field (faasmon-lines.h) */
static void put_escaped(const unsigned char *bytes, size_t n)
{
	char out[FM_DATA * 4];
	fwrite(out, 1, fm_escape(out, bytes, n > FM_DATA ? FM_DATA : n), stdout);
}

static int on_record(void *ctx, void *data, size_t size)
{
	(void)ctx;
	const struct fm_event *e = data;
	if (size < sizeof(*e))
		return 0;
	size_t room = size - sizeof(*e);
	size_t len0 = e->len0 < room && e->len0 <= FM_DATA ? e->len0 : (room < FM_DATA ? room : FM_DATA);
	const unsigned char *bytes = (const unsigned char *)e->data;
	switch (e->type) {
	case FM_SYSCALL: {
		if (e->call >= FM_CALLS)
			return 0;
		const char *name = call_names[e->call];
		if (e->call == FM_RENAMEAT2 || e->call == FM_RENAMEAT || e->call == FM_RENAME) {
			printf("N\t%llu\t%u\t", (unsigned long long)e->ns, e->tid);
			if (room >= 2 * FM_DATA)
				put_escaped(bytes + FM_DATA, e->len1);
			putchar('\n');
		}
		printf("X\t%llu\t%u\t%u\t%u\t%s\t%lld\t%llu\t%lld\t%lld\t%lld\t", (unsigned long long)e->ns, e->tid, e->pid,
		       e->ppid, name, (long long)e->ret, (unsigned long long)e->dur, (long long)e->a0, (long long)e->a1,
		       (long long)e->a2);
		put_escaped(bytes, len0);
		putchar('\n');
		break;
	}
	case FM_EXEC:
		printf("E\t%llu\t%u\t%u\t%u\t", (unsigned long long)e->ns, e->tid, e->pid, e->ppid);
		put_escaped(bytes, len0);
		putchar('\n');
		if (room >= FM_DATA + 2 * FM_ARG) {
			printf("A\t%u\t", e->tid);
			put_escaped(bytes + FM_DATA, e->len1 < FM_ARG ? e->len1 : FM_ARG);
			printf("\nA\t%u\t", e->tid);
			put_escaped(bytes + FM_DATA + FM_ARG, e->len2 < FM_ARG ? e->len2 : FM_ARG);
			putchar('\n');
		}
		break;
	case FM_FORK:
		printf("F\t%llu\t%u\t%u\t%lld\n", (unsigned long long)e->ns, e->tid, e->pid, (long long)e->a0);
		break;
	case FM_EXIT:
		printf("Q\t%llu\t%u\t%u\t%u\t%lld\n", (unsigned long long)e->ns, e->tid, e->pid, e->ppid, (long long)e->ret);
		break;
	case FM_SIGNAL:
		printf("S\t%llu\t%u\t%u\t%u\t%lld\n", (unsigned long long)e->ns, e->tid, e->pid, e->ppid, (long long)e->a0);
		break;
	}
	return 0;
}

/* A pid as the tracer writes it: 1 to 10 decimal digits, at most the kernel's largest pid_max (2^22). */
static int parse_pid(const char *s, __u32 *pid)
{
	unsigned long v = 0;
	size_t n = 0;
	for (; s[n] >= '0' && s[n] <= '9'; n++) {
		if (n >= 10)
			return -1;
		v = v * 10 + (unsigned long)(s[n] - '0');
	}
	if (n == 0 || s[n] != '\0' || v == 0 || v > (1UL << 22))
		return -1;
	*pid = (__u32)v;
	return 0;
}

static void run_command(char *line, int watch_fd)
{
	__u32 pid;
	__u8 one = 1;
	if (strncmp(line, "watch ", 6) == 0 && parse_pid(line + 6, &pid) == 0) {
		if (bpf_map_update_elem(watch_fd, &pid, &one, BPF_ANY) == 0)
			printf("W\t%u\n", pid);
		else
			fprintf(stderr, "faasmon-bpf: cannot watch pid %u: %s\n", pid, strerror(errno));
	} else if (strncmp(line, "unwatch ", 8) == 0 && parse_pid(line + 8, &pid) == 0) {
		bpf_map_delete_elem(watch_fd, &pid);
	} else {
		fprintf(stderr, "faasmon-bpf: ignoring an invalid command (%zu bytes)\n", strlen(line));
	}
}

/* Reads what stdin has and runs its complete lines; 0 at its end. */
static int read_commands(int watch_fd)
{
	static char buf[256];
	static size_t used;
	static int overlong;
	ssize_t n = read(STDIN_FILENO, buf + used, sizeof(buf) - 1 - used);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : 0;
	if (n == 0)
		return 0;
	used += (size_t)n;
	size_t start = 0;
	for (size_t i = 0; i < used; i++) {
		if (buf[i] != '\n')
			continue;
		buf[i] = '\0';
		if (!overlong)
			run_command(buf + start, watch_fd);
		overlong = 0;
		start = i + 1;
	}
	memmove(buf, buf + start, used - start);
	used -= start;
	if (used == sizeof(buf) - 1) {
		// a line longer than any command: dropped up to its newline
		fprintf(stderr, "faasmon-bpf: ignoring an over-long command\n");
		overlong = 1;
		used = 0;
	}
	return 1;
}

static __u64 total_lost(int lost_fd, int cpus)
{
	__u64 values[cpus > 0 ? cpus : 1];
	__u32 zero = 0;
	__u64 sum = 0;
	if (bpf_map_lookup_elem(lost_fd, &zero, values) != 0)
		return 0;
	for (int i = 0; i < cpus; i++)
		sum += values[i];
	return sum;
}

/* A program whose tracepoint this kernel lacks (sys_enter_open, fork... on arm64) is left out, not a failure. */
static void skip_missing_tracepoints(struct bpf_object *obj)
{
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, obj) {
		const char *sec = bpf_program__section_name(prog);
		if (strncmp(sec, "tracepoint/", 11) != 0)
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "/sys/kernel/tracing/events/%s", sec + 11);
		if (access(path, F_OK) == 0)
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/debug/tracing/events/%s", sec + 11);
		if (access(path, F_OK) != 0) {
			fprintf(stderr, "faasmon-bpf: this kernel has no tracepoint %s; left out\n", sec + 11);
			bpf_program__set_autoload(prog, false);
		}
	}
}

int main(int argc, char **argv)
{
	int poll_ms = 10;
	const char *object = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--poll-ms") == 0 && i + 1 < argc) {
			poll_ms = atoi(argv[++i]);
			if (poll_ms < 1 || poll_ms > 1000) {
				fprintf(stderr, "faasmon-bpf: --poll-ms must be 1..1000\n");
				return 2;
			}
		} else if (argv[i][0] != '-' && object == NULL) {
			object = argv[i];
		} else {
			fprintf(stderr, "usage: faasmon-bpf [--poll-ms N] OBJECT\n");
			return 2;
		}
	}
	if (object == NULL) {
		fprintf(stderr, "usage: faasmon-bpf [--poll-ms N] OBJECT\n");
		return 2;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN); // a closed stdout shows as a write error, and we end

	// a full buffer, written out after each pass over the ring: one pipe write per batch, not per line
	static char out[1 << 16];
	setvbuf(stdout, out, _IOFBF, sizeof(out));
	libbpf_set_print(print_libbpf);

	struct bpf_object *obj = bpf_object__open_file(object, NULL);
	if (!obj) {
		fprintf(stderr, "faasmon-bpf: cannot open %s: %s\n", object, strerror(errno));
		return 1;
	}
	skip_missing_tracepoints(obj);
	if (bpf_object__load(obj) != 0) {
		fprintf(stderr, "faasmon-bpf: cannot load %s: %s (needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)\n", object, strerror(errno));
		bpf_object__close(obj);
		return 1;
	}

	int status = 1;
	struct ring_buffer *ring = NULL;
	struct bpf_program *prog;
	struct bpf_link *links[128];
	size_t nlinks = 0;
	bpf_object__for_each_program(prog, obj) {
		if (!bpf_program__autoload(prog))
			continue;
		struct bpf_link *link = nlinks < sizeof(links) / sizeof(links[0]) ? bpf_program__attach(prog) : NULL;
		if (!link) {
			fprintf(stderr, "faasmon-bpf: cannot attach %s: %s\n", bpf_program__section_name(prog), strerror(errno));
			goto out;
		}
		links[nlinks++] = link;
	}

	int watch_fd = bpf_object__find_map_fd_by_name(obj, "watch");
	int lost_fd = bpf_object__find_map_fd_by_name(obj, "lost");
	int events_fd = bpf_object__find_map_fd_by_name(obj, "events");
	int cpus = libbpf_num_possible_cpus();
	if (watch_fd < 0 || lost_fd < 0 || events_fd < 0 || cpus <= 0) {
		fprintf(stderr, "faasmon-bpf: %s lacks the maps it should have\n", object);
		goto out;
	}
	ring = ring_buffer__new(events_fd, on_record, NULL, NULL);
	if (!ring) {
		fprintf(stderr, "faasmon-bpf: cannot map the ring buffer: %s\n", strerror(errno));
		goto out;
	}

	int epoll = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	ev.data.fd = STDIN_FILENO;
	if (epoll < 0 || epoll_ctl(epoll, EPOLL_CTL_ADD, STDIN_FILENO, &ev) != 0) {
		fprintf(stderr, "faasmon-bpf: epoll: %s\n", strerror(errno));
		goto out;
	}
	ev.data.fd = ring_buffer__epoll_fd(ring);
	epoll_ctl(epoll, EPOLL_CTL_ADD, ev.data.fd, &ev);

	printf("R\n");
	fflush(stdout);
	__u64 lost_printed = 0;
	time_t lost_checked = 0;
	status = 0;
	while (!stopping) {
		struct epoll_event ready[2];
		int n = epoll_wait(epoll, ready, 2, poll_ms);
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "faasmon-bpf: epoll_wait: %s\n", strerror(errno));
			status = 1;
			break;
		}
		// the programs wake us only when a lot waits: every pass reads the ring
		if (ring_buffer__consume(ring) < 0 && errno != EINTR) {
			fprintf(stderr, "faasmon-bpf: reading the ring: %s\n", strerror(errno));
			status = 1;
			break;
		}
		int eof = 0;
		for (int i = 0; i < n; i++) {
			if (ready[i].data.fd == STDIN_FILENO && !read_commands(watch_fd))
				eof = 1;
		}
		time_t now = time(NULL);
		if (now != lost_checked) {
			lost_checked = now;
			__u64 lost = total_lost(lost_fd, cpus);
			if (lost > lost_printed) {
				printf("L\t%llu\n", (unsigned long long)(lost - lost_printed));
				lost_printed = lost;
			}
		}
		if (fflush(stdout) != 0 || ferror(stdout)) {
			status = 1; // the tracer is gone
			break;
		}
		if (eof)
			break; // the tracer closed our stdin: it is done, or gone
	}
	close(epoll);
	ring_buffer__consume(ring); // what the last pass left
	fflush(stdout);

out:
	ring_buffer__free(ring);
	while (nlinks > 0)
		bpf_link__destroy(links[--nlinks]);
	bpf_object__close(obj);
	return status;
}
