// faasmon-ptrace: the strace backend's own tracer. It attaches to one function process with ptrace, as strace -f -p
// does, follows its threads and children, and prints the traced system calls as the eBPF loader's text lines (see
// ../ebpf/faasmon.bt and ../ebpf/faasmon-bpf.c: X, N, E, A, F, Q, S), so one parser reads both; and P, a connected or
// accepted socket's own and peer endpoints just before its X line (P ns tid local peer, struct sockaddr bytes escaped).
//
// Why not strace itself: Debian 12's strace 6.1 cannot use --seccomp-bpf with -p, so a traced process stops twice at
// every system call whichever tracer it has; that part is ptrace's. What strace adds on top is decoding every traced
// call's arguments into text, -yy's lookup of each descriptor in /proc/PID/fd while the function waits, and a write
// per line. Here a stop costs a wait4, one PTRACE_GET_SYSCALL_INFO and the resume; the function is resumed before
// anything is formatted; a descriptor is not looked up (the tracer follows sockets from their socket/connect/accept
// calls, as with eBPF); lines are written in batches, at most --flush-ms after the first one waiting.
//
//   faasmon-ptrace [-s BYTES] [--flush-ms N] [--stops-only] PID
// Prints "W PID" once every thread of PID is attached. Ends when no traced thread is left, or at SIGTERM, SIGINT or
// SIGHUP (what waits is written first). However it ends, the kernel detaches its tracees and they run on.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/ptrace.h>
#include <linux/sched.h>
#include <linux/types.h>
#include "../ebpf/faasmon-bpf.h"
#include "../ebpf/faasmon-lines.h"

static const char *const call_names[FM_CALLS] = { FM_CALL_NAMES };

// what an exit reads besides the arguments (as faasmon.bpf.c)
// K_IOV / K_MSG: what a readv/writev or a recvmsg/sendmsg moved, gathered from its iovecs (the eBPF side has no
// loop for that and sends none): node writes its HTTP requests and responses with writev
// K_ACCEPT, and K_SOCKADDR for connect: the socket's own endpoints as well (a P line), which only strace -yy gave: the
// grapher ties a function's outgoing call to the proxy's record of it by the client port
enum kind { K_NONE, K_PATH, K_RENAME, K_BUF, K_SOCKADDR, K_IOV, K_MSG, K_ACCEPT };

struct call_spec {
	signed char call; // enum fm_call, -1: not traced
	unsigned char kind;
	signed char a0, a1, a2; // which argument goes to a0..a2 (as an int), -1: 0
	signed char p0, p1;     // which argument is the path/buffer/sockaddr, and a rename's new path
};

#define MAX_NR 512
static struct call_spec specs[MAX_NR];

static void spec(long nr, int call, int kind, int a0, int a1, int a2, int p0, int p1)
{
	if (nr < 0 || nr >= MAX_NR)
		return;
	specs[nr] = (struct call_spec){ (signed char)call, (unsigned char)kind, (signed char)a0, (signed char)a1,
		(signed char)a2, (signed char)p0, (signed char)p1 };
}

// the same calls, arguments and bytes as faasmon.bpf.c, and the bytes of readv/writev/recvmsg/sendmsg besides
static void init_specs(void)
{
	for (int i = 0; i < MAX_NR; i++)
		specs[i].call = -1;
	spec(SYS_execve, FM_EXECVE, K_NONE, -1, -1, -1, -1, -1);
	spec(SYS_openat, FM_OPENAT, K_PATH, -1, 2, -1, 1, -1);
	spec(SYS_fchmodat, FM_FCHMODAT, K_PATH, -1, 2, -1, 1, -1);
	spec(SYS_unlinkat, FM_UNLINKAT, K_PATH, -1, -1, -1, 1, -1);
	spec(SYS_chdir, FM_CHDIR, K_PATH, -1, -1, -1, 0, -1);
	spec(SYS_renameat2, FM_RENAMEAT2, K_RENAME, -1, -1, -1, 1, 3);
	spec(SYS_write, FM_WRITE, K_BUF, 0, -1, -1, 1, -1);
	spec(SYS_pwrite64, FM_PWRITE64, K_BUF, 0, -1, -1, 1, -1);
	spec(SYS_read, FM_READ, K_BUF, 0, -1, -1, 1, -1);
	spec(SYS_pread64, FM_PREAD64, K_BUF, 0, -1, -1, 1, -1);
	spec(SYS_sendto, FM_SENDTO, K_BUF, 0, -1, -1, 1, -1);
	spec(SYS_recvfrom, FM_RECVFROM, K_BUF, 0, -1, -1, 1, -1);
	spec(SYS_connect, FM_CONNECT, K_SOCKADDR, 0, 2, -1, 1, -1);
	spec(SYS_bind, FM_BIND, K_SOCKADDR, 0, 2, -1, 1, -1);
	spec(SYS_sendmsg, FM_SENDMSG, K_MSG, 0, -1, -1, 1, -1);
	spec(SYS_recvmsg, FM_RECVMSG, K_MSG, 0, -1, -1, 1, -1);
	spec(SYS_listen, FM_LISTEN, K_NONE, 0, -1, -1, -1, -1);
	spec(SYS_accept4, FM_ACCEPT4, K_ACCEPT, 0, -1, -1, -1, -1);
	spec(SYS_close, FM_CLOSE, K_NONE, 0, -1, -1, -1, -1);
	spec(SYS_writev, FM_WRITEV, K_IOV, 0, -1, -1, 1, -1);
	spec(SYS_readv, FM_READV, K_IOV, 0, -1, -1, 1, -1);
	spec(SYS_socket, FM_SOCKET, K_NONE, 0, 1, 2, -1, -1);
	spec(SYS_kill, FM_KILL, K_NONE, 0, 1, -1, -1, -1);
	spec(SYS_mmap, FM_MMAP, K_NONE, 4, 2, -1, -1, -1);
	spec(SYS_mprotect, FM_MPROTECT, K_NONE, -1, 2, -1, -1, -1);
	spec(SYS_clone, FM_CLONE, K_NONE, -1, -1, -1, -1, -1);
	spec(SYS_clone3, FM_CLONE3, K_NONE, -1, -1, -1, -1, -1);
#ifdef SYS_open
	spec(SYS_open, FM_OPEN, K_PATH, -1, 1, -1, 0, -1);
	spec(SYS_chmod, FM_CHMOD, K_PATH, -1, 1, -1, 0, -1);
	spec(SYS_unlink, FM_UNLINK, K_PATH, -1, -1, -1, 0, -1);
	spec(SYS_renameat, FM_RENAMEAT, K_RENAME, -1, -1, -1, 1, 3);
	spec(SYS_rename, FM_RENAME, K_RENAME, -1, -1, -1, 0, 1);
	spec(SYS_accept, FM_ACCEPT, K_ACCEPT, 0, -1, -1, -1, -1);
	spec(SYS_fork, FM_FORK_CALL, K_NONE, -1, -1, -1, -1, -1);
	spec(SYS_vfork, FM_VFORK, K_NONE, -1, -1, -1, -1, -1);
#endif
}

/* One traced thread. */
struct thread {
	pid_t tid;
	pid_t pid;  // its thread group
	pid_t ppid; // the group's parent
	int call;   // the call it is in (enum fm_call), -1: none we trace
	const struct call_spec *spec;
	__u64 ns;   // that call's entry
	__u64 args[6];
	__u64 clone_flags;
};

static struct thread **threads; // by tid, pid_max long (pages are touched only for tids in use)
static long pid_max;
static long live;               // threads traced
static size_t max_bytes = FM_DATA;
static volatile sig_atomic_t stopping;
static volatile sig_atomic_t flush_due;

static __u64 now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts); // bpf_ktime_get_ns's clock: the parser maps it to wall time
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

/* ---- output: one buffer, written when a flush is due, when it fills, and at the end ---- */

static char out[1 << 20];
static size_t used;
static int armed;
static int flush_ms = 10;
static int stops_only; // --stops-only: every stop resumed at once, nothing printed (what any ptrace tracer costs)
static int out_broken;

static void write_out(void)
{
	size_t done = 0;
	while (done < used && !out_broken) {
		ssize_t n = write(STDOUT_FILENO, out + done, used - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			out_broken = 1; // the tracer is gone
		else
			done += (size_t)n;
	}
	used = 0;
}

static void arm(int on)
{
	// periodic while lines wait: a tick that lands just before wait4 blocks is followed by one that interrupts it
	struct itimerval t = { 0 };
	if (on) {
		t.it_value.tv_usec = flush_ms * 1000;
		t.it_interval.tv_usec = flush_ms * 1000;
	}
	setitimer(ITIMER_REAL, &t, NULL);
	armed = on;
}

static void flush_out(void)
{
	if (used > 0)
		write_out();
	if (armed)
		arm(0);
	flush_due = 0;
}

/* room for one line: a string field escaped is at most 4 bytes a byte */
static void reserve(size_t n)
{
	if (used + n > sizeof(out))
		write_out();
	if (!armed)
		arm(1);
}

static void put_char(char c)
{
	out[used++] = c;
}

static void put_str(const char *s)
{
	size_t n = strlen(s);
	memcpy(out + used, s, n);
	used += n;
}

static void put_u64(unsigned long long v)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		out[used++] = tmp[--n];
}

static void put_s64(long long v)
{
	if (v < 0) {
		put_char('-');
		put_u64(0ull - (unsigned long long)v);
	} else {
		put_u64((unsigned long long)v);
	}
}

static void put_field_u(unsigned long long v)
{
	put_char('\t');
	put_u64(v);
}

static void put_field_s(long long v)
{
	put_char('\t');
	put_s64(v);
}

/* bytes as the loader's string field (faasmon-lines.h); reserve() made room */
static void put_escaped(const unsigned char *bytes, size_t n)
{
	used += fm_escape(out + used, bytes, n);
}

/* The start of a line that goes with the X line of the same call after it (N, P): type, the call's ns and tid. */
static void put_before_call(char type, __u64 ns, pid_t tid)
{
	put_char(type);
	put_field_u(ns);
	put_field_u((unsigned)tid);
	put_char('\t');
}

/* ---- the tracee's memory ---- */

static size_t read_mem(pid_t tid, __u64 addr, void *dst, size_t n)
{
	if (addr == 0 || n == 0)
		return 0;
	struct iovec local = { dst, n };
	struct iovec remote = { (void *)(uintptr_t)addr, n };
	ssize_t got = process_vm_readv(tid, &local, 1, &remote, 1, 0);
	if (got >= 0)
		return (size_t)got;
	// a range that runs into an unmapped page: what lies before it, a page at a time
	size_t done = 0;
	while (done < n) {
		size_t chunk = 4096 - ((addr + done) & 4095);
		if (chunk > n - done)
			chunk = n - done;
		local = (struct iovec){ (char *)dst + done, chunk };
		remote = (struct iovec){ (void *)(uintptr_t)(addr + done), chunk };
		got = process_vm_readv(tid, &local, 1, &remote, 1, 0);
		if (got <= 0)
			break;
		done += (size_t)got;
		if ((size_t)got < chunk)
			break;
	}
	return done;
}

/* The first max bytes (at most moved) that an iovec array of count entries points at; what was read. */
static size_t read_iov(pid_t tid, __u64 iov_addr, __u64 count, size_t moved, unsigned char *dst, size_t max)
{
	struct iovec iov[8];
	size_t want = moved < max ? moved : max, got = 0;
	if (count > 8)
		count = 8; // what the first 8 hold: the headers of an HTTP message are in the first
	size_t have = read_mem(tid, iov_addr, iov, count * sizeof(iov[0])) / sizeof(iov[0]);
	for (size_t i = 0; i < have && got < want; i++) {
		size_t n = iov[i].iov_len < want - got ? iov[i].iov_len : want - got;
		size_t r = read_mem(tid, (__u64)(uintptr_t)iov[i].iov_base, dst + got, n);
		got += r;
		if (r < n)
			break;
	}
	return got;
}

/*
 * The endpoints of the tracee's socket fd, as struct sockaddr bytes: its own (getsockname) and its peer's (getpeername,
 * none while a connect is in progress). The socket is borrowed with pidfd_getfd (Linux 5.6, PTRACE_MODE_ATTACH: we are
 * its tracer) and closed at once. 0 when this kernel cannot.
 */
static int sock_names(pid_t pid, int fd, unsigned char *local, socklen_t *local_len, unsigned char *peer, socklen_t *peer_len)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return 0;
	int mine = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	close(pidfd);
	if (mine < 0)
		return 0;
	if (getsockname(mine, (struct sockaddr *)local, local_len) != 0)
		*local_len = 0;
	if (getpeername(mine, (struct sockaddr *)peer, peer_len) != 0)
		*peer_len = 0;
	close(mine);
	return *local_len > 0;
}

/* A NUL-ended string of at most max bytes; its length without the NUL. Read a page at a time up to its end. */
static size_t read_str(pid_t tid, __u64 addr, char *dst, size_t max)
{
	size_t got = 0;
	while (addr != 0 && got < max) {
		size_t chunk = 4096 - ((addr + got) & 4095);
		if (chunk > max - got)
			chunk = max - got;
		struct iovec local = { dst + got, chunk };
		struct iovec remote = { (void *)(uintptr_t)(addr + got), chunk };
		ssize_t n = process_vm_readv(tid, &local, 1, &remote, 1, 0);
		if (n <= 0)
			break;
		char *end = memchr(dst + got, '\0', (size_t)n);
		if (end)
			return (size_t)(end - dst);
		got += (size_t)n;
	}
	return got;
}

/* ---- threads ---- */

static long read_pid_max(void)
{
	long v = 0;
	FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v > 0 && v <= (1L << 22) ? v : (1L << 22);
}

/* Tgid and PPid of a task from /proc (a thread whose first stop came before its creator's event). */
static int proc_ids(pid_t tid, pid_t *pid, pid_t *ppid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	int found = 0;
	while (fgets(line, sizeof(line), f) && found < 2) {
		if (strncmp(line, "Tgid:", 5) == 0) {
			*pid = (pid_t)atoi(line + 5);
			found++;
		} else if (strncmp(line, "PPid:", 5) == 0) {
			*ppid = (pid_t)atoi(line + 5);
			found++;
		}
	}
	fclose(f);
	return found == 2 ? 0 : -1;
}

/* The TracerPid of a process (0: none, or unknown). */
static long tracer_of(pid_t pid)
{
	char path[64], line[256];
	long tracer = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "TracerPid:", 10) == 0) {
			tracer = atol(line + 10);
			break;
		}
	}
	fclose(f);
	return tracer;
}

static struct thread *find(pid_t tid)
{
	return tid > 0 && tid < pid_max ? threads[tid] : NULL;
}

static struct thread *add(pid_t tid, pid_t pid, pid_t ppid)
{
	if (tid <= 0 || tid >= pid_max)
		return NULL;
	struct thread *t = threads[tid];
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t)
			return NULL;
		threads[tid] = t;
		live++;
	}
	t->tid = tid;
	t->pid = pid;
	t->ppid = ppid;
	t->call = -1;
	return t;
}

static void forget(pid_t tid)
{
	struct thread *t = find(tid);
	if (t) {
		threads[tid] = NULL;
		free(t);
		live--;
	}
}

#define SEIZE_OPTIONS (PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC)

/* Every thread of pid, listed again until a pass finds none new (a thread may start while we attach). */
static int attach(pid_t pid)
{
	pid_t group = pid, ppid = 0;
	if (proc_ids(pid, &group, &ppid) != 0 || group != pid) {
		errno = ESRCH;
		return -1;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	for (int pass = 0, added = 1; added && pass < 100; pass++) {
		added = 0;
		DIR *dir = opendir(path);
		if (!dir) {
			errno = ESRCH;
			return -1;
		}
		struct dirent *d;
		while ((d = readdir(dir)) != NULL) {
			pid_t tid = (pid_t)atoi(d->d_name);
			if (tid <= 0 || find(tid))
				continue;
			if (ptrace(PTRACE_SEIZE, tid, 0, (void *)(long)SEIZE_OPTIONS) != 0) {
				if (errno == ESRCH)
					continue; // a thread that ended meanwhile
				int e = errno;
				closedir(dir);
				errno = e;
				return -1;
			}
			ptrace(PTRACE_INTERRUPT, tid, 0, 0); // its first stop; resumed from there with PTRACE_SYSCALL
			add(tid, pid, ppid);
			added = 1;
		}
		closedir(dir);
	}
	if (!find(pid)) {
		errno = ESRCH;
		return -1;
	}
	return 0;
}

/* ---- what a stop prints ---- */

static void line_head(char type, __u64 ns, const struct thread *t)
{
	put_char(type);
	put_field_u(ns);
	put_field_u((unsigned)t->tid);
	put_field_u((unsigned)t->pid);
	put_field_u((unsigned)t->ppid);
}

static long long arg_int(const struct thread *t, int i)
{
	return i < 0 ? 0 : (long long)(int)t->args[i];
}

static void on_entry(struct thread *t, const struct ptrace_syscall_info *info)
{
	__u64 nr = info->entry.nr;
	const struct call_spec *s = nr < MAX_NR ? &specs[nr] : NULL;
	t->call = -1;
	if (!s || s->call < 0)
		return;
	// only executable mappings matter (injected code)
	if ((s->call == FM_MMAP || s->call == FM_MPROTECT) && !(info->entry.args[2] & 4))
		return;
	t->call = s->call;
	t->spec = s;
	t->ns = now_ns();
	memcpy(t->args, info->entry.args, sizeof(t->args));
	if (s->call == FM_CLONE)
		t->clone_flags = t->args[0];
	else if (s->call == FM_CLONE3 && read_mem(t->tid, t->args[0], &t->clone_flags, sizeof(t->clone_flags)) != sizeof(t->clone_flags))
		t->clone_flags = 0;
	else if (s->call == FM_FORK_CALL || s->call == FM_VFORK)
		t->clone_flags = 0;
	if (s->call == FM_EXECVE) {
		// at its entry, with its path and its arguments (argv[1..32], each up to -s bytes, as strace -s keeps them;
		// the eBPF programs send argv[1..2] of 127): its exit runs in the new image. A shell's command line is one
		// argument, and the rules match it whole (an allow-listed `sh -c echo "..." >> /tmp/outbox.log` is 150 bytes)
		static char path[4096], arg[4096];
		size_t cap = max_bytes < sizeof(arg) ? max_bytes : sizeof(arg);
		size_t n = read_str(t->tid, t->args[0], path, cap);
		reserve(64 + 4 * n);
		line_head('E', t->ns, t);
		put_char('\t');
		put_escaped((unsigned char *)path, n);
		put_char('\n');
		__u64 argv[33] = { 0 };
		size_t got = read_mem(t->tid, t->args[1], argv, sizeof(argv)) / sizeof(argv[0]);
		for (size_t i = 1; i < got && argv[i] != 0; i++) {
			size_t m = read_str(t->tid, argv[i], arg, cap);
			reserve(32 + 4 * m);
			put_char('A');
			put_field_u((unsigned)t->tid);
			put_char('\t');
			put_escaped((unsigned char *)arg, m);
			put_char('\n');
		}
	}
}

/* What a traced call's exit prints; the tracee's memory is read here, so before it runs on (a read's buffer). */
static void on_exit_stop(struct thread *t, long long ret, __u64 end)
{
	int call = t->call;
	const struct call_spec *s = t->spec;
	t->call = -1;
	if (call < 0 || !s)
		return;
	__u64 dur = end - t->ns;
	static unsigned char data[4096], second[4096];
	size_t cap = max_bytes < sizeof(data) ? max_bytes : sizeof(data);
	size_t n = 0, n2 = 0;
	unsigned char local[128], peer[128];
	socklen_t local_len = sizeof(local), peer_len = sizeof(peer);
	int named = 0;
	long long a1 = arg_int(t, s->a1);
	switch (s->kind) {
	case K_PATH:
		n = read_str(t->tid, t->args[s->p0], (char *)data, cap);
		break;
	case K_RENAME:
		n = read_str(t->tid, t->args[s->p0], (char *)data, cap);
		n2 = read_str(t->tid, t->args[s->p1], (char *)second, cap);
		break;
	case K_BUF:
		if (ret > 0)
			n = read_mem(t->tid, t->args[s->p0], data, (size_t)ret < cap ? (size_t)ret : cap);
		break;
	case K_IOV:
		if (ret > 0)
			n = read_iov(t->tid, t->args[s->p0], t->args[2], (size_t)ret, data, cap);
		break;
	case K_MSG: {
		struct msghdr m;
		if (ret > 0 && read_mem(t->tid, t->args[s->p0], &m, sizeof(m)) == sizeof(m))
			n = read_iov(t->tid, (__u64)(uintptr_t)m.msg_iov, m.msg_iovlen, (size_t)ret, data, cap);
		break;
	}
	case K_SOCKADDR: {
		// its length, at most a sockaddr_in6 (28); faasmon.bt prints 0 for a1
		long long len = a1 < 28 ? a1 : 28;
		if (len > 0)
			n = read_mem(t->tid, t->args[s->p0], data, (size_t)len);
		a1 = 0;
		if (call == FM_CONNECT && (ret == 0 || ret == -EINPROGRESS))
			named = sock_names(t->pid, (int)t->args[0], local, &local_len, peer, &peer_len);
		break;
	}
	case K_ACCEPT:
		if (ret >= 0)
			named = sock_names(t->pid, (int)ret, local, &local_len, peer, &peer_len);
		break;
	}
	if (named) {
		// P  ns tid local peer: the socket's endpoints as struct sockaddr bytes, just before its X line
		reserve(64 + 4 * (local_len + peer_len));
		put_before_call('P', t->ns, t->tid);
		put_escaped(local, local_len);
		put_char('\t');
		put_escaped(peer, peer_len);
		put_char('\n');
	}
	reserve(160 + 4 * n + (s->kind == K_RENAME ? 40 + 4 * n2 : 0));
	if (s->kind == K_RENAME) {
		put_before_call('N', t->ns, t->tid);
		put_escaped(second, n2);
		put_char('\n');
	}
	line_head('X', t->ns, t);
	put_char('\t');
	put_str(call_names[call]);
	put_field_s(ret);
	put_field_u(dur);
	put_field_s(call == FM_MPROTECT ? -1 : arg_int(t, s->a0)); // faasmon.bt prints -1 for mprotect's fd
	put_field_s(a1);
	put_field_s(arg_int(t, s->a2));
	put_char('\t');
	put_escaped(data, n);
	put_char('\n');
}

static void on_new_task(struct thread *parent, int event)
{
	unsigned long msg = 0;
	if (ptrace(PTRACE_GETEVENTMSG, parent->tid, 0, &msg) != 0 || msg == 0)
		return;
	pid_t child = (pid_t)msg;
	int is_thread = event == PTRACE_EVENT_CLONE && (parent->clone_flags & CLONE_THREAD);
	struct thread *c = find(child);
	if (c) {
		// its first stop came first; it was added from /proc, which is right but for a vfork's parent
		c->pid = is_thread ? parent->pid : child;
		c->ppid = is_thread ? parent->ppid : parent->pid;
	} else {
		add(child, is_thread ? parent->pid : child, is_thread ? parent->ppid : parent->pid);
	}
	if (!is_thread) {
		reserve(96);
		put_char('F');
		put_field_u(now_ns());
		put_field_u((unsigned)parent->tid);
		put_field_u((unsigned)parent->pid);
		put_field_u((unsigned)child);
		put_char('\n');
	}
}

static void on_exec(struct thread *t)
{
	// a thread other than the leader that execs takes the leader's tid; the others are gone
	unsigned long former = 0;
	if (ptrace(PTRACE_GETEVENTMSG, t->tid, 0, &former) == 0 && (pid_t)former != t->tid) {
		struct thread *f = find((pid_t)former);
		if (f) {
			int call = f->call;
			__u64 ns = f->ns;
			forget((pid_t)former);
			t->call = call;
			t->ns = ns;
		}
	}
}

static void on_gone(pid_t tid, int status)
{
	struct thread *t = find(tid);
	if (!t)
		return;
	if (t->tid == t->pid) {
		reserve(96);
		line_head('Q', now_ns(), t);
		put_field_s(WIFEXITED(status) ? WEXITSTATUS(status) : 0); // exit_code >> 8, as faasmon.bpf.c
		put_char('\n');
	}
	forget(tid);
}

static void handle(pid_t tid, int status)
{
	if (WIFEXITED(status) || WIFSIGNALED(status)) {
		on_gone(tid, status);
		return;
	}
	if (!WIFSTOPPED(status))
		return;
	struct thread *t = find(tid);
	if (!t) {
		// a new thread or child whose first stop came before its creator's event
		pid_t pid = tid, ppid = 0;
		proc_ids(tid, &pid, &ppid);
		t = add(tid, pid, ppid);
		if (!t) {
			ptrace(PTRACE_SYSCALL, tid, 0, 0);
			return;
		}
	}
	int sig = WSTOPSIG(status);
	int event = status >> 16;
	int inject = 0;
	if (stops_only && sig == (SIGTRAP | 0x80)) {
		ptrace(PTRACE_SYSCALL, tid, 0, 0);
		return;
	}
	if (sig == (SIGTRAP | 0x80)) {
		struct ptrace_syscall_info info;
		if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, (void *)sizeof(info), &info) > 0) {
			if (info.op == PTRACE_SYSCALL_INFO_ENTRY) {
				on_entry(t, &info);
			} else if (info.op == PTRACE_SYSCALL_INFO_EXIT && t->call >= 0) {
				__u64 end = now_ns();
				if (t->spec->kind != K_NONE) {
					on_exit_stop(t, info.exit.rval, end); // reads the tracee's memory: before it changes it
					ptrace(PTRACE_SYSCALL, tid, 0, 0);
				} else {
					// resumed before the line is made: the function waits only for the stop itself
					ptrace(PTRACE_SYSCALL, tid, 0, 0);
					on_exit_stop(t, info.exit.rval, end);
				}
				return;
			}
		}
	} else if (event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK || event == PTRACE_EVENT_CLONE) {
		on_new_task(t, event);
	} else if (event == PTRACE_EVENT_EXEC) {
		on_exec(t);
	} else if (event == PTRACE_EVENT_STOP) {
		if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
			ptrace(PTRACE_LISTEN, tid, 0, 0); // a group stop: it stays stopped until SIGCONT, as untraced
			return;
		}
	} else if (event == 0) {
		// a signal on its way to the thread: said, and delivered
		reserve(96);
		line_head('S', now_ns(), t);
		put_field_s(sig);
		put_char('\n');
		inject = sig;
	}
	ptrace(PTRACE_SYSCALL, tid, 0, (void *)(long)inject);
}

static void on_stop_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void on_alarm(int sig)
{
	(void)sig;
	flush_due = 1;
}

static int usage(void)
{
	fprintf(stderr, "usage: faasmon-ptrace [-s BYTES] [--flush-ms N] [--stops-only] PID\n"
			"  -s BYTES       bytes kept of a path or buffer (1..4096, default %d)\n"
			"  --flush-ms N   longest a line waits before it is written (1..1000, default 10)\n"
			"  --stops-only   resume every system-call stop at once and print no call: the floor of any ptrace tracer\n", FM_DATA);
	return 2;
}

/* A positive decimal number no bigger than max; -1 otherwise. */
static long parse_number(const char *s, long max)
{
	long v = 0;
	size_t n = 0;
	for (; s[n] >= '0' && s[n] <= '9'; n++) {
		if (n >= 10)
			return -1;
		v = v * 10 + (s[n] - '0');
	}
	return n == 0 || s[n] != '\0' || v <= 0 || v > max ? -1 : v;
}

int main(int argc, char **argv)
{
	long pid = -1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
			long v = parse_number(argv[++i], 4096);
			if (v < 0)
				return usage();
			max_bytes = (size_t)v;
		} else if (strcmp(argv[i], "--flush-ms") == 0 && i + 1 < argc) {
			long v = parse_number(argv[++i], 1000);
			if (v < 0)
				return usage();
			flush_ms = (int)v;
		} else if (strcmp(argv[i], "--stops-only") == 0) {
			stops_only = 1;
		} else if (pid < 0 && argv[i][0] != '-') {
			pid = parse_number(argv[i], 1L << 22);
			if (pid < 0)
				return usage();
		} else {
			return usage();
		}
	}
	if (pid < 0)
		return usage();

	init_specs();
	pid_max = read_pid_max() + 1;
	threads = calloc((size_t)pid_max, sizeof(*threads));
	if (!threads) {
		fprintf(stderr, "faasmon-ptrace: out of memory\n");
		return 1;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal; // no SA_RESTART: the signal ends the wait4 it interrupts
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN); // a closed stdout shows as a write error, and we end

	if (attach((pid_t)pid) != 0) {
		int e = errno;
		long tracer = e == EPERM ? tracer_of((pid_t)pid) : 0;
		if (tracer > 0)
			fprintf(stderr, "faasmon-ptrace: cannot attach to pid %ld: it is already traced by pid %ld\n", pid, tracer);
		else
			fprintf(stderr, "faasmon-ptrace: cannot attach to pid %ld: %s%s\n", pid, strerror(e),
				e == EPERM ? " (needs CAP_SYS_PTRACE and a kernel.yama.ptrace_scope that allows it)" : "");
		return 1;
	}
	reserve(32);
	put_char('W');
	put_field_u((unsigned long long)pid);
	put_char('\n');
	flush_out();

	int status = 0;
	while (!stopping && !out_broken) {
		if (flush_due)
			flush_out();
		int st;
		pid_t tid = waitpid(-1, &st, __WALL);
		if (tid < 0) {
			if (errno == EINTR)
				continue;
			if (errno != ECHILD) {
				fprintf(stderr, "faasmon-ptrace: wait4: %s\n", strerror(errno));
				status = 1;
			}
			break; // no tracee left
		}
		handle(tid, st);
		if (live == 0)
			break;
	}
	flush_out();
	return out_broken ? 1 : status;
}
