// FaaSMon eBPF backend, kernel side for the libbpf loader (faasmon-bpf.c): the same tracepoints and the same
// semantics as faasmon.bt, without bpftrace's userspace. bpftrace formats every printf when it reads it from its
// ring (~14 us of CPU a line, ~5 lines a request); here the exit of a call writes one binary record into a
// BPF ring buffer and the loader turns it into a text line with a few stores.
//
// The filter is the watch map of tgids: the loader adds a pid when the tracer asks (a "watch PID" line on its stdin),
// a watched process's child processes are added at their fork, a process is removed at its exit. An entry saves its
// arguments per thread (calls); the exit reads paths and buffers through the saved pointers, bounded by what the call
// moved, and emits the record. execve is emitted at its entry: its exit runs in the new image.
// Per-syscall tracepoints (not raw_syscalls), so the system calls we do not trace cost nothing, and the ones we do
// cost a hash lookup in a process we do not watch.
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "faasmon-bpf.h"

char LICENSE[] SEC("license") = "GPL"; // bpf_probe_read_user* are GPL-only helpers

// Only the fields we read; CO-RE relocates them against the running kernel's BTF.
struct task_struct {
	int pid;
	int tgid;
	int exit_code;
	struct task_struct *real_parent;
} __attribute__((preserve_access_index));

// syscalls:sys_enter_* / sys_exit_* (tracefs format: every argument is 8 bytes from offset 16, ret at 16)
struct fm_sys_enter {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__u64 args[6];
};

struct fm_sys_exit {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__s64 ret;
};

// signal:signal_deliver (sig at offset 8)
struct fm_signal_deliver {
	__u64 common;
	__s32 sig;
};

struct fm_call_state {
	__u64 ns;
	__u64 p0;
	__u64 p1;
	__s64 a0;
	__s64 a1;
	__s64 a2;
	__u32 call;
	__u32 active;
};

// what an exit reads besides the arguments
enum fm_kind { K_NONE, K_PATH, K_RENAME, K_BUF, K_SOCKADDR };

// a submit wakes the loader only once this much waits; otherwise it reads every few ms (its --poll-ms)
#define FM_WAKE_BYTES (1 << 20)

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} watch SEC(".maps");

// per thread; LRU, so a thread that died inside a call does not hold its entry forever
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct fm_call_state);
} calls SEC(".maps");

// a node start is a burst of thousands of calls: 16 MB holds ~50 000 records with bytes
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

// records the ring had no room for; the loader sums the CPUs and prints the growth as an L line
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&lost, &zero);
	if (n)
		*n += 1;
}

static __always_inline void submit(struct fm_event *e)
{
	__u64 waiting = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	bpf_ringbuf_submit(e, waiting > FM_WAKE_BYTES ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

static __always_inline int watched(__u32 tgid)
{
	return bpf_map_lookup_elem(&watch, &tgid) != 0;
}

static __always_inline void fill(struct fm_event *e, __u8 type, __u8 call, __u64 ns, __u64 id)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	e->type = type;
	e->call = call;
	e->len0 = 0;
	e->len1 = 0;
	e->len2 = 0;
	e->tid = (__u32)id;
	e->pid = id >> 32;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->reserved = 0;
	e->ns = ns;
	e->dur = 0;
	e->ret = 0;
	e->a0 = 0;
	e->a1 = 0;
	e->a2 = 0;
}

/* A path or string at a user address into dst (at most max bytes with its NUL); its length without the NUL. */
static __always_inline __u16 read_str(char *dst, __u32 max, __u64 src)
{
	if (!src)
		return 0;
	long n = bpf_probe_read_user_str(dst, max, (const void *)src);
	return n > 0 ? (__u16)(n - 1) : 0;
}

static __always_inline int on_enter(__u32 call, __s64 a0, __s64 a1, __s64 a2, __u64 p0, __u64 p1)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!watched(id >> 32))
		return 0;
	__u32 tid = (__u32)id;
	struct fm_call_state s = { .ns = bpf_ktime_get_ns(), .p0 = p0, .p1 = p1, .a0 = a0, .a1 = a1, .a2 = a2, .call = call, .active = 1 };
	struct fm_call_state *c = bpf_map_lookup_elem(&calls, &tid);
	if (c)
		*c = s; // the thread's entry from its previous call: no allocation
	else
		bpf_map_update_elem(&calls, &tid, &s, BPF_ANY);
	return 0;
}

static __always_inline int on_exit(__s64 ret, __u32 call, enum fm_kind kind)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct fm_call_state *c = bpf_map_lookup_elem(&calls, &tid);
	if (!c || !c->active)
		return 0;
	c->active = 0;
	if (c->call != call)
		return 0; // an entry whose exit we missed

	struct fm_event *e;
	if (kind == K_NONE)
		e = bpf_ringbuf_reserve(&events, sizeof(struct fm_event), 0);
	else if (kind == K_RENAME)
		e = bpf_ringbuf_reserve(&events, sizeof(struct fm_event) + 2 * FM_DATA, 0);
	else
		e = bpf_ringbuf_reserve(&events, sizeof(struct fm_event) + FM_DATA, 0);
	if (!e) {
		count_lost();
		return 0;
	}

	fill(e, FM_SYSCALL, call, c->ns, id);
	e->dur = bpf_ktime_get_ns() - c->ns;
	e->ret = ret;
	e->a0 = c->a0;
	e->a1 = c->a1;
	e->a2 = c->a2;
	if (kind == K_PATH) {
		e->len0 = read_str(e->data, FM_DATA, c->p0);
	} else if (kind == K_RENAME) {
		e->len0 = read_str(e->data, FM_DATA, c->p0);
		e->len1 = read_str(e->data + FM_DATA, FM_DATA, c->p1);
	} else if (kind == K_BUF || kind == K_SOCKADDR) {
		// a buffer: what the call moved; a sockaddr: its length, at most a sockaddr_in6 (28)
		__s64 want = kind == K_BUF ? ret : (c->a1 < 28 ? c->a1 : 28);
		__u32 n = want > 0 ? (want < FM_DATA ? (__u32)want : FM_DATA) : 0;
		if (n > 0 && n <= FM_DATA && bpf_probe_read_user(e->data, n, (const void *)c->p0) == 0)
			e->len0 = n;
		if (kind == K_SOCKADDR)
			e->a1 = 0; // faasmon.bt prints 0 there
	}
	submit(e);
	return 0;
}

#define ENTER(sys, call, A0, A1, A2, P0, P1) \
	SEC("tracepoint/syscalls/sys_enter_" #sys) \
	int enter_##sys(struct fm_sys_enter *ctx) { (void)ctx; return on_enter(call, A0, A1, A2, P0, P1); }

#define EXIT(sys, call, kind) \
	SEC("tracepoint/syscalls/sys_exit_" #sys) \
	int exit_##sys(struct fm_sys_exit *ctx) { return on_exit(ctx->ret, call, kind); }

#define ARG(i) (ctx->args[i])
#define INT(i) ((__s64)(__s32)ctx->args[i])

// paths: the pointer now, the string at the exit
ENTER(openat, FM_OPENAT, 0, INT(2), 0, ARG(1), 0)
ENTER(open, FM_OPEN, 0, INT(1), 0, ARG(0), 0)
ENTER(chmod, FM_CHMOD, 0, INT(1), 0, ARG(0), 0)
ENTER(fchmodat, FM_FCHMODAT, 0, INT(2), 0, ARG(1), 0)
ENTER(unlinkat, FM_UNLINKAT, 0, 0, 0, ARG(1), 0)
ENTER(unlink, FM_UNLINK, 0, 0, 0, ARG(0), 0)
ENTER(chdir, FM_CHDIR, 0, 0, 0, ARG(0), 0)
EXIT(openat, FM_OPENAT, K_PATH)
EXIT(open, FM_OPEN, K_PATH)
EXIT(chmod, FM_CHMOD, K_PATH)
EXIT(fchmodat, FM_FCHMODAT, K_PATH)
EXIT(unlinkat, FM_UNLINKAT, K_PATH)
EXIT(unlink, FM_UNLINK, K_PATH)
EXIT(chdir, FM_CHDIR, K_PATH)

ENTER(renameat2, FM_RENAMEAT2, 0, 0, 0, ARG(1), ARG(3))
ENTER(renameat, FM_RENAMEAT, 0, 0, 0, ARG(1), ARG(3))
ENTER(rename, FM_RENAME, 0, 0, 0, ARG(0), ARG(1))
EXIT(renameat2, FM_RENAMEAT2, K_RENAME)
EXIT(renameat, FM_RENAMEAT, K_RENAME)
EXIT(rename, FM_RENAME, K_RENAME)

// buffers: the address now, the bytes at the exit (a read's exist only then), bounded by what the call moved
ENTER(write, FM_WRITE, INT(0), 0, 0, ARG(1), 0)
ENTER(pwrite64, FM_PWRITE64, INT(0), 0, 0, ARG(1), 0)
ENTER(read, FM_READ, INT(0), 0, 0, ARG(1), 0)
ENTER(pread64, FM_PREAD64, INT(0), 0, 0, ARG(1), 0)
ENTER(sendto, FM_SENDTO, INT(0), 0, 0, ARG(1), 0)
ENTER(recvfrom, FM_RECVFROM, INT(0), 0, 0, ARG(1), 0)
EXIT(write, FM_WRITE, K_BUF)
EXIT(pwrite64, FM_PWRITE64, K_BUF)
EXIT(read, FM_READ, K_BUF)
EXIT(pread64, FM_PREAD64, K_BUF)
EXIT(sendto, FM_SENDTO, K_BUF)
EXIT(recvfrom, FM_RECVFROM, K_BUF)

// struct sockaddr raw: the tracer decodes family, port and address
ENTER(connect, FM_CONNECT, INT(0), INT(2), 0, ARG(1), 0)
ENTER(bind, FM_BIND, INT(0), INT(2), 0, ARG(1), 0)
EXIT(connect, FM_CONNECT, K_SOCKADDR)
EXIT(bind, FM_BIND, K_SOCKADDR)

ENTER(sendmsg, FM_SENDMSG, INT(0), 0, 0, 0, 0)
ENTER(recvmsg, FM_RECVMSG, INT(0), 0, 0, 0, 0)
ENTER(listen, FM_LISTEN, INT(0), 0, 0, 0, 0)
ENTER(accept, FM_ACCEPT, INT(0), 0, 0, 0, 0)
ENTER(accept4, FM_ACCEPT4, INT(0), 0, 0, 0, 0)
ENTER(close, FM_CLOSE, INT(0), 0, 0, 0, 0)
ENTER(writev, FM_WRITEV, INT(0), 0, 0, 0, 0)
ENTER(readv, FM_READV, INT(0), 0, 0, 0, 0)
EXIT(sendmsg, FM_SENDMSG, K_NONE)
EXIT(recvmsg, FM_RECVMSG, K_NONE)
EXIT(listen, FM_LISTEN, K_NONE)
EXIT(accept, FM_ACCEPT, K_NONE)
EXIT(accept4, FM_ACCEPT4, K_NONE)
EXIT(close, FM_CLOSE, K_NONE)
EXIT(writev, FM_WRITEV, K_NONE)
EXIT(readv, FM_READV, K_NONE)

ENTER(socket, FM_SOCKET, INT(0), INT(1), INT(2), 0, 0)
ENTER(kill, FM_KILL, INT(0), INT(1), 0, 0, 0)
EXIT(socket, FM_SOCKET, K_NONE)
EXIT(kill, FM_KILL, K_NONE)

// only executable mappings matter (injected code)
SEC("tracepoint/syscalls/sys_enter_mmap")
int enter_mmap(struct fm_sys_enter *ctx)
{
	return (ctx->args[2] & 4) ? on_enter(FM_MMAP, INT(4), (__s64)ctx->args[2], 0, 0, 0) : 0;
}

SEC("tracepoint/syscalls/sys_enter_mprotect")
int enter_mprotect(struct fm_sys_enter *ctx)
{
	return (ctx->args[2] & 4) ? on_enter(FM_MPROTECT, -1, (__s64)ctx->args[2], 0, 0, 0) : 0;
}

EXIT(mmap, FM_MMAP, K_NONE)
EXIT(mprotect, FM_MPROTECT, K_NONE)

ENTER(clone, FM_CLONE, 0, 0, 0, 0, 0)
ENTER(clone3, FM_CLONE3, 0, 0, 0, 0, 0)
ENTER(fork, FM_FORK_CALL, 0, 0, 0, 0, 0)
ENTER(vfork, FM_VFORK, 0, 0, 0, 0, 0)
EXIT(clone, FM_CLONE, K_NONE)
EXIT(clone3, FM_CLONE3, K_NONE)
EXIT(fork, FM_FORK_CALL, K_NONE)
EXIT(vfork, FM_VFORK, K_NONE)

// execve at its entry, with its path and argv[1..2]; the exit (in the new image) gives the result
SEC("tracepoint/syscalls/sys_enter_execve")
int enter_execve(struct fm_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!watched(id >> 32))
		return 0;
	__u64 ns = bpf_ktime_get_ns();
	struct fm_event *e = bpf_ringbuf_reserve(&events, sizeof(struct fm_event) + FM_DATA + 2 * FM_ARG, 0);
	if (!e) {
		count_lost();
	} else {
		fill(e, FM_EXEC, FM_EXECVE, ns, id);
		e->len0 = read_str(e->data, FM_DATA, ctx->args[0]);
		const __u64 *argv = (const __u64 *)ctx->args[1];
		__u64 arg = 0;
		if (argv && bpf_probe_read_user(&arg, sizeof(arg), argv + 1) == 0 && arg) {
			e->len1 = read_str(e->data + FM_DATA, FM_ARG, arg);
			arg = 0;
			if (bpf_probe_read_user(&arg, sizeof(arg), argv + 2) == 0)
				e->len2 = read_str(e->data + FM_DATA + FM_ARG, FM_ARG, arg);
		}
		submit(e);
	}

	__u32 tid = (__u32)id;
	struct fm_call_state s = { .ns = ns, .call = FM_EXECVE, .active = 1 };
	bpf_map_update_elem(&calls, &tid, &s, BPF_ANY);
	return 0;
}

EXIT(execve, FM_EXECVE, K_NONE)

// a watched process's child processes are watched from their fork on; threads share the tgid already watched
SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	(void)ctx;
	__u64 id = bpf_get_current_pid_tgid();
	if (!watched(parent->tgid))
		return 0;
	__u32 pid = child->pid;
	if (pid != (__u32)child->tgid)
		return 0; // a thread
	__u8 one = 1;
	bpf_map_update_elem(&watch, &pid, &one, BPF_ANY);
	struct fm_event *e = bpf_ringbuf_reserve(&events, sizeof(struct fm_event), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	fill(e, FM_FORK, 0, bpf_ktime_get_ns(), id);
	e->a0 = pid;
	submit(e);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int on_process_exit(void *ctx)
{
	(void)ctx;
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if (tgid != (__u32)id || !watched(tgid))
		return 0;
	struct fm_event *e = bpf_ringbuf_reserve(&events, sizeof(struct fm_event), 0);
	if (e) {
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		fill(e, FM_EXIT, 0, bpf_ktime_get_ns(), id);
		e->ret = BPF_CORE_READ(task, exit_code) >> 8;
		submit(e);
	} else {
		count_lost();
	}
	bpf_map_delete_elem(&watch, &tgid);
	return 0;
}

SEC("tracepoint/signal/signal_deliver")
int on_signal(struct fm_signal_deliver *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!watched(id >> 32))
		return 0;
	struct fm_event *e = bpf_ringbuf_reserve(&events, sizeof(struct fm_event), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	fill(e, FM_SIGNAL, 0, bpf_ktime_get_ns(), id);
	e->a0 = ctx->sig;
	submit(e);
	return 0;
}
